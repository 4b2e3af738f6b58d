"""Web throughput: the operator's check partial and the resident's pass list, signed in,
against a bare Flask handler — all on gevent's WSGI server, 50 connections, one run.

Fills a database with bench/gen.py (PostgreSQL on a throwaway server by default, or a
SQLite file), starts the real server (`python app.py`, GATEBRIDGE=0) on it, signs in an
operator and a resident through /login, and drives with wrk (Debian's package, installed
when missing; a Lua script rotates the plates and sends the cookie and HX-Request):

- check   GET /t/1/check?plate=… with HX-Request: true (the partial the operator's page
          swaps in), plates rotating over ones with passes and unknown ones; answered by
          blueprints/passes/shortcut.py
- flask   the same requests to Propusk without that shortcut in front (same server as
          anon and floor): the check through the whole of Flask, for comparison
- passes  GET /t/1/passes, the resident's «Мои заявки»
- feed    GET /t/1/events/newer?after=<the newest event> with HX-Request: true, the live
          feed's poll when nothing is new, which every open «Журнал» sends every second
- bare    GET /bare of a Flask app with one handler, under the same gevent server
- anon    GET /anon, a route of Propusk that returns a constant, nobody signed in, same
          server: what Propusk's hooks and extensions cost before any session
- floor   GET /t/1/floor, a territory route of Propusk that does nothing, same server: the
          ceiling of any signed-in territory page Flask serves (session, device, membership,
          headers)

and prints requests per second, p50/p99, the server's own CPU time per request (from /proc:
wrk shares the cores, so req/s also measures how much of them wrk left), and the ratios to
the bare handler (aim: check at least 40 % of bare, p99 under 100 ms). --workers N serves
both with gunicorn's gevent workers (`serving.Worker`, the several-process topology of
docs/deploy.md) instead of `python app.py`'s single process. --profile also samples the
server with py-spy (installed into the venv for the bench only) during a run of that page
and prints where the time goes.

    .venv/bin/python bench/web.py [--seconds 10] [--connections 50] [--scale 0.01]
                                  [--database postgresql|sqlite] [--workers 1] [--rounds 3]
                                  [--profile check|passes|feed]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gen import PASSWORD, generate  # noqa: E402
from tests.server import free_port, wait_http  # noqa: E402

# Two references under the same server as `python app.py` (serving.server), chosen by
# BENCH_APP: "bare", a Flask app with one handler, and "floor", Propusk itself with two
# routes that do nothing: /anon, for nobody signed in (its hooks and extensions: database
# connection, CSRF, i18n, security headers), and a territory route, what every signed-in
# territory page costs before its own work (adding the session cookie, device, membership).
BARE = """
from gevent import monkey; monkey.patch_all()
import os, sys
sys.path.insert(0, %(root)r)
from flask import Flask
import serving
from app import create_app
from blueprints.scope import territory_route
if os.environ["BENCH_APP"] == "bare":
    app = Flask("bare")
    @app.get("/bare")
    def bare():
        return "<div id='check-result'><p>bare</p></div>"
else:
    app = create_app()
    # The check through the whole of Flask: without passes/shortcut.py in front.
    app.wsgi_app = app.wsgi_app.inner
    @app.get("/anon")
    def anon():
        return "<div id='check-result'><p>anon</p></div>"
    @app.get("/t/<int:tid>/floor")
    @territory_route()
    def floor(tid):
        return "<div id='check-result'><p>floor</p></div>"
if __name__ == "__main__":
    serving.server(int(os.environ["PORT"]), app, log=None).serve_forever()
