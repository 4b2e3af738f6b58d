"""DecisionCache with a fake clock: TTLs, pass ends, unknowns, LRU bound, invalidation, outages."""

from __future__ import annotations

import gevent
import peewee
import pytest

from gatebridge import protocol as p
from gatebridge.cache import DecisionCache, cache_key

GRANT, DENY, UNKNOWN = (
    p.DecisionCode.GRANT,
    p.DecisionCode.DENY_NO_PASS,
    p.DecisionCode.DENY_UNKNOWN,
)
CARD = (1, "card", "123")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Loader:
    """Answers from a dict {key: (decision, valid_until)}; can be made to fail like a dead DB."""

    def __init__(self, answers=None, default=(GRANT, None)):
        self.answers = answers or {}
        self.default = default
        self.calls = []
        self.error = None

    def __call__(self, key):
        self.calls.append(key)
        if self.error is not None:
            raise self.error
        return self.answers.get(key, self.default)


@pytest.fixture
def clock():
    return Clock()


def test_a_miss_loads_and_a_hit_does_not(clock):
    loader = Loader()
    cache = DecisionCache(loader, clock=clock)
    first = cache.lookup(CARD)
    second = cache.lookup(CARD)
    assert (first.decision, first.hit, first.stale) == (GRANT, False, False)
    assert (second.decision, second.hit) == (GRANT, True)
    assert loader.calls == [CARD]
    assert cache.stats() == {
        "size": 1,
        "hits": 1,
        "misses": 1,
        "evictions": 0,
        "stale_served": 0,
        "load_errors": 0,
    }


def test_answers_expire_after_the_ttl(clock):
    loader = Loader()
    cache = DecisionCache(loader, ttl=60, clock=clock)
    cache.get(CARD)
    clock.advance(59.9)
    cache.get(CARD)
    assert len(loader.calls) == 1
    clock.advance(0.2)
    cache.get(CARD)
    assert len(loader.calls) == 2


def test_a_pass_ending_before_the_ttl_ends_the_entry(clock):
    loader = Loader({CARD: (GRANT, clock.now + 10)})
    cache = DecisionCache(loader, ttl=60, clock=clock)
    cache.get(CARD)
    clock.advance(9.9)
    assert cache.lookup(CARD).hit
    clock.advance(0.2)
    loader.answers[CARD] = (p.DecisionCode.DENY_EXPIRED, None)
    assert cache.lookup(CARD).decision == p.DecisionCode.DENY_EXPIRED
    assert len(loader.calls) == 2


def test_a_pass_ending_after_the_ttl_still_expires_at_the_ttl(clock):
    loader = Loader({CARD: (GRANT, clock.now + 3600)})
    cache = DecisionCache(loader, ttl=60, clock=clock)
    cache.get(CARD)
    clock.advance(60.1)
    cache.get(CARD)
    assert len(loader.calls) == 2


def test_an_already_ended_answer_is_not_kept(clock):
    loader = Loader({CARD: (GRANT, clock.now - 1)})
    cache = DecisionCache(loader, clock=clock)
    cache.get(CARD)
    cache.get(CARD)
    assert len(loader.calls) == 2 and len(cache) == 0


def test_unknown_credentials_are_kept_only_briefly(clock):
    loader = Loader(default=(UNKNOWN, None))
    cache = DecisionCache(loader, ttl=60, unknown_ttl=5, clock=clock)
    cache.get(CARD)
    clock.advance(4.9)
    cache.get(CARD)
    assert len(loader.calls) == 1
    clock.advance(0.2)
    cache.get(CARD)
    assert len(loader.calls) == 2


def test_unknown_is_recognised_on_richer_decision_objects(clock):
    class Answer:
        code = UNKNOWN

    loader = Loader(default=(Answer(), None))
    cache = DecisionCache(loader, ttl=60, unknown_ttl=5, clock=clock)
    cache.get(CARD)
    clock.advance(6)
    cache.get(CARD)
    assert len(loader.calls) == 2


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(clock):
    loader = Loader()
    cache = DecisionCache(loader, maxsize=3, clock=clock)
    keys = [(1, "card", str(n)) for n in range(4)]
    for key in keys[:3]:
        cache.get(key)
    cache.get(keys[0])  # now the most recently used
    cache.get(keys[3])  # evicts keys[1]
    assert len(cache) == 3 and cache.evictions == 1
    calls = len(loader.calls)
    assert cache.lookup(keys[0]).hit and cache.lookup(keys[2]).hit and cache.lookup(keys[3]).hit
    assert not cache.lookup(keys[1]).hit
    assert len(loader.calls) == calls + 1


def test_invalidate_one_key_a_territory_or_everything(clock):
    loader = Loader()
    cache = DecisionCache(loader, clock=clock)
    a1, a2, b1 = (1, "card", "1"), (1, "plate", "A001AA77"), (2, "card", "1")
    for key in (a1, a2, b1):
        cache.get(key)
    assert cache.invalidate(key=a1) == 1
    assert not cache.lookup(a1).hit and cache.lookup(a2).hit
    assert cache.invalidate(territory_id=1) == 2
    assert not cache.lookup(a2).hit and cache.lookup(b1).hit
    assert cache.invalidate_all() == 2  # b1 and the reloaded a2
    assert len(cache) == 0
    assert cache.invalidate(territory_id=99) == 0


def test_an_invalidation_during_a_load_keeps_the_old_answer_out(clock):
    cache = None
    calls = []

    def loader(key):
        calls.append(key)
        if len(calls) == 1:
            # A pass is revoked on the web while this (old) answer is on its way.
            cache.invalidate(territory_id=key[0])
            return GRANT, None
        return DENY, None

    cache = DecisionCache(loader, clock=clock)
    assert cache.get(CARD) == GRANT
    assert cache.get(CARD) == DENY
    assert len(calls) == 2


