"""The environment is read strictly: a value Propusk cannot read stops the start, naming
the variable; every usual spelling of yes/no works."""

from __future__ import annotations

import datetime as dt

import pytest

from app import SettingsError, create_app
from domain.db import db

FLAGS = {"DEV_PAGES": "DEV_PAGES", "COOKIE_SECURE": "SESSION_COOKIE_SECURE",
         "GATEBRIDGE": "GATEBRIDGE"}


@pytest.fixture
def build(tmp_path):
    """create_app on a database of its own (SQLite: only the settings are under test)."""

    def make(**config):
        return create_app({
            "TESTING": True, "SECRET_KEY": "test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'settings.db'}", **config,
        })

    yield make
    db.close()


@pytest.mark.parametrize("variable", sorted(FLAGS))
@pytest.mark.parametrize(("spelling", "meaning"), [
    ("1", True), ("0", False), ("true", True), ("False", False), ("YES", True), ("no", False),
    ("on", True), ("Off", False), (" true ", True),
])
def test_yes_no_variables_take_every_usual_spelling(build, monkeypatch, variable, spelling,
                                                    meaning):
    monkeypatch.setenv(variable, spelling)
    if variable == "DEV_PAGES" and not meaning:
        # Sandbox payments need the development pages; a real provider is named instead.
        monkeypatch.setenv("PAYMENT_PROVIDER", "yookassa")
        monkeypatch.setenv("YOOKASSA_SHOP_ID", "1")
        monkeypatch.setenv("YOOKASSA_SECRET_KEY", "test")
    assert build().config[FLAGS[variable]] is meaning


@pytest.mark.parametrize("variable", sorted(FLAGS))
@pytest.mark.parametrize("spelling", ["2", "maybe", "y", "enabled", "-1"])
def test_an_unreadable_yes_no_stops_the_start_naming_the_variable(build, monkeypatch, variable,
                                                                  spelling):
    monkeypatch.setenv(variable, spelling)
    with pytest.raises(SettingsError) as refused:
        build()
    message = str(refused.value)
    assert message.startswith(f"{variable}={spelling!r}")
    assert "1/0, true/false, yes/no or on/off" in message


def test_unset_or_empty_variables_keep_the_defaults(build, monkeypatch):
    for name in (*FLAGS, "PROXY_HOPS", "EVENTS_RETENTION_DAYS"):
        monkeypatch.setenv(name, "")
    config = build().config
    assert config["DEV_PAGES"] is True and config["GATEBRIDGE"] is True
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["PROXY_HOPS"] == 0 and config["EVENTS_RETENTION_DAYS"] == 400


def test_cookie_secure_yes_means_secure_cookies_and_hsts(build, monkeypatch):
    monkeypatch.setenv("COOKIE_SECURE", "yes")
    app = build()
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("PROXY_HOPS", "abc", "a non-negative integer"),
    ("PROXY_HOPS", "-1", "a non-negative integer"),
    ("PROXY_HOPS", "1.5", "a non-negative integer"),
    ("EVENTS_RETENTION_DAYS", "abc", "a positive integer up to 36500"),
    ("EVENTS_RETENTION_DAYS", "0", "a positive integer up to 36500"),
    ("EVENTS_RETENTION_DAYS", "-30", "a positive integer up to 36500"),
    ("EVENTS_RETENTION_DAYS", "100000000", "a positive integer up to 36500"),
])
def test_an_unreadable_number_stops_the_start_naming_the_variable(build, monkeypatch, variable,
                                                                  value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        build()
    assert str(refused.value) == f"{variable}={value!r}: expected {expected}"


def test_proxy_hops_is_read_as_a_number(build, monkeypatch):
    monkeypatch.setenv("PROXY_HOPS", " 1 ")
    app = build()
    assert app.config["PROXY_HOPS"] == 1

    @app.get("/whoami")
    def whoami():
        from flask import request

        return request.remote_addr

    seen = app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert seen.get_data(as_text=True) == "203.0.113.9"


def test_the_retention_is_read_at_start_and_used_by_the_command_and_the_housekeeping(
        build, monkeypatch):
    from domain.accounts import Account
    from domain.gates import GateEvent, record_event
    from domain.schema import upgrade
    from domain.territories import create_territory
    from jobs import PurgeJob

    monkeypatch.setenv("EVENTS_RETENTION_DAYS", "2500")
    app = build()
    assert app.config["EVENTS_RETENTION_DAYS"] == 2500
    monkeypatch.delenv("EVENTS_RETENTION_DAYS")  # read once, at start
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        upgrade()
        territory = create_territory(Account.create(phone="+79990007001"), name="ЖК",
                                     kind="residential")
        for days in (3000, 2000, 10):
            record_event(territory.id, code=1, reason="pass_valid", kind="plate",
                         credential="A777AA77", at=now - dt.timedelta(days=days))
    result = app.test_cli_runner().invoke(args=["events", "prune"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 events older than 2500 days" in result.output
    app.config["EVENTS_RETENTION_DAYS"] = 1000
    PurgeJob(app).run_once()
    with app.app_context():
        assert GateEvent.select().count() == 1


def test_gate_networks_are_read_as_networks_and_a_wrong_one_stops_the_start(build, monkeypatch):
    import ipaddress

    assert build().config["GATE_NETWORKS"] == ()  # unset: any address
    monkeypatch.setenv("GATE_NETWORKS", " 10.20.0.0/16, 192.168.5.7 ,fd00::/8,")
    assert build().config["GATE_NETWORKS"] == (
        ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("192.168.5.7/32"),
        ipaddress.ip_network("fd00::/8"))
    monkeypatch.setenv("GATE_NETWORKS", "10.20.0.0/16,gates.local")
    with pytest.raises(SettingsError) as refused:
        build()
    assert str(refused.value) == ("GATE_NETWORKS: 'gates.local' is not a network like "
                                  "10.20.0.0/16 or an address")
