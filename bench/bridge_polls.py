"""The gatebridge against a bare pymodbus read loop over the same 50 controllers, one run.

Prints, as ratios where there is a baseline:
  1. polls per second of the Poller over N simulated controllers against bare greenlets
     doing only the FC04 read with the same client class: paced at the poll interval
     (200 ms, what production does) and flat out (poll_ms=0, what the machine can do);
  2. event -> decision latency p50/p99 with 50 controllers polled every 200 ms, events
     presented through the simulators' control API and timed from the controller's capture
     to the decision written (aim: p99 <= poll interval + 20 ms), read -> write latency
     (the 50 ms rule), and the control API's own POST before each capture;
  3. a cached decision against an uncached one (a real SQLite query per miss);
  4. memory for 100 000 cached decisions (tracemalloc);
  5. event -> decision again while this process also serves web requests, as `python
     app.py` does: 50 keep-alive connections (wrk) on requests of ~2 ms of work each (what
     a check costs), under serving.py's handler for `python app.py` (TurnHandler) and gevent's
     stock pywsgi one.

    .venv/bin/python bench/bridge_polls.py [--seconds 5] [--controllers 50] [--processes 2]

Like `python app.py` and `python -m gatebridge`, this process is monkey-patched by gevent.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import gevent  # noqa: E402
from gevent import pywsgi  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serving  # noqa: E402
from bench.web import ensure_wrk  # noqa: E402
from gatebridge import protocol as p  # noqa: E402
from gatebridge.cache import DecisionCache  # noqa: E402
from gatebridge.poller import ControllerConfig, Poller, make_client  # noqa: E402
from tests.server import free_port  # noqa: E402

POLL_MS = 200


def start_simulators(total: int, processes: int) -> tuple[list, list[tuple[str, int, str, int]]]:
    """Start `processes` simulators sharing `total` controllers; returns procs and
    (host, port, control_url, index) per controller."""
    procs, controllers = [], []
    per = -(-total // processes)
    left = total
    while left > 0:
        count = min(per, left)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatebridge.simulator", "--port", "0", "--control-port", "0"]
            + ["--count", str(count), "--log-level", "WARNING"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = proc.stdout.readline()
        if not line.startswith("SIMULATOR "):
            raise SystemExit(f"simulator did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        for index, address in enumerate(fields["modbus"].split(",")):
            host, port = address.rsplit(":", 1)
            controllers.append((host, int(port), "http://" + fields["control"], index))
        procs.append(proc)
        left -= count
    return procs, controllers


def configs_for(controllers, poll_ms: int) -> list[ControllerConfig]:
    return [
        ControllerConfig(gate_id=i + 1, territory_id=1, host=h, port=port, poll_ms=poll_ms)
        for i, (h, port, _url, _index) in enumerate(controllers)
    ]


def bare_rate(configs: list[ControllerConfig], seconds: float) -> float:
    """Polls per second of plain greenlets doing only the read, paced like the poller."""
    count = [0]

    def loop(config: ControllerConfig) -> None:
        client = make_client(config)
        client.connect()
        period = config.poll_ms / 1000
        next_poll = time.monotonic()
        while True:
            rr = client.read_input_registers(
                p.IR_SNAPSHOT_START, count=p.IR_SNAPSHOT_COUNT, device_id=config.unit
            )
            if not rr.isError():
                count[0] += 1
            next_poll = max(next_poll + period, time.monotonic())
            gevent.sleep(max(0.0, next_poll - time.monotonic()))

    greenlets = [gevent.spawn(loop, c) for c in configs]
    gevent.sleep(1.0)  # connect and settle
    start_count, started = count[0], time.monotonic()
    gevent.sleep(seconds)
    rate = (count[0] - start_count) / (time.monotonic() - started)
    gevent.killall(greenlets)
    return rate


def poller_rate(configs: list[ControllerConfig], seconds: float, decide) -> float:
    """Polls per second of the Poller (reads, event checks, state tracking)."""
    poller = Poller(configs, decide, lambda *a: None).start()
    gevent.sleep(1.0)
    start_count, started = poller.polls, time.monotonic()
    gevent.sleep(seconds)
    rate = (poller.polls - start_count) / (time.monotonic() - started)
    poller.stop()
    return rate


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class Latencies(NamedTuple):
    """Seconds, sorted: event captured -> decision written, the decision's read -> write, and
    the bench's own POST to the control API before each capture; events never decided."""

    event_to_decision: list[float]
    read_to_write: list[float]
    missed: int
    harness: list[float]