def test_a_database_error_serves_a_stale_answer_marked_stale(clock):
    loader = Loader()
    cache = DecisionCache(loader, ttl=60, clock=clock)
    cache.get(CARD)
    clock.advance(120)
    loader.error = peewee.OperationalError("could not connect to server")
    answer = cache.lookup(CARD)
    assert (answer.decision, answer.stale) == (GRANT, True)
    assert cache.stale_served == 1 and cache.load_errors == 1
    loader.error = None
    fresh = cache.lookup(CARD)
    assert (fresh.decision, fresh.hit, fresh.stale) == (GRANT, False, False)


def test_a_database_error_without_a_usable_entry_raises(clock):
    loader = Loader({(1, "card", "ended"): (GRANT, clock.now + 10)}, default=(UNKNOWN, None))
    cache = DecisionCache(loader, clock=clock)
    cache.get((1, "card", "ended"))
    cache.get((1, "card", "unknown"))
    clock.advance(11)
    loader.error = peewee.InterfaceError("connection already closed")
    # Never seen, a pass that has ended, an unknown answer: nothing trustworthy to serve.
    for key in ((1, "card", "never"), (1, "card", "ended"), (1, "card", "unknown")):
        with pytest.raises(peewee.InterfaceError):
            cache.get(key)
    assert cache.stale_served == 0 and cache.load_errors == 3


def test_an_invalidation_keeps_the_last_answer_as_the_outage_fallback(clock):
    loader = Loader()
    cache = DecisionCache(loader, clock=clock)
    cache.get(CARD)
    # An unrelated pass is filed in the territory: the answer is re-read while the DB is up…
    assert cache.invalidate(territory_id=CARD[0]) == 1
    assert not cache.lookup(CARD).hit and len(loader.calls) == 2
    cache.invalidate(territory_id=CARD[0])
    # …and when the DB is down, the last known answer is still there.
    loader.error = peewee.OperationalError("could not connect to server")
    answer = cache.lookup(CARD)
    assert (answer.decision, answer.stale) == (GRANT, True)
    cache.invalidate_all()
    assert cache.lookup(CARD).decision == GRANT


def test_the_fallback_is_the_newest_answer_loaded(clock):
    revoked = (1, "plate", "A001AA77")
    loader = Loader({CARD: (GRANT, clock.now + 10), revoked: (GRANT, None)})
    cache = DecisionCache(loader, clock=clock)
    cache.get(CARD)
    cache.get(revoked)
    cache.invalidate(territory_id=1)
    # Re-read after the change: one pass was revoked, the other has ended by the clock.
    loader.answers[revoked] = (DENY, None)
    clock.advance(11)
    assert cache.get(revoked) == DENY
    loader.error = peewee.OperationalError("could not connect to server")
    assert cache.lookup(revoked).decision == DENY
    with pytest.raises(peewee.OperationalError):
        cache.get(CARD)
    # A pass deleted on the web (now «unknown») does not grant from an older answer.
    loader.error = None
    loader.answers[revoked] = (UNKNOWN, None)
    cache.invalidate(territory_id=1)
    assert cache.get(revoked) == UNKNOWN
    clock.advance(6)  # past the «unknown» TTL
    loader.error = peewee.OperationalError("could not connect to server")
    with pytest.raises(peewee.OperationalError):
        cache.get(revoked)


def test_a_refresh_after_a_change_brings_a_revocation_to_the_fallback(clock):
    # Revoked while the database is up, not presented since, and then the database goes:
    # the fallback must not be the grant from before the revocation.
    revoked = (1, "plate", "A001AA77")
    other = (2, "plate", "B002BB77")
    loader = Loader({revoked: (GRANT, None), other: (GRANT, None)})
    cache = DecisionCache(loader, clock=clock)
    cache.get(revoked)
    cache.get(other)
    loader.answers[revoked] = (DENY, None)
    cache.invalidate(territory_id=1)
    assert cache.refresh(1) == 1  # only the territory that changed is read again
    assert loader.calls[-1] == revoked
    loader.error = peewee.OperationalError("could not connect to server")
    assert cache.get(revoked) == DENY
    assert cache.refresh(2) == 0  # the database is down: nothing read, nothing lost
    clock.advance(3600)
    assert cache.lookup(other).decision == GRANT


def test_bugs_in_the_loader_are_not_hidden_behind_stale_answers(clock):
    loader = Loader()
    cache = DecisionCache(loader, clock=clock)
    cache.get(CARD)
    clock.advance(61)
    loader.error = KeyError("bug")
    with pytest.raises(KeyError):
        cache.get(CARD)


def test_cache_key_from_a_credential():
    assert cache_key(5, p.Credential("plate", "A777AA99")) == (5, "plate", "A777AA99", 1)
    # An exit may be answered otherwise than an entry (access.decide): a key of its own.
    assert cache_key(5, p.Credential("plate", "A777AA99"), p.Direction.EXIT) == (
        5, "plate", "A777AA99", 2)


def test_greenlets_loading_at_once_all_get_answers(clock):
    def loader(key):
        gevent.sleep(0.01)  # a database round trip that yields
        return GRANT, None

    cache = DecisionCache(loader, maxsize=50, clock=clock)
    jobs = [gevent.spawn(cache.get, (1, "card", str(n % 80))) for n in range(400)]
    gevent.joinall(jobs, timeout=5, raise_error=True)
    assert all(job.value == GRANT for job in jobs)
    assert len(cache) == 50
