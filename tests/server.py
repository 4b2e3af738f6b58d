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
def _serving(
    command: list[str], instance: Path, port: int, name: str, env: dict[str, str], stop_s: float
) -> Iterator[str]:
    """Run a server subprocess with the instance's database until it answers; yields its URL."""
    env = {
        **os.environ,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": "e2e-secret",
        "DATABASE_URL": url_for(instance),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    log = open(instance.parent / f"{name}-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/offline")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def running_app(instance: Path, extra_env: dict[str, str] | None = None,
                port: int | None = None) -> Iterator[str]:
    """Run `python app.py` with its own instance folder and database; yields the base URL.
    `port` brings a stopped app back where it was (its service worker's origin)."""
    port = port or free_port()
    env = {"PORT": str(port), **(extra_env or {})}
    with _serving([sys.executable, "app.py"], instance, port, "app", env, 10) as base:
        yield base


@contextmanager
def running_gunicorn(
    instance: Path, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run `gunicorn -k serving.Worker wsgi:app` (web only, no bridge) on the instance's
    database."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "serving.Worker", "-w", str(workers),
               "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "wsgi:app"]
    env = {"GATEBRIDGE": "0", **(extra_env or {})}
    with _serving(command, instance, port, "gunicorn", env, 15) as base:
        yield base
