"""Which database the tests run on: SQLite (default) or PostgreSQL (PROPUSK_TEST_DB=postgresql).

`make test` runs the suite twice, once per backend. On PostgreSQL one throwaway cluster
serves the whole session (tests/pg.py); the in-process `app` fixture reuses one database
emptied before each test (DELETE and sequence restart: ~20 ms, five times faster than a
new database), and subprocess servers (`running_app`, `seed`, the bridge) get a database
of their own copied from the schema template, keyed by their instance folder.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from tests.pg import Cluster

BACKEND = os.environ.get("PROPUSK_TEST_DB", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"PROPUSK_TEST_DB must be sqlite or postgresql, not {BACKEND!r}")

_cluster: Cluster | None = None
_by_instance: dict[Path, str] = {}
_shared: dict[str, Any] = {}


def postgresql() -> bool:
    """True in the PostgreSQL pass."""
    return BACKEND == "postgresql"


def cluster() -> Cluster:
    """The session's PostgreSQL cluster, started on first use (in either pass)."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster.create()
        _cluster.start()
        atexit.register(stop_cluster)
    return _cluster


def stop_cluster() -> None:
    """Stop and remove the session's cluster if one was started."""
    global _cluster
    if _cluster is not None:
        _cluster.destroy()
        _cluster = None


def fresh_url(folder: Path, name: str = "propusk.db") -> str:
    """A new database with the current schema: a SQLite file in `folder`, or a PostgreSQL one."""
    if postgresql():
        return cluster().fresh_database()
    return f"sqlite:///{Path(folder) / name}"


def url_for(instance: Path) -> str:
    """The database of a subprocess server's instance folder (the same one every time)."""
    instance = Path(instance).resolve()
    if not postgresql():
        return f"sqlite:///{instance / 'propusk.db'}"
    if instance not in _by_instance:
        _by_instance[instance] = cluster().fresh_database()
    return _by_instance[instance]


def clean_shared_url() -> str:
    """PostgreSQL pass: the one database in-process tests share, emptied for this test."""
    if "url" not in _shared:
        _shared["url"] = cluster().fresh_database()
    url = _shared["url"]
    conn = _connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            if "reset" not in _shared:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                               " AND tablename <> 'schema_version'")
                tables = [row[0] for row in cursor.fetchall()]
                cursor.execute("SELECT sequencename FROM pg_sequences"
                               " WHERE schemaname = 'public'")
                sequences = [row[0] for row in cursor.fetchall()]
                # replica: foreign keys are not checked, so the order of the deletes is free.
                _shared["reset"] = (
                    "BEGIN; SET LOCAL session_replication_role = replica;"
                    + "".join(f'DELETE FROM "{t}";' for t in tables)
                    + "".join(f'ALTER SEQUENCE "{s}" RESTART;' for s in sequences)
                    + "COMMIT;"
                )
            # Anything a previous test left connected goes first: it might hold locks.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            cursor.execute(_shared["reset"])
    finally:
        conn.close()
    return url


def _connect(url: str) -> Any:
    import psycopg2

    name = url.split("?")[0].rsplit("/", 1)[1]
    c = cluster()
    return psycopg2.connect(dbname=name, user="postgres", host=str(c.root), port=c.port)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on a test database (`?` placeholders on both backends); commits."""
    from domain.db import open_database

    database = open_database(url, pooled=False)
    try:
        with database.connection_context():
            cursor = database.execute_sql(sql.replace("?", database.param), params)
            rows = list(cursor.fetchall()) if cursor.description else []
        return rows
    finally:
        database.close()
