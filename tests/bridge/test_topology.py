"""The deployed topology: two gunicorn web processes (gevent workers) and a separate bridge.

Nothing may live in one process only: a session signed in on A is valid on B and ends on B
when A signs out; the code-send cap counts what both sent; a pass filed on A opens the
gate the bridge serves within a second (its cached «no pass» forgotten through the access
version); the bridge's event shows up in B's live feed. One database, of the pass's
backend (a SQLite file, or PostgreSQL in the PostgreSQL pass).
"""

from __future__ import annotations

import http.cookiejar
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from app import create_app
from domain import accounts, gates
from domain.db import db
from domain.schema import upgrade
from domain.territories import Membership, Unit, create_territory
from tests.bridge.conftest import wait_for
from tests.conftest import CSRF_RE, PASSWORD
from tests.database import url_for
from tests.server import running_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.timing]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A browser with a cookie jar; `at(base)` sends the same cookies to another process."""

    def __init__(self, base: str, jar: http.cookiejar.CookieJar | None = None) -> None:
        self.base = base
        self.jar = jar if jar is not None else http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect
        )

    def at(self, base: str) -> Client:
        return Client(base, self.jar)

    def request(self, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def token(self, path: str) -> str:
        status, _, html = self.request(path)
        match = CSRF_RE.search(html)
        assert match, (path, status, html[:500])
        return match.group(1)

    def post(self, path: str, data: dict, form: str | None = None):
        return self.request(path, {**data, "csrf_token": self.token(form or path)})

    def login(self, login: str) -> None:
        status, headers, _ = self.post("/login", {"login": login, "password": PASSWORD})
        assert status == 302, status

    def signed_in(self) -> bool:
        status, headers, _ = self.request("/profile")
        assert status in (200, 302), status
        return status == 200


@pytest.fixture
def topology(tmp_path, simulator, start_bridge):
    """Demo-sized data on one database, the bridge on its own, and two web processes."""
    instance = tmp_path / "instance"
    instance.mkdir()
    url = url_for(instance)
    app = create_app({"TESTING": True, "SECRET_KEY": "e2e-secret",
                      "INSTANCE_PATH": str(instance), "DATABASE_URL": url})
    with app.app_context(), db.connection_context():
        upgrade()
        manager = accounts.create_account(phone="+79990000501", password=PASSWORD,
                                          surname="Управляева")
        resident = accounts.create_account(phone="+79990000502", password=PASSWORD,
                                           surname="Федоров")
        territory = create_territory(manager, name="ЖК Сосны", kind="residential")
        unit = Unit.create(territory=territory, name="Дом 1")
        Membership.create(account=resident, territory=territory, role="resident", unit=unit)
        gate = gates.add_gate(territory, name="Въезд", host=simulator.modbus_host,
                              port=simulator.modbus_port, direction="both", poll_ms=50)
    db.close()
    bridge = start_bridge(url, instance)

    def online():
        with app.app_context(), db.connection_context():
            return gates.gate_online(gate.id)

    # A is one gunicorn with two gevent workers, B another with one: three web processes.
    with running_gunicorn(instance, workers=2) as a, running_gunicorn(instance) as b:
        assert wait_for(online, timeout=20), bridge.log()
        yield {"a": a, "b": b, "tid": territory.id, "simulator": simulator, "bridge": bridge}
    db.close()


def test_two_web_processes_and_a_bridge_share_everything_through_the_database(topology):
    # One setup (four processes) for the four checks: each is a function of its own below.
    _a_session_made_on_one_process_lives_and_dies_on_the_other(topology)
    _the_code_send_cap_counts_what_both_processes_sent(topology)
    _a_pass_filed_on_a_opens_the_bridges_gate_and_b_shows_the_event(topology)


def _a_session_made_on_one_process_lives_and_dies_on_the_other(topology):
    on_a = Client(topology["a"])
    on_a.login("+79990000502")
    on_b = on_a.at(topology["b"])
    assert on_b.signed_in()
    status, _, _ = on_a.post("/logout", {}, form="/")
    assert status == 302
    assert not on_b.signed_in()
    assert not on_a.signed_in()


def _the_code_send_cap_counts_what_both_processes_sent(topology):
    outcomes = []
    for n in range(11):
        base = topology["a"] if n % 2 == 0 else topology["b"]
        status, _, html = Client(base).post(
            "/signup", {"phone": f"+7999111{n:04d}", "consent": "y"}
        )
        outcomes.append(status if status != 422 else html)
    # Ten codes from this address an hour, five or six of them through each process.
    assert outcomes[:10] == [302] * 10
    assert "Слишком много запросов кода с вашего устройства" in outcomes[10]


def _decide(simulator, plate: str) -> int:
    seq = simulator.present(type="plate", plate=plate)
    state = wait_for(lambda: (s := simulator.state())["applied_decision_seq"] == seq and s,
                     timeout=2)
    assert state, simulator.state()
    return state["applied_decision_code"]


def _a_pass_filed_on_a_opens_the_bridges_gate_and_b_shows_the_event(topology):
    simulator, tid = topology["simulator"], topology["tid"]
    assert _decide(simulator, "A777AA77") != 1  # no pass yet: refused, and cached so
    resident = Client(topology["a"])
    resident.login("+79990000502")
    path = f"/t/{tid}/passes/new"
    status, _, html = resident.post(path, {"plate": "А777АА77", "period": "day"})
    assert status == 302, html
    filed = time.monotonic()
    while (code := _decide(simulator, "A777AA77")) != 1 and time.monotonic() - filed < 1.0:
        time.sleep(0.05)
    assert code == 1, topology["bridge"].log()
    assert time.monotonic() - filed < 1.5

    manager = Client(topology["b"])
    manager.login("+79990000501")
    status, _, feed = manager.request(f"/t/{tid}/events/newer?after=0",
                                      headers={"HX-Request": "true"})
    assert status == 200 and "<html" not in feed
    assert feed.count("А 777 АА 77") >= 2  # refused once, then opened
    assert "Въезд" in feed
