"""Where the operator's check spends its time: the real answer, its parts timed in-process.

bench/web.py measures the check partial under the server against a bare Flask handler
(aim: 0.40 of its requests per second). This script says what the check is made of: it
calls the app's WSGI callable in a loop (no server, no client: one process, warm) with
the check form's requests for rotating plates, signed in as an operator of territory 1,
and times each part the answer goes through, by wrapping the functions that
`blueprints/passes/shortcut.py` calls:

- route     the URL map's match (the host check included)
- cookie    the signed session cookie read (Flask's session interface)
- device    the session's device with its membership here (one prepared query)
- passes    the plate's passes with their owners and the decision (`check_plate`)
- render    the verdict's template
- rest      everything else: the request object, the query string, the app context and
            the connection, the locale, the headers

and, in the same process, a bare Flask handler called the same way. The three parts no
check can do without (device, passes, render) are summed apart: bench/README.md compares
them with what 0.40 of the bare handler leaves a check.

    .venv/bin/python bench/check_parts.py [--requests 3000] [--rounds 3] [--scale 0.01]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gen import PASSWORD, generate  # noqa: E402
from bench.web import _inputs  # noqa: E402

PARTS = ("route", "cookie", "device", "passes", "render")
NEEDED = ("device", "passes", "render")


class Clock:
    """Time spent inside the wrapped functions, by part."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, part: str, function: Callable) -> Callable:
        spent, now = self.spent, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = now()
            try:
                return function(*args, **kwargs)
            finally:
                spent[part] += now() - started

        return timed


def _no_start(_status: str, _headers: list, _exc: Any = None) -> None:
    pass


def _run(app_call: Callable, environs: list[dict], n: int) -> float:
    """Seconds per request over `n` requests, the environs taken in turn."""
    started = time.perf_counter()
    for i in range(n):
        body = app_call(dict(environs[i % len(environs)]), _no_start)
        b"".join(body)
        getattr(body, "close", lambda: None)()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.01)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="propusk-check-parts-"))
    try:
        url = f"sqlite:///{work / 'bench.db'}"
        generate(url, args.scale, log=lambda _line: None)
        os.environ.update({"INSTANCE_PATH": str(work / "instance"), "GATEBRIDGE": "0",
                           "SECRET_KEY": "bench", "DATABASE_URL": url})
        measure(url, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(url: str, args: argparse.Namespace) -> None:
    import jinja2
    from flask import Flask
    from werkzeug.test import EnvironBuilder

    import blueprints.passes.routes as routes
    import blueprints.passes.shortcut as shortcut
    from app import create_app

    operator, _resident, _owned, plates, _newest = _inputs(url)
    app = create_app()
    client = app.test_client()
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                      client.get("/login").get_data(as_text=True))[1]
    client.post("/login", data={"login": operator, "password": PASSWORD, "csrf_token": token})
    cookie = client.get_cookie("propusk").value
    environs = [EnvironBuilder(path="/t/1/check", query_string={"plate": plate},
                               headers={"HX-Request": "true", "Cookie": f"propusk={cookie}",
                                        "Host": "localhost"}).get_environ()
                for plate in plates]
    # Answered by the shortcut, as under the server (a check Flask answered would be timed
    # through other paths than the ones wrapped below).
    probe: list[str] = []
    app.wsgi_app(dict(environs[0]), lambda status, headers, exc=None: probe.append(status))
    if not app.wsgi_app.serves() or probe != ["200 OK"]:
        sys.exit(f"the check shortcut does not answer here: {probe}")

    bare = Flask("bare")
    bare.add_url_rule("/bare", "bare", lambda: "<div id='check-result'><p>bare</p></div>")
    bare_environs = [EnvironBuilder(path="/bare", headers={"Host": "localhost"}).get_environ()]

    clock = Clock()
    interface = app.session_interface
    originals = [(app, "create_url_adapter"), (interface, "open_session"),
                 (shortcut, "device_with_membership"), (routes, "check_plate"),
                 (jinja2.Template, "render")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in originals]
    app.create_url_adapter = clock.wrap("route", app.create_url_adapter)
    interface.open_session = clock.wrap("cookie", interface.open_session)
    shortcut.device_with_membership = clock.wrap("device", shortcut.device_with_membership)
    routes.check_plate = clock.wrap("passes", routes.check_plate)
    jinja2.Template.render = clock.wrap("render", jinja2.Template.render)
    rounds: list[dict[str, float]] = []
    bare_rounds: list[float] = []
    try:
        _run(app.wsgi_app, environs, 300)  # warm
        _run(bare.wsgi_app, bare_environs, 3000)
        for _ in range(args.rounds):
            # Taking turns: the VM's speed drifts within minutes.
            clock.spent.clear()
            total = _run(app.wsgi_app, environs, args.requests)
            parts = {part: clock.spent[part] / args.requests for part in PARTS}
            parts["rest"] = total - sum(parts.values())
            parts["total"] = total
            rounds.append(parts)
            bare_rounds.append(_run(bare.wsgi_app, bare_environs, args.requests * 5))
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)

    def us(seconds: float) -> str:
        return f"{seconds * 1e6:7.1f} us"

    print(f"\nthe check partial in-process, {len(plates)} plates in turn, {args.rounds} rounds "
          f"of {args.requests} requests (medians), SQLite, scale {args.scale}")
    median = {key: statistics.median(r[key] for r in rounds) for key in (*PARTS, "rest", "total")}
    for key in (*PARTS, "rest"):
        print(f"  {key:7s} {us(median[key])}  {median[key] / median['total']:5.0%}")
    print(f"  {'total':7s} {us(median['total'])}")
    needed = sum(median[key] for key in NEEDED)
    bare_us = statistics.median(bare_rounds)
    print(f"device + passes + render: {us(needed).strip()} "
          f"({needed / median['total']:.0%} of the check)")
    print(f"bare Flask handler, same process and loop: {us(bare_us).strip()}; "
          f"check/bare in-process: {median['total'] / bare_us:.1f}x")


if __name__ == "__main__":
    main()
