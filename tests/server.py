"""Start `python app.py` — the real gevent server — as a subprocess on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.database import url_for

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Wait until the URL answers, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def running_app(instance: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `python app.py` with its own instance folder and database; yields the base URL."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": "e2e-secret",
        "PYTHONUNBUFFERED": "1",
    }
    env["DATABASE_URL"] = url_for(instance)
    env.update(extra_env or {})
    log = open(instance.parent / f"app-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/offline")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def running_gunicorn(
    instance: Path, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run `gunicorn -k gevent wsgi:app` (web only, no bridge) on the instance's database."""
    port = free_port()
    env = {
        **os.environ,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": "e2e-secret",
        "DATABASE_URL": url_for(instance),
        "GATEBRIDGE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra_env or {})
    log = open(instance.parent / f"gunicorn-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
         "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/offline")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
