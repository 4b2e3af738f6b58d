"""`python app.py` serves the app with gevent's WSGI server."""

from __future__ import annotations

import urllib.request

import pytest

from tests.server import running_app

pytestmark = pytest.mark.slow


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
    # The server made its instance folder: database, generated secret key stays private.
    assert (instance / "propusk.db").exists()
