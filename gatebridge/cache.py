"""A read-through cache of access decisions, so a card at the gate rarely waits for the database.

Keyed by (territory_id, credential kind, credential value, direction). A miss asks the injected
`loader`, which returns the decision and, when the answer has a natural end (the pass
expires, the paid period ends), a monotonic deadline; the answer is kept until the earlier
of that deadline and the TTL. "Unknown credential" answers are kept only briefly, so a
card registered a moment ago is recognised soon even without an invalidation.

An invalidation (the territory's access changed) makes the affected answers untrusted
while the database answers: the next lookup reads them again. It does not take away the
fallback: besides the trusted answers the cache keeps the last answer it loaded for every
credential, and when the database fails that answer is served marked stale, provided it
is not «unknown» and its own deadline has not passed. With no such answer the error
propagates and the caller answers «try again» (6).

After an invalidation the service reads those last answers again (`refresh`), so a change
made while the database answers reaches the fallback too. The trade-off, on purpose: during
an outage the bridge cannot learn of a change (a pass revoked or a member blocked while the
database is down, or in the moment before), so it answers what it last knew, as SPEC §7
asks («the bridge goes on answering from its cache»). A pass that ends by the clock still
stops opening when it ends (`valid_until`). Dropping the fallback on every change instead
would leave almost nobody able to enter a busy territory during an outage, where passes are
filed all day.

Everything lives on the instance: no module-level state.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.db import DB_ERRORS
from gatebridge import protocol as p

CacheKey = tuple[int, str, str, int]
Loader = Callable[[CacheKey], tuple[Any, float | None]]



def cache_key(
    territory_id: int, credential: p.Credential, direction: int = p.Direction.ENTRY
) -> CacheKey:
    """The key for a credential presented in a territory, going in or out (an exit is
    asked only where exit is not free, and may be answered otherwise than an entry)."""
    return (territory_id, credential.kind, credential.value, int(direction))


def is_unknown(decision: Any) -> bool:
    """True for «unknown credential» answers: a code, or an object with a `code`."""
    return getattr(decision, "code", decision) == p.DecisionCode.DENY_UNKNOWN


@dataclass(frozen=True)
class Lookup:
    """One answer from the cache: the decision, and whether it came from memory or is stale."""

    decision: Any
    hit: bool
    stale: bool = False


class _Entry:
    __slots__ = ("decision", "expires", "valid_until", "unknown")

    def __init__(
        self, decision: Any, expires: float, valid_until: float | None, unknown: bool
    ) -> None:
        self.decision = decision
        self.expires = expires
        self.valid_until = valid_until
        self.unknown = unknown


class DecisionCache:
    """LRU-bounded, TTL-limited read-through cache of decisions; safe for greenlets and threads.

    `_entries` holds the answers trusted now; `_last` the last answer loaded for each key,
    kept through invalidations and served only when the database fails. Both are bounded
    by `maxsize` (least recently used go first).

    No lock is held while the loader runs (it may yield on database I/O); an invalidation
    that arrives meanwhile bumps a generation, so the loader's now-outdated answer is
    returned to its caller but not stored (the fallback keeps the answer before it).
    """

    def __init__(
        self,
        loader: Loader,
        maxsize: int = 100_000,
        ttl: float = 60.0,
        unknown_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        db_errors: tuple[type[BaseException], ...] = DB_ERRORS,
        unknown: Callable[[Any], bool] = is_unknown,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.loader = loader
        self.maxsize = maxsize
        self.ttl = ttl
        self.unknown_ttl = unknown_ttl
        self.clock = clock
        self.db_errors = db_errors
        self.is_unknown = unknown
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._last: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._by_territory: dict[int, set[CacheKey]] = {}
        self._generation = 0
        self._territory_generation: dict[int, int] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.stale_served = 0
        self.load_errors = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Any:
        """The decision for `key`, from memory or the loader; raises when neither can answer."""
        return self.lookup(key).decision

    def lookup(self, key: CacheKey) -> Lookup:
        """Like get(), but also tells whether it was a hit and whether the answer is stale."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry.expires:
                self._entries.move_to_end(key)
                self.hits += 1
                return Lookup(entry.decision, hit=True)
            self.misses += 1
            generation = self._generation_of(key[0])
        try:
            decision, valid_until = self.loader(key)
        except self.db_errors:
            stale = self._stale(key, now)
            if stale is None:
                raise  # nothing trustworthy to say: the caller answers «try again»
            return stale
        self._store(key, decision, valid_until, generation)
        return Lookup(decision, hit=False)

    def _stale(self, key: CacheKey, now: float) -> Lookup | None:
        with self._lock:
            self.load_errors += 1
            decision = self._fallback(key, now)
            if decision is None:
                return None
            self.stale_served += 1
            return Lookup(decision, hit=True, stale=True)

    def fallback(self, key: CacheKey) -> Any | None:
        """The last answer kept for `key` if an outage may serve it, without asking the
        loader (whose database has just failed the caller, perhaps slowly)."""
        with self._lock:
            return self._fallback(key, self.clock())

    def _fallback(self, key: CacheKey, now: float) -> Any | None:
        entry = self._last.get(key)
        if entry is None or entry.unknown:
            return None
        if entry.valid_until is not None and now >= entry.valid_until:
            return None
        self._last.move_to_end(key)
        return entry.decision

    def _generation_of(self, territory_id: int) -> tuple[int, int]:
        return self._generation, self._territory_generation.get(territory_id, 0)

    def _store(
        self,
        key: CacheKey,
        decision: Any,
        valid_until: float | None,
        generation: tuple[int, int],
    ) -> None:
        now = self.clock()
        unknown = self.is_unknown(decision)
        expires = now + (self.unknown_ttl if unknown else self.ttl)
        if valid_until is not None:
            expires = min(expires, valid_until)
        entry = _Entry(decision, expires, valid_until, unknown)
        territory_id = key[0]
        with self._lock:
            if self._generation_of(territory_id) != generation:
                return  # invalidated while loading: this answer may predate the change
            # The newest answer is the fallback even when it is not worth keeping as a hit:
            # an «unknown» or an ended pass must replace an older grant there.
            self._last[key] = entry
            self._last.move_to_end(key)
            while len(self._last) > self.maxsize:
                self._last.popitem(last=False)
            if expires <= now:
                return
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._by_territory.setdefault(territory_id, set()).add(key)
            while len(self._entries) > self.maxsize:
                old_key, _ = self._entries.popitem(last=False)
                self._unindex(old_key)
                self.evictions += 1

    def _unindex(self, key: CacheKey) -> None:
        keys = self._by_territory.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_territory[key[0]]

    def invalidate(self, territory_id: int | None = None, key: CacheKey | None = None) -> int:
        """Stop trusting one key, or everything of one territory; returns how many entries went.

        They are read again on their next lookup; their last answers stay as the fallback
        for a database outage (see the module's docstring).
        """
        if key is None and territory_id is None:
            return self.invalidate_all()
        with self._lock:
            if key is not None:
                self._bump(key[0])
                if self._entries.pop(key, None) is None:
                    return 0
                self._unindex(key)
                return 1
            tid = key[0] if territory_id is None else territory_id
            self._bump(tid)
            keys = self._by_territory.pop(tid, set())
            for k in keys:
                self._entries.pop(k, None)
            return len(keys)

    def _bump(self, territory_id: int) -> None:
        self._territory_generation[territory_id] = (
            self._territory_generation.get(territory_id, 0) + 1
        )

    def refresh(self, territory_id: int) -> int:
        """Read again the last answers kept for a territory whose access changed, while the
        database answers: an outage after the change then falls back on what holds now, not
        on what held before it (a pass revoked a minute ago must not come back as the last
        known grant). Returns how many were read; stops at the first database error, leaving
        the rest as they were.
        """
        with self._lock:
            keys = [key for key in self._last if key[0] == territory_id]
        done = 0
        for key in keys:
            with self._lock:
                generation = self._generation_of(territory_id)
            try:
                decision, valid_until = self.loader(key)
            except self.db_errors:
                break
            self._store(key, decision, valid_until, generation)
            done += 1
        return done

    def invalidate_all(self) -> int:
        """Stop trusting every answer (the fallback stays); returns how many entries went."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._by_territory.clear()
            self._generation += 1
            return count

    def stats(self) -> dict[str, int]:
        """Counters for the console and the benchmarks."""
        return {
            "size": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "stale_served": self.stale_served,
            "load_errors": self.load_errors,
        }