def latency_run(controllers, seconds: float, decide, events_per_s: float) -> Latencies:
    """Present cards at random controllers; time from each capture to the decision written."""
    configs = configs_for(controllers, POLL_MS)
    done: dict[tuple[int, int], float] = {}
    read_to_write: list[float] = []

    def on_event(config, snapshot, code, latency):
        done[(config.gate_id, snapshot.event_seq)] = time.monotonic()
        read_to_write.append(latency)

    poller = Poller(configs, decide, on_event).start()
    gevent.sleep(1.0)
    sent: dict[tuple[int, int], float] = {}
    rng = random.Random(7)
    deadline = time.monotonic() + seconds

    def present_one(gate: int) -> None:
        host, port, url, index = controllers[gate - 1]
        t0 = time.monotonic()
        payload = {"gate": index, "type": "card", "card": rng.randrange(1, 1000)}
        answer = post(url + "/present", payload)
        sent[(gate, answer["event_seq"])] = (t0, answer["captured_at"])

    busy: set[int] = set()
    jobs = []
    while time.monotonic() < deadline:
        # One event in flight per gate: a second card before the poll would replace the first.
        gate = rng.randrange(1, len(controllers) + 1)
        if gate not in busy:
            busy.add(gate)
            job = gevent.spawn(present_one, gate)
            job.link(lambda _g, gate=gate: gevent.spawn_later(0.5, busy.discard, gate))
            jobs.append(job)
        gevent.sleep(1 / events_per_s)
    gevent.joinall(jobs)
    gevent.sleep(0.5)
    poller.stop()
    # From the controller's capture of the event (the simulators' monotonic clock is this
    # machine's); the control API's HTTP request before it is the bench's, not the bridge's.
    latencies = sorted(done[k] - captured for k, (_t0, captured) in sent.items() if k in done)
    harness = sorted(captured - t0 for t0, captured in sent.values())
    missed = sum(1 for k in sent if k not in done)
    return Latencies(latencies, sorted(read_to_write), missed, harness)


WEB_REQUEST_S = 0.002


