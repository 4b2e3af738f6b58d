"""`python app.py` serves the app with gevent's WSGI server."""

from __future__ import annotations

import urllib.request

import pytest

from tests import database
from tests.server import running_app


@pytest.mark.slow
def test_python_app_py_serves_pages(tmp_path):
    instance = tmp_path / "instance"
    with running_app(instance) as base:
        with urllib.request.urlopen(base + "/") as response:
            html = response.read().decode()
            assert response.status == 200
            assert "Пропуск" in html
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        with urllib.request.urlopen(base + "/manifest.webmanifest") as response:
            assert response.headers["Content-Type"].startswith("application/manifest+json")
        with urllib.request.urlopen(base + "/static/vendor/htmx.min.js") as response:
            assert b"htmx" in response.read()
    # The server made its instance folder: database (on SQLite), generated secret key stays private.
    assert (instance / "propusk.db").exists() or database.postgresql()


def test_secret_key_is_generated_once_and_private(tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    first = create_app({"INSTANCE_PATH": str(instance), "TESTING": True})
    key_file = instance / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    second = create_app({"INSTANCE_PATH": str(instance), "TESTING": True})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32


def test_environment_configures_the_app(tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("MAIL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("PAYMENT_PROVIDER", "sandbox")
    app = create_app({"TESTING": True})
    assert app.instance_path == str(tmp_path / "inst")
    assert app.config["DATABASE_URL"].endswith("other.db")
    assert app.config["MAIL"] == "smtp://127.0.0.1:2525"
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None  # tokens live as long as the session