"""

LUA = """
plates = {%(plates)s}
counter = 0
request = function()
  counter = counter + 1
  local plate = plates[(counter %% #plates) + 1]
  return wrk.format("GET", "%(path)s" .. plate)
end
"""
AIM_SHARE, AIM_P99_MS = 0.40, 100.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package)…")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk is not available")


def sign_in(base: str, login: str) -> str:
    """Sign in through the login form; returns the Cookie header value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(base + "/login").read().decode()
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)[1]
    data = urllib.parse.urlencode({"login": login, "password": PASSWORD, "csrf_token": token})
    opener.open(base + "/login", data=data.encode()).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    if "propusk=" not in cookie:
        sys.exit(f"could not sign in as {login}")
    return cookie


def wrk(binary: str, url: str, seconds: float, connections: int, headers: dict[str, str],
        script: str | None = None) -> dict[str, float]:
    cmd = [binary, "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    pct = {m[1]: _ms(m[2], m[3]) for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    return {"rps": rps, "p50": pct["50"], "p99": pct["99"],
            "errors": int(errors[1]) if errors else 0}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process `pid` and its descendants (gunicorn's
    workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, total = {pid}, 0.0
    for child, parent in sorted(parents.items()):
        if parent in family:
            family.add(child)
    for member in family:
        total += used.get(member, 0.0)
    return total


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def profile(pid: int, seconds: float, out: Path) -> None:
    """py-spy's raw stacks of the server while wrk runs (py-spy installed on demand)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "py-spy"], check=True)
    subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                      "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(raw: Path, page: str, top: int = 30) -> None:
    """Inclusive share of samples per function of our code (not the libraries')."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            match = re.match(r"(.+) \((.+):\d+\)", frame)
            if not match:
                continue
            func, path = match[1], match[2]
            if ".venv" in path or "/usr/lib" in path or "site-packages" in path:
                key = f"[lib] {Path(path).parent.name}/{Path(path).name}"
            else:
                key = f"{func} ({Path(path).relative_to(ROOT) if str(ROOT) in path else path})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    print(f"\nprofile of {page} ({total} samples, inclusive share):")
    for key, n in inclusive.most_common(top):
        print(f"  {100 * n / max(total, 1):5.1f}%  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds in which the pages take turns; medians are shown")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=1,
                        help="1: `python app.py` (one process); N: gunicorn "
                             "-k serving.Worker -w N, the bare handler likewise")
    parser.add_argument("--profile", choices=["check", "passes", "feed"],
                        help="sample the server with py-spy while this page is driven")
    args = parser.parse_args()
    binary = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="propusk-web-bench-"))
    server = None
    try:
        if args.database == "postgresql":
            from bench.gen import BENCH_PG
            from tests.pg import Cluster

            server = Cluster.create(BENCH_PG).__enter__()
            url = server.create_database("bench_web")
        else:
            url = f"sqlite:///{work / 'bench.db'}"
        generate(url, args.scale, log=lambda _line: None)
        run(binary, url, work, args)
    finally:
        if server is not None:
            server.destroy()
        shutil.rmtree(work, ignore_errors=True)


def _inputs(url: str) -> tuple[str, str, int, list[str], int]:
    """An operator of territory 1, its busiest resident (and their number of passes), plates
    to check, and the territory's newest event."""
    from domain.db import db, init_db

    init_db(url)
    with db.connection_context():
        operator = db.execute_sql(
            "SELECT a.phone FROM membership m JOIN account a ON a.id = m.account_id "
            "WHERE m.territory_id = 1 AND m.role = 'operator' ORDER BY a.id LIMIT 1"
        ).fetchone()[0]
        resident, owned = db.execute_sql(
            "SELECT a.phone, count(*) FROM vehicle_pass p JOIN account a ON a.id = p.account_id "
            "WHERE p.territory_id = 1 AND NOT a.blocked GROUP BY a.phone "
            "ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        plates = [r[0] for r in db.execute_sql(
            "SELECT DISTINCT plate FROM vehicle_pass WHERE territory_id = 1 LIMIT 40"
        ).fetchall()]
        newest = db.execute_sql(
            "SELECT max(id) FROM gate_event WHERE territory_id = 1").fetchone()[0] or 0
    db.close()
    # One in five checks is a plate nobody filed: the operator types those too.
    return operator, resident, owned, plates + [
        "X000XX00", "A001AA01", "B123OP777", "E555KX99", "TEST123", "M001MM01", "P777PP77",
        "K202KK02", "O999OO199", "C404CC04"], newest


