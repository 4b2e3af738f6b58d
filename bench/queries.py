"""The hot queries at 10 000 and at 1 000 000 passes on PostgreSQL: time, ratio and plans.

Fills two databases with bench/gen.py (a small one, 10 000 passes, and a large one) on a
throwaway PostgreSQL server, then runs, in the largest territory of each, what the pages run:

- check        the operator's «Проверить номер»: check_plate() for a plate with passes —
               the gate's own lookup, which brings the passes' owners and units along
- resident     «Мои заявки»: a resident's active, upcoming and ended passes
- manager p1   the manager's list, first page (25, newest first)
- manager deep the same list, a page from the middle, by keyset (the pager's link)
- offset deep  that page by OFFSET, as the list paged before: shown, not aimed at
- feed poll    the live feed's poll: events of the territory after the last one seen
- log p1       «Журнал», first page (50); log deep: a page from the middle by keyset
- log day      the log filtered to one day

and prints each one's median time, the ratio large/small (aim: at most 1.5) and the
EXPLAIN (ANALYZE) plan of each on the large database. The two databases take turns, a
slice of --seconds at a time (--rounds), so a machine that slows down midway weighs on both.

    .venv/bin/python bench/queries.py                 # quick: 10 000 vs 100 000 passes
    .venv/bin/python bench/queries.py --large 1       # the real thing: vs 1 000 000 passes
    .venv/bin/python bench/queries.py --small-url postgresql://… --large-url postgresql://…

(--large 1 spends a few minutes in gen.py first.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.db import db, init_db  # noqa: E402

AIM = 1.5
PLATE_PASSES_CHECKED = 4


def _plan(query) -> str:
    sql, params = query.sql()
    rows = db.execute_sql("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + sql, params).fetchall()
    return "\n".join("    " + r[0] for r in rows)


class Workload:
    """The queries of one database, with their inputs picked from its largest territory."""

    def __init__(self, url: str) -> None:
        from domain.gates import GateEvent
        from domain.passes import VehiclePass

        init_db(url)
        db.connect(reuse_if_open=True)
        self.now = dt.datetime.now(dt.UTC)
        VP = VehiclePass
        # The largest territory by passes (gen.py makes territories 1–5 the large ones).
        self.tid = 1
        self.passes = VP.select().where(VP.territory == self.tid).count()
        self.events = GateEvent.select().where(GateEvent.territory == self.tid).count()
        # A plate with several passes, as a resident's own car has: the same number in both
        # databases (the busiest plate of a larger territory simply has more rows to judge).
        self.plate = db.execute_sql(
            "SELECT plate FROM vehicle_pass WHERE territory_id = %s GROUP BY plate "
            "ORDER BY abs(count(*) - %s), plate LIMIT 1", (self.tid, PLATE_PASSES_CHECKED)
        ).fetchone()[0]
        self.resident = db.execute_sql(
            "SELECT account_id FROM vehicle_pass WHERE territory_id = %s GROUP BY account_id "
            "ORDER BY count(*) DESC LIMIT 1", (self.tid,)
        ).fetchone()[0]
        listing = VP.of_territory(self.tid)
        self.middle = listing.offset(self.passes // 2).first()
        self.middle_offset = self.passes // 2
        last = GateEvent.select(GateEvent.id).where(GateEvent.territory == self.tid)
        self.last_event = last.order_by(GateEvent.id.desc()).first().id
        self.mid_event = last.order_by(GateEvent.id.desc()).offset(self.events // 2).first().id
        self.day = (self.now - dt.timedelta(days=40)).replace(hour=0, minute=0, second=0)

    def queries(self) -> dict[str, tuple[Callable[[], object], object]]:
        """name -> (run it once, the query whose plan to show)."""
        from blueprints.passes.routes import EVENTS_PER_PAGE, FEED_BATCH, PER_PAGE
        from domain.access import PLATE_PASSES, check_plate
        from domain.gates import EventFilter, GateEvent
        from domain.passes import OWN_LIVE, normalize_plate, own_passes
        from domain.passes import VehiclePass as VP
        from domain.territories import Territory

        tid = self.tid
        territory = Territory.get_by_id(tid)
        live_own = {"territory": tid, "account": self.resident, "now": self.now}

        def resident():
            own_passes(tid, self.resident, self.now)

        listing = VP.of_territory(tid)
        keyset_deep = listing.where(
            (VP.created_at <= self.middle.created_at)
            & ((VP.created_at < self.middle.created_at) | (VP.id < self.middle.id))
        ).limit(PER_PAGE + 1)
        offset_deep = listing.offset(self.middle_offset).limit(PER_PAGE + 1)
        poll = (GateEvent.feed(tid).where(GateEvent.id > self.last_event - 5)
                .order_by(GateEvent.id).limit(FEED_BATCH))
        log1 = GateEvent.feed(tid).limit(EVENTS_PER_PAGE + 1)
        log_deep = GateEvent.feed(tid).where(GateEvent.id < self.mid_event).limit(
            EVENTS_PER_PAGE + 1)
        day = EventFilter(since=self.day, until=self.day + dt.timedelta(days=1)).apply(
            GateEvent.feed(tid)).limit(EVENTS_PER_PAGE + 1)
        check_plan = SimpleNamespace(
            sql=lambda: PLATE_PASSES.sql(territory=tid, plate=normalize_plate(self.plate)))
        return {
            "check": (lambda: check_plate(territory, self.plate, self.now), check_plan),
            "resident": (resident, SimpleNamespace(sql=lambda: OWN_LIVE.sql(**live_own))),
            "manager p1": (lambda: VP.page_after(listing, None, PER_PAGE),
                           listing.limit(PER_PAGE + 1)),
            "manager deep": (lambda: VP.page_after(listing, self.middle, PER_PAGE), keyset_deep),
            "offset deep": (lambda: list(offset_deep.clone()), offset_deep),
            "feed poll": (lambda: GateEvent.with_people(poll.clone(), newest_first=False), poll),
            "log p1": (lambda: GateEvent.with_people(log1.clone()), log1),
            "log deep": (lambda: GateEvent.with_people(log_deep.clone()), log_deep),
            "log day": (lambda: GateEvent.with_people(day.clone()), day),
        }


def measure(run: Callable[[], object], seconds: float) -> list[float]:
    """Milliseconds of `run`, repeated for about `seconds` (at least 10 times)."""
    run()  # warm the cache: the page would be warm too
    times = []
    stop = time.perf_counter() + seconds
    while len(times) < 10 or time.perf_counter() < stop:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def run(small_url: str, large_url: str, seconds: float, rounds: int = 5) -> None:
    samples: dict[str, dict[str, list[float]]] = {}
    plans: dict[str, str] = {}
    sizes = {}
    for turn in range(rounds):
        for label, url in (("small", small_url), ("large", large_url)):
            work = Workload(url)
            sizes[label] = (work.passes, work.events)
            for name, (once, query) in work.queries().items():
                times = measure(once, seconds / rounds)
                samples.setdefault(name, {}).setdefault(label, []).extend(times)
                if label == "large" and turn == rounds - 1:
                    plans[name] = _plan(query)
            db.close()
    (sp, se), (lp, le) = sizes["small"], sizes["large"]
    print(f"territory 1: small {sp:,d} passes / {se:,d} events; "
          f"large {lp:,d} passes / {le:,d} events; {rounds} rounds, medians")
    print(f"{'query':14s} {'small ms':>9s} {'large ms':>9s} {'ratio':>6s}")
    for name, by_size in samples.items():
        small, large = (statistics.median(by_size[k]) for k in ("small", "large"))
        ratio = large / small
        mark = "" if name == "offset deep" else ("  ok" if ratio <= AIM else "  OVER AIM")
        print(f"{name:14s} {small:9.2f} {large:9.2f} {ratio:6.2f}{mark}")
    print("\nplans on the large database (EXPLAIN ANALYZE):")
    for name, plan in plans.items():
        print(f"\n-- {name}\n{plan}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=float, default=0.01, help="scale of the small database")
    parser.add_argument("--large", type=float, default=0.1,
                        help="scale of the large one (1 = 1 000 000 passes; default 0.1)")
    parser.add_argument("--small-url", help="an already generated small database")
    parser.add_argument("--large-url", help="an already generated large database")
    parser.add_argument("--seconds", type=float, default=1.0, help="per query and database")
    parser.add_argument("--rounds", type=int, default=5,
                        help="turns the two databases take, each a slice of --seconds")
    args = parser.parse_args()
    if args.small_url and args.large_url:
        run(args.small_url, args.large_url, args.seconds, args.rounds)
        return
    from bench.gen import BENCH_PG, generate
    from tests.pg import Cluster

    with Cluster.create(BENCH_PG) as pg:
        urls = {}
        for label, scale in (("small", args.small), ("large", args.large)):
            print(f"generating the {label} database (scale {scale})…")
            urls[label] = pg.create_database(f"bench_{label}")
            generate(urls[label], scale, log=lambda _line: None)
        run(urls["small"], urls["large"], args.seconds, args.rounds)


if __name__ == "__main__":
    main()
