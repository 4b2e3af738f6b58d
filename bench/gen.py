"""Fill a database with Propusk data at scale: territories, accounts, passes and gate events.

At --scale 1: 10 000 territories, 100 000 accounts, 1 000 000 passes, 10 000 000 events
(plus their units, memberships and gates). The shapes are meant to look like life: most
territories are small, a few are very large (the first five hold a quarter of everything);
every person belongs to a territory, most with a unit; plates are in the Russian formats
(mostly private cars, some taxis, trailers and foreign ones) and a car comes back for new
passes; events are spread over the last 14 months, ids in time order, three in four at a
plate camera.

    .venv/bin/python bench/gen.py                      # quick: --scale 0.01, own PostgreSQL
    .venv/bin/python bench/gen.py --scale 1            # the full size (a few minutes)
    .venv/bin/python bench/gen.py --scale 1 --database-url postgresql://…  # keep the data
    .venv/bin/python bench/gen.py --database-url sqlite:////tmp/big.db --scale 0.1

Without --database-url the script starts a throwaway PostgreSQL server (a temp folder,
a Unix socket), fills it, prints the timings and removes it again: a speed test of the
loader. On PostgreSQL rows go in with COPY, on SQLite with executemany in big batches;
secondary indexes are dropped before and rebuilt after the big tables load.
The database must be empty (a fresh one): the schema is created with `upgrade()`.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import io
import itertools
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peewee import PostgresqlDatabase  # noqa: E402

from domain.db import db, init_db  # noqa: E402
from domain.schema import upgrade  # noqa: E402

FULL = {"territories": 10_000, "accounts": 100_000, "passes": 1_000_000, "events": 10_000_000}
LARGE_TERRITORIES = 5
LARGE_SHARE = 0.25  # of accounts, passes and events, together
PASSWORD = "bench2024pass"  # noqa: S105  every generated person signs in with it
SEED = 8
DAYS = 425  # events and passes reach back 14 months: the 400-day retention has work to do

LATIN = "ABEKMHOPCTYX"  # the plate letters, stored as their Latin twins
REGIONS = ["77", "97", "99", "177", "197", "199", "777", "799", "50", "90", "150", "190",
           "750", "78", "98", "178", "47", "147", "16", "116", "66", "96", "196", "54", "154",
           "23", "93", "123", "61", "161", "02", "102", "52", "152", "63", "163"]
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов",
            "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев",
            "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев"]
NAMES = ["Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья",
         "Кирилл", "Михаил", "Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна"]
PATRONYMICS = ["Александрович", "Дмитриевич", "Сергеевич", "Андреевич", "Алексеевич",
               "Иванович", "Петрович", "Михайлович", "Николаевич", "Владимирович"]
KINDS = ["residential"] * 6 + ["business"] * 2 + ["kindergarten", "other"]
STREETS = ["ул. Ленина", "Садовая ул.", "пр. Мира", "ул. Гагарина", "Лесная ул.",
           "Набережная", "Центральная ул.", "Школьная ул."]
# (code, reason, share) of plate events at an entry.
OUTCOMES = [(1, "pass_valid", 0.80), (4, "unknown_plate", 0.08), (3, "pass_expired", 0.06),
            (2, "revoked", 0.03), (5, "account_blocked", 0.02), (6, "unavailable", 0.01)]


# A bench loads millions of rows: more memory for the throwaway cluster.
BENCH_PG = {"shared_buffers": "512MB", "maintenance_work_mem": "512MB", "max_wal_size": "4GB"}


def counts(scale: float) -> dict[str, int]:
    """How many rows of each kind at `scale` (1 = the full size)."""
    return {k: max(LARGE_TERRITORIES * 4 if k == "territories" else 50, int(v * scale))
            for k, v in FULL.items()}


def plate_for(rng: random.Random) -> tuple[str, bool]:
    """A random plate (normalised) and whether it is foreign."""
    roll = rng.random()
    letter = rng.choice
    region = rng.choice(REGIONS)
    if roll < 0.86:  # private car: А 123 ВС 77
        return (f"{letter(LATIN)}{rng.randint(1, 999):03d}{letter(LATIN)}{letter(LATIN)}"
                f"{region}", False)
    if roll < 0.93:  # taxi: АВ 123 777
        region = rng.choice(["777", "799", "177"])
        return f"{letter(LATIN)}{letter(LATIN)}{rng.randint(1, 999):03d}{region}", False
    if roll < 0.96:  # trailer: АВ 1234 77
        region = rng.choice(REGIONS[:20])[:2]
        return f"{letter(LATIN)}{letter(LATIN)}{rng.randint(1, 9999):04d}{region}", False
    if roll < 0.98:  # motorcycle: 1234 АВ 77
        return f"{rng.randint(1, 9999):04d}{letter(LATIN)}{letter(LATIN)}{region}", False
    # foreign: Belarus, Kazakhstan, Finland-like
    return rng.choice([f"{rng.randint(1000, 9999)}AB{rng.randint(1, 7)}",
                       f"{rng.randint(100, 999)}ABC{rng.randint(1, 17):02d}",
                       f"ABC{rng.randint(100, 999)}"]), True


class Loader:
    """Writes rows of one table in big batches: COPY on PostgreSQL, executemany on SQLite."""

    BATCH = 100_000

    def __init__(self, database: Any) -> None:
        self.database = database
        self.pg = isinstance(database, PostgresqlDatabase)

    def load(self, table: str, columns: list[str], rows: Iterable[tuple]) -> int:
        total = 0
        rows = iter(rows)
        while batch := list(itertools.islice(rows, self.BATCH)):
            if self.pg:
                self._copy(table, columns, batch)
            else:
                marks = ", ".join("?" * len(columns))
                sql = f'INSERT INTO "{table}" ({_names(columns)}) VALUES ({marks})'
                self.database.cursor().executemany(sql, batch)
            total += len(batch)
        return total

    def _copy(self, table: str, columns: list[str], batch: list[tuple]) -> None:
        out = io.StringIO()
        for row in batch:
            out.write("\t".join(_pg_text(v) for v in row))
            out.write("\n")
        out.seek(0)
        cursor = self.database.cursor()
        cursor.copy_expert(f'COPY "{table}" ({_names(columns)}) FROM STDIN', out)

    def without_indexes(self, tables: list[str], work: Callable[[], None]) -> None:
        """Run `work` with the tables' secondary indexes dropped, then build them again."""
        saved = []
        for table in tables:
            for index in self.database.get_indexes(table):
                if index.sql and not index.name.endswith("_pkey"):
                    saved.append(index)
                    self.database.execute_sql(f'DROP INDEX "{index.name}"')
        work()
        for index in saved:
            self.database.execute_sql(index.sql)

    def finish(self, tables: list[str]) -> None:
        """Move the id sequences past the loaded ids and refresh the planner's statistics."""
        for table in tables:
            if self.pg:
                self.database.execute_sql(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
                )
        self.database.execute_sql("ANALYZE")