def run(binary: str, url: str, work: Path, args: argparse.Namespace) -> None:
    operator, resident, owned, plates, newest = _inputs(url)
    script = work / "check.lua"
    script.write_text(LUA % {"plates": ", ".join(f'"{p}"' for p in plates),
                             "path": "/t/1/check?plate="})
    env = {**os.environ, "INSTANCE_PATH": str(work / "instance"), "GATEBRIDGE": "0",
           "SECRET_KEY": "bench", "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    results: dict[str, dict[str, float]] = {}
    app_port, bare_port, floor_port = free_port(), free_port(), free_port()
    (work / "bare_app.py").write_text(BARE % {"root": str(ROOT)})
    if args.workers > 1:
        # The several-process topology of docs/deploy.md, for both: gunicorn's gevent workers.
        def serve(module: str, port: int, chdir: Path) -> list[str]:
            return [sys.executable, "-m", "gunicorn", "-k", "serving.Worker",
                    "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "--chdir", str(chdir),
                    "--pythonpath", str(ROOT), "--log-level", "warning", module]

        app_cmd = serve("wsgi:app", app_port, ROOT)
        bare_cmd = lambda port: serve("bare_app:app", port, work)  # noqa: E731
    else:
        app_cmd = [sys.executable, "app.py"]
        bare_cmd = lambda _port: [sys.executable, str(work / "bare_app.py")]  # noqa: E731
    app = start(app_cmd, {**env, "PORT": str(app_port)}, work / "app.log")
    bare = start(bare_cmd(bare_port), {**env, "PORT": str(bare_port), "BENCH_APP": "bare"},
                 work / "bare.log")
    floor = start(bare_cmd(floor_port), {**env, "PORT": str(floor_port), "BENCH_APP": "floor"},
                  work / "floor.log")
    try:
        base = f"http://127.0.0.1:{app_port}"
        wait_http(base + "/offline", timeout=60)
        wait_http(f"http://127.0.0.1:{bare_port}/bare")
        wait_http(f"http://127.0.0.1:{floor_port}/offline", timeout=60)
        watcher = {"Cookie": sign_in(base, operator), "HX-Request": "true"}
        owner = {"Cookie": sign_in(base, resident)}
        runs = [
            ("bare", f"http://127.0.0.1:{bare_port}/bare", {}, None),
            ("anon", f"http://127.0.0.1:{floor_port}/anon", {}, None),
            ("floor", f"http://127.0.0.1:{floor_port}/t/1/floor", watcher, None),
            ("check", base + "/t/1/check", watcher, str(script)),
            ("flask", f"http://127.0.0.1:{floor_port}/t/1/check", watcher, str(script)),
            ("passes", base + "/t/1/passes", owner, None),
            ("feed", f"{base}/t/1/events/newer?after={newest}", watcher, None),
        ]
        for _name, target, headers, lua in runs:
            wrk(binary, target, 2, args.connections, headers, lua)  # warm-up
        # The pages take turns, round after round, and each keeps its median round: this
        # VM's speed drifts by a quarter within minutes, and a ratio of two runs taken at
        # different moments would measure the drift.
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in runs}
        serving = {"bare": bare, "anon": floor, "floor": floor, "flask": floor}
        for _round in range(args.rounds):
            for name, target, headers, lua in runs:
                pid = serving.get(name, app).pid
                before = cpu_seconds(pid)
                taken = wrk(binary, target, args.seconds, args.connections, headers, lua)
                # The server's own CPU per request: what wrk, sharing the cores, cannot blur.
                taken["cpu_us"] = ((cpu_seconds(pid) - before) * 1e6
                                   / max(taken["rps"] * args.seconds, 1))
                rounds[name].append(taken)
        for name, taken in rounds.items():
            results[name] = {**sorted(taken, key=lambda r: r["rps"])[len(taken) // 2],
                             "low": min(r["rps"] for r in taken),
                             "high": max(r["rps"] for r in taken),
                             "errors": sum(r["errors"] for r in taken)}
        # Each round's ratio compares runs seconds apart; the median of those is reported.
        ratios = {name: statistics.median(r["rps"] / b["rps"] for r, b in
                                          zip(taken, rounds["bare"], strict=True))
                  for name, taken in rounds.items()}
        if args.profile:
            raw = work / "profile.txt"
            profile(app.pid, args.seconds, raw)
            _name, target, headers, lua = next(r for r in runs if r[0] == args.profile)
            wrk(binary, target, args.seconds + 1, args.connections, headers, lua)
            if raw.exists():
                summarize(raw, args.profile)
    finally:
        stop(app)
        stop(bare)
        stop(floor)
    server = ("python app.py" if args.workers == 1
              else f"gunicorn -k serving.Worker -w {args.workers}")
    print(f"\n{args.connections} connections, {args.rounds} rounds of {args.seconds:.0f} s "
          f"per page (medians; min–max req/s in brackets), {args.database}, "
          f"scale {args.scale}, {server}, {os.cpu_count()} CPUs (wrk on the same machine)")
    for name, r in results.items():
        bad = f"  {r['errors']} non-2xx!" if r["errors"] else ""
        print(f"{name:7s} {r['rps']:8.0f} req/s [{r['low']:.0f}–{r['high']:.0f}]  "
              f"p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
              f"server CPU {r['cpu_us']:6.0f} us/req{bad}")
    share, p99 = ratios["check"], results["check"]["p99"]
    verdict = "ok" if share >= AIM_SHARE and p99 < AIM_P99_MS else "BELOW AIM"
    print(f"ratio check/bare: {share:.2f}  (aim >= {AIM_SHARE:.2f}, p99 < "
          f"{AIM_P99_MS:.0f} ms): {verdict}")
    gain = statistics.median(c["rps"] / f["rps"] for c, f in
                             zip(rounds["check"], rounds["flask"], strict=True))
    print(f"ratio flask/bare: {ratios['flask']:.2f}  (the same check through the whole of "
          f"Flask, without passes/shortcut.py; check/flask: {gain:.2f})")
    print(f"ratio passes/bare: {ratios['passes']:.2f}  (the full page "
          f"of the territory's busiest resident, {owned} passes; no aim)")
    print(f"ratio feed/bare: {ratios['feed']:.2f}  (the live feed's poll with nothing "
          f"new, sent every second by every open log; no aim)")
    print(f"ratio anon/bare: {ratios['anon']:.2f}  (a Propusk route that returns a "
          f"constant to nobody signed in: its hooks and extensions alone)")
    print(f"ratio floor/bare: {ratios['floor']:.2f}  (a territory route "
          f"that does nothing: the most any signed-in page can reach)")


if __name__ == "__main__":
    main()
