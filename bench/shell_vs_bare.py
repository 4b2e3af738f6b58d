"""A Propusk page against a bare Flask response, both under gevent's WSGI server, one run.

Prints requests per second of each and their ratio; the ratio is what to compare between
machines (they are noisy and have 2 cores), not the absolute numbers.

    .venv/bin/python bench/shell_vs_bare.py [--seconds 5] [--connections 20]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import free_port, wait_http  # noqa: E402

# The same server as `python app.py`: serving.server.
BARE = """
from gevent import monkey; monkey.patch_all()
import os, sys
sys.path.insert(0, %(root)r)
from flask import Flask
import serving
app = Flask("bare")
@app.get("/offline")
def offline():
    return "<!doctype html><p>bare</p>"
serving.server(int(os.environ["PORT"]), app, log=None).serve_forever()
"""


def drive(port: int, path: str, seconds: float, connections: int) -> tuple[int, list[float]]:
    """Keep-alive clients hammering one path; returns (requests, latencies)."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), sorted(latencies)


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp()) / "instance"
    results = {}
    for name, cmd in (("propusk", [sys.executable, "app.py"]),
                      ("bare", [sys.executable, "-c", BARE % {"root": str(ROOT)}])):
        port = free_port()
        env = {**os.environ, "PORT": str(port), "INSTANCE_PATH": str(instance),
               "GATEBRIDGE": "0", "SECRET_KEY": "bench"}
        process = start(cmd, env)
        try:
            wait_http(f"http://127.0.0.1:{port}/offline")
            drive(port, "/offline", 1.0, args.connections)  # warm-up
            count, lat = drive(port, "/offline", args.seconds, args.connections)
        finally:
            process.terminate()
            process.wait()
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[int(len(lat) * 0.99)] * 1000
        results[name] = count / args.seconds
        print(f"{name:8s} {count / args.seconds:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    print(f"ratio propusk/bare: {results['propusk'] / results['bare']:.2f}")


if __name__ == "__main__":
    main()