def _names(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _pg_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


class Generator:
    """Makes the rows; ids are assigned here so the tables can reference each other."""

    def __init__(self, scale: float, now: dt.datetime, seed: int = SEED) -> None:
        self.n = counts(scale)
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0, tzinfo=None)
        self.start = self.now - dt.timedelta(days=DAYS)
        t = self.n["territories"]
        rest = [self.rng.paretovariate(1.2) for _ in range(t - LARGE_TERRITORIES)]
        big = sum(rest) * LARGE_SHARE / (1 - LARGE_SHARE) / LARGE_TERRITORIES
        self.weights = [big] * LARGE_TERRITORIES + rest
        self.cum = list(itertools.accumulate(self.weights))
        self.members: dict[int, list[tuple[int, int | None]]] = {}  # tid -> (account, unit)
        self.plates: dict[int, str] = {}  # account -> own car
        self.gates: dict[int, list[int]] = {}
        self.seen_plates: dict[int, list[str]] = {}

    def territory(self) -> int:
        """A territory id drawn by size."""
        return bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1]) + 1

    def stamp(self, day_offset: float) -> str:
        return (self.start + dt.timedelta(days=day_offset)).strftime("%Y-%m-%d %H:%M:%S")

    def territories(self) -> Iterator[tuple]:
        for i in range(1, self.n["territories"] + 1):
            yield (i, f"Территория {i}", self.rng.choice(KINDS),
                   f"{self.rng.choice(STREETS)}, {self.rng.randint(1, 200)}",
                   "Europe/Moscow", f"{100000 + i:06d}", True, False, True, 2, 15000, 48,
                   self.stamp(0))

    TERRITORY_COLUMNS = ["id", "name", "kind", "address", "timezone", "code", "passes_enabled",
                         "app_access_free", "free_exit", "max_permanent_passes",
                         "card_price_kopecks", "card_validity_months", "created_at"]

    def accounts(self, password_hash: str) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["accounts"] + 1):
            email = f"person{i}@bench.example" if i % 5 == 0 else None
            yield (i, f"+79{i:09d}", email, rng.choice(SURNAMES), rng.choice(NAMES),
                   rng.choice(PATRONYMICS), password_hash, False, i % 500 == 0, email is not None,
                   self.stamp(rng.random() * 30), None, None)

    ACCOUNT_COLUMNS = ["id", "phone", "email", "surname", "name", "patronymic", "password_hash",
                       "is_admin", "blocked", "email_confirmed", "created_at", "deletion_due_at",
                       "locale"]

    def units_and_memberships(self) -> tuple[list[tuple], list[tuple]]:
        """Account i manages territory i; the rest are residents by territory size, most with
        a unit (a flat shared by one to three people), one in twenty also in a second place."""
        rng, t = self.rng, self.n["territories"]
        units: list[tuple] = []
        members: list[tuple] = []
        open_unit: dict[int, tuple[int, int]] = {}  # tid -> (unit id, places left)
        per_territory: dict[int, int] = {}

        def join(account: int, tid: int, role: str) -> None:
            unit = None
            if role == "resident" and rng.random() < 0.9:
                current = open_unit.get(tid)
                if current is None or current[1] == 0:
                    per_territory[tid] = per_territory.get(tid, 0) + 1
                    k = per_territory[tid]
                    units.append((len(units) + 1, tid, f"Дом {k // 100 + 1}, кв. {k % 100 + 1}",
                                  f"{tid:05d}{k:05d}", self.stamp(0)))
                    current = (len(units), rng.choice([1, 2, 2, 3]))
                unit = current[0]
                open_unit[tid] = (unit, current[1] - 1)
            members.append((len(members) + 1, account, tid, role, unit, self.stamp(0)))
            if role in ("resident", "manager"):
                self.members.setdefault(tid, []).append((account, unit))

        for i in range(1, self.n["accounts"] + 1):
            if i <= t:
                join(i, i, "manager")
            elif i <= t + LARGE_TERRITORIES * 3:
                join(i, (i - t - 1) % LARGE_TERRITORIES + 1, "operator")
            else:
                home = self.territory()
                join(i, home, "resident")
                if rng.random() < 0.05:
                    other = self.territory()
                    if other != home:
                        join(i, other, "resident")
        return units, members

    UNIT_COLUMNS = ["id", "territory_id", "name", "account_number", "created_at"]
    MEMBERSHIP_COLUMNS = ["id", "account_id", "territory_id", "role", "unit_id", "created_at"]

    def gate_rows(self) -> list[tuple]:
        rows = []
        for tid in range(1, self.n["territories"] + 1):
            n = 4 if tid <= LARGE_TERRITORIES else self.rng.choice([1, 1, 2])
            for k in range(n):
                rows.append((len(rows) + 1, tid, ["Въезд", "Выезд", "КПП-2", "Калитка"][k],
                             "both" if n == 1 else ("entry", "exit", "both", "both")[k],
                             "127.0.0.1", 5020 + tid % 1000, k + 1, 200, "big", False,
                             self.stamp(0)))
                self.gates.setdefault(tid, []).append(len(rows))
        return rows

    GATE_COLUMNS = ["id", "territory_id", "name", "direction", "host", "port", "unit_id",
                    "poll_ms", "word_order", "enabled", "created_at"]

    def passes(self) -> Iterator[tuple]:
        """Passes in order of filing: a resident's own car most of the time, else a guest."""
        rng = self.rng
        total = self.n["passes"]
        for i in range(1, total + 1):
            tid = self.territory()
            people = self.members.get(tid) or [(tid, None)]
            account, unit = rng.choice(people)
            if rng.random() < 0.6:
                if account not in self.plates:
                    self.plates[account] = plate_for(rng)[0]
                plate, foreign = self.plates[account], False
            else:
                plate, foreign = plate_for(rng)
            seen = self.seen_plates.setdefault(tid, [])
            if len(seen) < 64:
                seen.append(plate)
            day = DAYS * i / total + rng.random() - 1
            valid_from = self.start + dt.timedelta(days=max(0.0, day))
            created = valid_from.strftime("%Y-%m-%d %H:%M:%S")
            roll = rng.random()
            if roll < 0.15:
                valid_to = None  # permanent
            else:
                days = rng.choice([0.5, 1, 1, 1, 7, 7, 30, 90])
                valid_to = (valid_from + dt.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
            revoked = created if rng.random() < 0.04 else None
            yield (i, tid, account, unit, plate, foreign, created, valid_to, revoked,
                   account if revoked else None, created, account)

    PASS_COLUMNS = ["id", "territory_id", "account_id", "unit_id", "plate", "foreign",
                    "valid_from", "valid_to", "revoked_at", "revoked_by_id", "created_at",
                    "created_by_id"]

    def events(self) -> Iterator[tuple]:
        """Events in time order (ids follow time, as the feed expects)."""
        rng = self.rng
        total = self.n["events"]
        span = DAYS * 86400
        start = self.start
        # Formatting a datetime per row is the slow part: format each minute once.
        minute_cache: dict[int, str] = {}
        cum = [share for _c, _r, share in OUTCOMES]
        cum = list(itertools.accumulate(cum))
        for i in range(1, total + 1):
            second = int(span * i / total)
            minute = second // 60
            prefix = minute_cache.get(minute)
            if prefix is None:
                if len(minute_cache) > 100_000:
                    minute_cache.clear()
                prefix = (start + dt.timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M")
                minute_cache[minute] = prefix
            at = f"{prefix}:{second % 60:02d}"
            tid = self.territory()
            gates = self.gates[tid]
            gate = gates[i % len(gates)]
            roll = rng.random()
            if roll < 0.75:
                plates = self.seen_plates.get(tid)
                outcome = bisect.bisect_left(cum, rng.random() * cum[-1])
                code, reason, _share = OUTCOMES[min(outcome, len(OUTCOMES) - 1)]
                credential = rng.choice(plates) if plates and code != 4 else plate_for(rng)[0]
                people = self.members.get(tid)
                account = rng.choice(people)[0] if people and code != 4 else None
                yield (i, tid, gate, at, "plate", credential, 1 + (i & 1), code, reason,
                       account, None, "bridge")
            elif roll < 0.85:
                people = self.members.get(tid) or [(tid, None)]
                account = rng.choice(people)[0]
                yield (i, tid, gate, at, "phone", str(account), 1, 1, "member", account, account,
                       "web")
            elif roll < 0.95:
                yield (i, tid, gate, at, "card", str(rng.randint(10**9, 10**10 - 1)), 1,
                       4, "unknown_card", None, None, "bridge")
            else:
                yield (i, tid, gate, at, "manual", "", 1, 1, "operator_open", None, tid, "web")

    EVENT_COLUMNS = ["id", "territory_id", "gate_id", "at", "kind", "credential", "direction",
                     "code", "reason", "account_id", "actor_id", "source"]


def _password_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(PASSWORD)


def generate(url: str, scale: float, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Create the schema in an empty database at `url` and fill it; returns counts and timings."""
    init_db(url)
    database = db.obj
    database.connect(reuse_if_open=True)
    upgrade()
    loader = Loader(database)
    gen = Generator(scale, dt.datetime.now(dt.UTC))
    stats: dict[str, Any] = {"scale": scale}
    t_all = time.perf_counter()
    if loader.pg:
        # The rows are consistent by construction; skipping the per-row foreign-key
        # triggers makes COPY several times faster (needs a superuser; else they run).
        try:
            with database.atomic():
                database.execute_sql("SET session_replication_role = replica")
        except Exception:  # noqa: BLE001 - not a superuser: load with the checks on
            database.rollback()

    def step(name: str, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        t0 = time.perf_counter()
        with database.atomic():
            n = loader.load(table, columns, rows)
        seconds = time.perf_counter() - t0
        stats[name] = {"rows": n, "seconds": round(seconds, 1)}
        log(f"  {name:12s} {n:>10,d} rows {seconds:7.1f} s  ({n / max(seconds, 1e-6):,.0f}/s)")

    def big_tables() -> None:
        step("passes", "vehicle_pass", gen.PASS_COLUMNS, gen.passes())
        step("events", "gate_event", gen.EVENT_COLUMNS, gen.events())

    step("territories", "territory", gen.TERRITORY_COLUMNS, gen.territories())
    step("accounts", "account", gen.ACCOUNT_COLUMNS, gen.accounts(_password_hash()))
    units, members = gen.units_and_memberships()
    step("units", "unit", gen.UNIT_COLUMNS, units)
    step("memberships", "membership", gen.MEMBERSHIP_COLUMNS, members)
    step("gates", "gate", gen.GATE_COLUMNS, gen.gate_rows())
    t0 = time.perf_counter()
    loader.without_indexes(["vehicle_pass", "gate_event"], big_tables)
    loader.finish(["territory", "account", "unit", "membership", "gate", "vehicle_pass",
                   "gate_event"])
    loading = stats["passes"]["seconds"] + stats["events"]["seconds"]
    log(f"  indexes + analyze after the big tables: {time.perf_counter() - t0 - loading:.1f} s")
    if loader.pg:
        database.execute_sql("SET session_replication_role = origin")
    stats["seconds"] = round(time.perf_counter() - t_all, 1)
    log(f"  total {stats['seconds']:.1f} s")
    database.close()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01,
                        help="1 = 1 000 000 passes and 10 000 000 events (default 0.01)")
    parser.add_argument("--database-url", help="an EMPTY database to fill and keep "
                        "(default: a throwaway PostgreSQL server, removed afterwards)")
    args = parser.parse_args()
    sizes = ", ".join(f"{v:,d} {k}" for k, v in counts(args.scale).items())
    print(f"scale {args.scale}: {sizes}")
    if args.database_url:
        generate(args.database_url, args.scale)
        return
    from tests.pg import Cluster

    with Cluster.create(BENCH_PG) as pg:
        generate(pg.create_database("propusk_bench"), args.scale)


if __name__ == "__main__":
    main()
