"""A throwaway PostgreSQL cluster for the tests, from Debian's `postgresql` package.

`Cluster.create()` runs `initdb` into a temp folder (as the `postgres` user when we are
root: initdb refuses root), and `start()` serves it on loopback at a free port and on a
Unix socket in the same folder; URLs use the socket. `fresh_database()` hands out a new
empty database with the current schema, copied from a template built once, so each test
gets a clean database in a few milliseconds.

    python -m tests.pg start   # prints the folder and the URL template; stays up
    python -m tests.pg stop FOLDER
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE = "propusk_template"


def _binaries() -> tuple[str, str]:
    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    search = os.pathsep.join([*bins[-1:], os.environ.get("PATH", "")])
    initdb, pg_ctl = shutil.which("initdb", path=search), shutil.which("pg_ctl", path=search)
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL is not installed: run make dev-setup")
    return initdb, pg_ctl


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One PostgreSQL server in a folder of its own; stop() and start() may repeat."""

    def __init__(self, root: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.settings = settings or {}
        self.initdb, self.pg_ctl = _binaries()
        self._names = itertools.count(1)
        self._template_ready = False

    @classmethod
    def create(cls, settings: dict[str, str] | None = None) -> Cluster:
        """initdb into a new temp folder (not pytest's: that one is private to us).

        `settings` are extra server settings (-c name=value), e.g. a bench's memory sizes.
        """
        root = Path(tempfile.mkdtemp(prefix="propusk-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        cluster = cls(root, _free_port(), settings)
        cluster._run([cluster.initdb, "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        return cluster

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        """Serve on 127.0.0.1:port and on a socket in the folder; durability off (a test run)."""
        extra = "".join(f" -c {name}={value}" for name, value in self.settings.items())
        options = (f"'-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   f" -c max_connections=200{extra}'")
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-w",
                   "-l", str(self.root / "log"), "start"])

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop; `immediate` does not wait for clients."""
        subprocess.run(_as_postgres([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w",
                                     "stop"]), capture_output=True, timeout=60)

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def url(self, name: str) -> str:
        """The DATABASE_URL of a database in this cluster."""
        return f"postgresql://postgres@/{name}?host={self.root}&port={self.port}"

    def execute(self, sql: str) -> None:
        """Run one statement in the maintenance database (autocommit: CREATE DATABASE)."""
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", user="postgres", host=str(self.root),
                                port=self.port)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str | None = None, template: str = "template0") -> str:
        """A new empty database; returns its URL."""
        name = name or f"t{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database even if something still holds a connection to it."""
        name = url.split("?")[0].rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def fresh_database(self) -> str:
        """A new database with the current schema, copied from a template built once."""
        if not self._template_ready:
            self._build_template()
        return self.create_database(template=TEMPLATE)

    def _build_template(self) -> None:
        from domain.db import open_database
        from domain.schema import app_models, upgrade

        url = self.create_database(TEMPLATE)
        database = open_database(url, pooled=False)
        # Bound for the build only: the shared proxy stays as the running test left it.
        with database.bind_ctx(app_models()):
            upgrade(database)
        database.close()
        self._template_ready = True


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        cluster = Cluster.create()
        cluster.start()
        print(cluster.root)
        print(cluster.url("{name}"))
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        root = Path(argv[1])
        cluster = Cluster(root, 0)
        cluster.destroy()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
