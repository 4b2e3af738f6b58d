"""What keeping the bridge's gates in step costs at scale: a whole reload against one territory's.

Every pass filed, gate saved or setting changed moves its territory's version, and the
bridge's watch() reloads that territory's gates (gatebridge/service.py). This script fills
a throwaway SQLite database with `--territories` territories, one or two gates each (every
third has two), and times, in the bridge's own process with its poller holding every gate:

- full      BridgeService.reload(): every gate, what the periodic safety net reads
- moved     watch() after one territory's version moved: that territory's gates only
- still     watch() with nothing moved: the version poll alone, five times a second

The poller is not started (no controller is connected): the times are the database reads
and the poller's bookkeeping, which run in the bridge's event loop and hold every
controller's greenlet while they do.

    .venv/bin/python bench/bridge_reload.py [--territories 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_ms(step: Callable[[int], None], rounds: int) -> float:
    taken = []
    for i in range(rounds):
        started = time.perf_counter()
        step(i)
        taken.append(time.perf_counter() - started)
    return statistics.median(taken) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--territories", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="propusk-bridge-reload-"))
    try:
        os.environ.update({"INSTANCE_PATH": str(work / "instance"), "GATEBRIDGE": "0",
                           "SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{work / 'b.db'}"})
        measure(args.territories, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(territories: int, rounds: int) -> None:
    from app import create_app
    from domain import versions
    from domain.db import db, utcnow
    from domain.gates import Gate
    from domain.schema import upgrade
    from domain.territories import Territory
    from gatebridge.service import BridgeService

    app = create_app()
    with app.app_context():
        with db.connection_context(), db.atomic():
            upgrade()
            now = utcnow()
            Territory.insert_many(
                [{"name": f"Территория {i}", "code": f"{i:06d}", "created_at": now}
                 for i in range(1, territories + 1)]).execute()
            rows = [{"territory": t, "name": f"Ворота {k + 1}", "port": 502, "unit_id": 1,
                     "host": f"10.{t // 250}.{t % 250}.{k + 1}", "created_at": now}
                    for t in range(1, territories + 1) for k in range(1 + (t % 3 == 0))]
            for start in range(0, len(rows), 500):
                Gate.insert_many(rows[start:start + 500]).execute()

        bridge = BridgeService(app)
        bridge.reload()
        bridge.watch()  # the first call learns every version

        def move(i: int) -> None:
            with db.connection_context(), db.atomic():
                versions.bump(1 + i % territories)

        def moved(i: int) -> None:
            bridge.watch()

        full = _median_ms(lambda _i: bridge.reload(), rounds)
        one = []
        for i in range(rounds):
            move(i)
            one.append(_median_ms(moved, 1))
        still = _median_ms(lambda _i: bridge.watch(), rounds)
    one_ms = statistics.median(one)
    print(f"\n{territories} territories, {len(rows)} gates, SQLite, medians of {rounds}")
    print(f"full reload            {full:8.1f} ms")
    print(f"one territory moved    {one_ms:8.1f} ms")
    print(f"nothing moved          {still:8.1f} ms")
    print(f"ratio full/moved: {full / one_ms:.0f}  (what each pass filed would cost the "
          f"bridge's loop if every gate were read again)")


if __name__ == "__main__":
    main()
