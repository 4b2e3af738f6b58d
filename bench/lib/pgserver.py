"""A throwaway PostgreSQL server for a bench: initdb into a temp folder, a Unix socket only.

    with PgServer() as pg:
        url = pg.create_database("bench")   # postgresql://postgres@/bench?host=…&port=…

Debian keeps the server binaries off PATH (/usr/lib/postgresql/<version>/bin); initdb
refuses to run as root, so as root they run as the distribution's postgres user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PORT = 5432  # only a Unix socket in our own folder: no clash with another server


def _binary(name: str) -> str:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    search = os.pathsep.join([*bins[-1:], os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if not found:
        raise SystemExit("PostgreSQL is not installed: run `make dev-setup`")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    return command


class PgServer:
    """Start on enter, stop and remove everything on exit."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        # A bench loads millions of rows: no fsync on a throwaway cluster, more memory.
        self.settings = {
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "512MB", "maintenance_work_mem": "512MB",
            "max_wal_size": "4GB", "listen_addresses": "''",
            **(settings or {}),
        }
        self.root: Path | None = None

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="propusk-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        data = self.root / "data"
        run = {"check": True, "capture_output": True, "timeout": 120}
        subprocess.run(_as_postgres([_binary("initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8"]), **run)
        opts = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        options = f"'-k {self.root} -p {PORT} {opts}'"
        subprocess.run(_as_postgres([_binary("pg_ctl"), "-D", str(data), "-o", options, "-w",
                                     "-l", str(self.root / "log"), "start"]), **run)

    def stop(self) -> None:
        if self.root is None:
            return
        subprocess.run(_as_postgres([_binary("pg_ctl"), "-D", str(self.root / "data"),
                                     "-m", "fast", "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def url(self, name: str) -> str:
        return f"postgresql://postgres@/{name}?host={self.root}&port={PORT}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host=str(self.root), port=PORT, user="postgres",
                                dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)