def busy_web_app(environ, start_response):
    """A web request that keeps the process busy for as long as a check does."""
    busy_until = time.perf_counter() + WEB_REQUEST_S
    while time.perf_counter() < busy_until:
        pass
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def under_web_load(handler_class, controllers, seconds: float, decide, events_per_s: float):
    """latency_run while this process serves 50 keep-alive web connections (wrk)."""
    port = free_port()
    server = serving.server(port, busy_web_app, log=None, handler_class=handler_class)
    server.start()
    load = subprocess.Popen(
        [ensure_wrk(), "-t1", "-c50", f"-d{int(seconds) + 3}s", f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        gevent.sleep(0.5)
        measured = latency_run(controllers, seconds, decide, events_per_s)
        out = load.communicate()[0]
    finally:
        if load.poll() is None:
            load.kill()
        server.stop()
    rps = float(out.split("Requests/sec:")[1].split()[0]) if "Requests/sec:" in out else 0.0
    return measured, rps


def print_latencies(label: str, measured: Latencies) -> None:
    latencies, read_to_write = measured.event_to_decision, measured.read_to_write
    print(
        f"{label}: n={len(latencies)} missed={measured.missed} "
        f"p50 {pct(latencies, 0.5) * 1000:6.1f} ms"
        f"  p99 {pct(latencies, 0.99) * 1000:6.1f} ms"
        f"  (aim p99 <= {POLL_MS + 20} ms)"
    )
    print(
        f"read->write (the 50 ms rule): p50 {pct(read_to_write, 0.5) * 1000:6.2f} ms"
        f"  p99 {pct(read_to_write, 0.99) * 1000:6.2f} ms"
        f"  max {max(read_to_write, default=float('nan')) * 1000:6.2f} ms"
        f"  over 50 ms: {sum(1 for v in read_to_write if v > 0.05)} of {len(read_to_write)}"
    )
    print(
        f"the bench's POST before each capture (not counted above):"
        f" p50 {pct(measured.harness, 0.5) * 1000:6.2f} ms"
        f"  p99 {pct(measured.harness, 0.99) * 1000:6.2f} ms"
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def sqlite_loader(path: str, rows: int):
    """A loader doing a real indexed SQLite query per miss, like access.decide would."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute(
        "create table if not exists credential (territory int, kind text, value text, ok int)"
    )
    db.execute("create unique index if not exists cred on credential (territory, kind, value)")
    db.executemany(
        "insert or ignore into credential values (1, 'card', ?, ?)",
        ((str(n), n % 5 != 0) for n in range(rows)),
    )
    db.commit()

    def load(key):
        row = db.execute(
            "select ok from credential where territory = ? and kind = ? and value = ?", key
        ).fetchone()
        if row is None:
            return p.DecisionCode.DENY_UNKNOWN, None
        return (p.DecisionCode.GRANT if row[0] else p.DecisionCode.DENY_NO_PASS), None

    return load


def cache_bench(loader, lookups: int = 20_000) -> tuple[float, float]:
    keys = [(1, "card", str(n)) for n in range(1000)]
    cached = DecisionCache(loader)
    for key in keys:
        cached.get(key)
    uncached = DecisionCache(loader, ttl=0, unknown_ttl=0)  # every lookup is a miss
    timings = []
    for cache in (cached, uncached):
        started = time.perf_counter()
        for i in range(lookups):
            cache.get(keys[i % len(keys)])
        timings.append((time.perf_counter() - started) / lookups)
    assert cached.stats()["misses"] == len(keys)
    return timings[0], timings[1]


def cache_memory(entries: int = 100_000) -> int:
    cache = DecisionCache(lambda key: (p.DecisionCode.GRANT, None), maxsize=entries)
    keys = [(n % 50, "card", str(10_000_000 + n)) for n in range(entries)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for key in keys:
        cache.get(key)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(cache) == entries
    # Only what the cache holds: the keys themselves exist before (the caller owns them).
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--controllers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--events-per-s", type=float, default=25.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        loader = sqlite_loader(os.path.join(tmp, "access.sqlite3"), 100_000)
        decide_cache = DecisionCache(loader)

        def decide(config, snapshot):
            credential = snapshot.credential
            if credential is None:
                return p.DecisionCode.DENY_UNKNOWN
            return decide_cache.get((config.territory_id, credential.kind, credential.value))

        procs, controllers = start_simulators(args.controllers, args.processes)
        try:
            n = len(controllers)
            print(f"{n} controllers in {len(procs)} simulator processes, {os.cpu_count()} CPUs")
            for poll_ms, label in ((POLL_MS, f"paced {POLL_MS} ms"), (0, "flat out")):
                configs = configs_for(controllers, poll_ms)
                bare = bare_rate(configs, args.seconds)
                bridge = poller_rate(configs, args.seconds, decide)
                print(
                    f"polls/s {label:>14}: bridge {bridge:8.1f}  bare {bare:8.1f}"
                    f"  ratio bridge/bare: {bridge / bare:.2f}"
                )
            print_latencies(
                f"event->decision at {n} controllers, poll {POLL_MS} ms",
                latency_run(controllers, args.seconds * 2, decide, args.events_per_s),
            )
            # The same, while this process serves web requests (python app.py's topology).
            for name, handler in (("turns", serving.TurnHandler), ("stock", pywsgi.WSGIHandler)):
                measured, rps = under_web_load(
                    handler, controllers, args.seconds * 2, decide, args.events_per_s
                )
                print_latencies(
                    f"under web load, {name} handler ({rps:.0f} web req/s of ~2 ms)", measured
                )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)
                proc.stdout.close()

        hit, miss = cache_bench(loader)
        print(
            f"decision cached {hit * 1e6:7.2f} us  uncached (SQLite query) {miss * 1e6:7.2f} us"
            f"  ratio uncached/cached: {miss / hit:.1f}"
        )
    size = cache_memory()
    print(
        f"memory for 100000 cached decisions: {size / 2**20:.1f} MiB ({size / 100_000:.0f} B each)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
