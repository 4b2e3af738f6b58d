"""Absolute links come from PUBLIC_URL, never from the Host header a client writes; requests
for other hosts are refused; the sandbox bank is a development page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from domain.accounts import Account
from domain.db import db
from domain.schema import upgrade
from tests.conftest import csrf_token

VICTIM = "ivan@example.ru"


def build(tmp_path, database_url, **config):
    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret",
        "INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": database_url, **config,
    })
    with app.app_context():
        upgrade()
        Account.create(email=VICTIM, password_hash="x")
    return app


@pytest.fixture
def close_db():
    yield
    db.close()


def recovery_links(app) -> list[str]:
    path = Path(app.instance_path) / "outbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["link"] for line in lines if json.loads(line)["to"] == VICTIM]


def ask_recovery(client, **headers):
    token = csrf_token(client, "/recover/email")
    return client.post("/recover/email", data={"email": VICTIM, "csrf_token": token},
                       headers=headers)


def test_without_public_url_only_loopback_names_are_served(tmp_path, database_url, close_db,
                                                           caplog):
    app = build(tmp_path, database_url)
    client = app.test_client()
    assert client.get("/login", headers={"Host": "127.0.0.1:5000"}).status_code == 200
    refused = client.get("/login", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and "Неверный запрос" in refused.get_data(as_text=True)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert ask_recovery(client, Host="evil.example").status_code == 400
    assert recovery_links(app) == []
    assert ask_recovery(client).status_code in (200, 302)
    assert recovery_links(app)[0].startswith("http://localhost/recover/email/")


def test_links_come_from_public_url_whatever_the_host_says(tmp_path, database_url, close_db):
    app = build(tmp_path, database_url, PUBLIC_URL="https://propusk.example.ru")
    client = app.test_client()
    # (The test client speaks https to the PUBLIC_URL's host, and Flask-WTF wants a
    # same-site Referer on https, as a browser sends.)
    referer = {"Referer": "https://propusk.example.ru/recover/email"}
    assert ask_recovery(client, Host="evil.example", **referer).status_code == 400
    # Asked over plain http (a proxy that says nothing of the scheme): an https link all the
    # same, with the public host.
    token = csrf_token(client, "/recover/email")
    plain = client.post("/recover/email", data={"email": VICTIM, "csrf_token": token},
                        base_url="http://propusk.example.ru", headers=referer)
    assert plain.status_code in (200, 302)
    [link] = recovery_links(app)
    assert link.startswith("https://propusk.example.ru/recover/email/")
    # A health check on loopback is served too.
    assert client.get("/offline", headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_behind_a_proxy_a_forged_forwarded_host_is_refused(tmp_path, database_url, close_db):
    app = build(tmp_path, database_url, PUBLIC_URL="https://propusk.example.ru", PROXY_HOPS=1)
    client = app.test_client()
    forged = {"Host": "propusk.example.ru", "X-Forwarded-Host": "evil.example",
              "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
    assert client.get("/login", headers=forged).status_code == 400
    honest = {**forged, "X-Forwarded-Host": "propusk.example.ru"}
    assert client.get("/login", headers=honest).status_code == 200


@pytest.mark.parametrize("url", ["propusk.example.ru", "ftp://propusk.example.ru",
                                 "https://propusk.example.ru/app?x=1", "https://"])
def test_a_public_url_that_is_not_a_site_address_stops_the_start(tmp_path, database_url, url):
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        create_app({"SECRET_KEY": "s", "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": database_url,
                    "PUBLIC_URL": url})


def test_the_sandbox_cannot_run_with_dev_pages_off(tmp_path, database_url):
    # It pays on a development page: with DEV_PAGES=0 no payment could ever be made.
    with pytest.raises(ValueError, match="DEV_PAGES"):
        create_app({"SECRET_KEY": "s", "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": database_url,
                    "DEV_PAGES": False})
