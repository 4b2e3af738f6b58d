"""The bridge picks up a territory's gates and «Свободный выезд» when its version moves.

BridgeService runs in the (unpatched) test process with a reload interval far beyond the
test, so only the version poll can bring a change in. The test's database work runs in
gevent's thread pool, on a connection of its own: the service's greenlets share this
thread's connection.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import gevent
import pytest

from domain import gates, territories
from domain.db import db
from domain.territories import Territory, create_territory
from gatebridge import protocol as p
from gatebridge.service import BridgeService

pytestmark = [pytest.mark.slow, pytest.mark.timing]

# What the manager waits for: the version is read every WATCH_S (0.2 s), then the gates.
APPLIED_WITHIN_S = 1.0


def blocking(fn, *args, **kwargs):
    """A blocking call (HTTP, the database) in a thread; the bridge's greenlets keep running."""
    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        gevent.sleep(0.02)


def in_app(app, work):
    """`work()` in the app's context, on a connection of the calling thread's own."""
    def run():
        with app.app_context(), db.connection_context():
            return work()
    return blocking(run)


def configured(service, gate_id):
    """The gate's config as the poller has it; while the poller swaps it (a changed gate
    is taken out and started again, and the test may look in between), one that is
    neither of the changes waited for."""
    return service.poller.configs.get(gate_id) or SimpleNamespace(free_exit=True, port=None)


def answered(sim, seq):
    """The decision code the controller applied to event `seq` (None if none yet)."""
    found = wait_until(lambda: (s := blocking(sim.state))["applied_decision_seq"] == seq and s)
    return found and found["applied_decision_code"]


def test_free_exit_and_a_gate_s_new_port_apply_within_the_version_poll(
    app, make_account, simulator, start_simulator
):
    """A manager switched «Свободный выезд» off and exits were let out for up to 3 s more; a
    gate's port was edited and «Открыть» still opened the old controller meanwhile."""

    def site():
        manager = make_account(phone="+79990000702", surname="Управляева")
        t = create_territory(manager, name="ЖК", kind="residential")
        gate = gates.add_gate(t, name="Ворота", host=simulator.modbus_host,
                              port=simulator.modbus_port, direction="both", poll_ms=50)
        return t.id, gate.id

    tid, gate_id = in_app(app, site)
    moved = blocking(start_simulator)
    service = BridgeService(app, reload_s=3600)
    runner = gevent.spawn(service.run)
    try:
        assert wait_until(lambda: (s := service.poller.state(gate_id)) and s.online)
        out = {"type": "plate", "plate": "B123BB77", "direction": 2}  # no pass
        assert answered(simulator, blocking(simulator.present, **out)) == p.DecisionCode.GRANT

        def free_exit_off():
            t = Territory.get_by_id(tid)
            territories.update_settings(t, name=t.name, address=t.address,
                                        timezone=t.timezone, passes_enabled=True,
                                        app_access_free=False, free_exit=False)

        in_app(app, free_exit_off)
        assert wait_until(lambda: not configured(service, gate_id).free_exit,
                          timeout=APPLIED_WITHIN_S)
        # Decided now: no pass (or «try again» on a machine too busy for 40 ms), never free.
        assert answered(simulator, blocking(simulator.present, **out)) in (
            p.DecisionCode.DENY_NO_PASS, p.DecisionCode.TRY_AGAIN)

        in_app(app, lambda: gates.update_gate(
            tid, gate_id, name="Ворота", host=moved.modbus_host, port=moved.modbus_port,
            unit_id=1, direction="both", poll_ms=50, word_order="big", enabled=True))
        assert wait_until(lambda: configured(service, gate_id).port == moved.modbus_port,
                          timeout=APPLIED_WITHIN_S)
        assert wait_until(lambda: (s := service.poller.state(gate_id)) and s.online)
        opened = blocking(simulator.state)["openings"]
        assert service.poller.command(gate_id).ok
        assert blocking(moved.state)["openings"] == 1
        assert blocking(simulator.state)["openings"] == opened
    finally:
        gevent.kill(runner)
