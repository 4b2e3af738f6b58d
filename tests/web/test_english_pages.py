"""Every page each demo role can reach, walked by its links: it answers, and in English it
shows no Russian of our own (what people typed — names, addresses, plates — stays as typed).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from domain.db import db
from domain.passes import format_plate
from domain.schema import app_models
from tests.web.territory_kit import post, signed_in

CYRILLIC = re.compile(r"[А-Яа-яЁё][А-Яа-яЁё-]*")
# The Russian a page in English may hold: the button back to Russian, and the plate typed
# in Cyrillic letters that the pass form gives as an example.
MEANT = ("Русский", "а 777 аа 77")
SKIP = ("/logout", "/static/", "/dev/", "/sw.js", "/manifest")
MAX_PAGES = 150
# What a person sees besides text: these attributes are read out or shown.
SHOWN = {"placeholder", "title", "aria-label", "alt"}


class _Shown(HTMLParser):
    """The text and the shown attributes of a page, and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style", "template"):
            self._hidden += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        self.parts += [value for name, value in attrs.items() if name in SHOWN and value]
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def _typed_text() -> list[str]:
    """Every text value people or the demo stored, longest first (so "Дом А1" goes before
    "Дом"), with the plates as pages print them."""
    values: set[str] = set()
    for model in app_models():
        fields = [f for f in model._meta.sorted_fields
                  if f.field_type in ("VARCHAR", "TEXT")]
        if not fields:
            continue
        for row in model.select(*fields).tuples():
            values.update(v for v in row if isinstance(v, str) and CYRILLIC.search(v))
            values.update(format_plate(v) for v in row if isinstance(v, str) and v.isalnum())
    return sorted(values, key=len, reverse=True)


def _walk(client, start: str = "/") -> dict[str, str]:
    """GET every same-site link reachable from `start`; page → its shown text."""
    seen: dict[str, str] = {}
    queue = [start]
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url)
        assert response.status_code in (200, 302), (url, response.status_code)
        if response.status_code == 302 or response.mimetype != "text/html":
            seen[url] = ""
            continue
        page = _Shown()
        page.feed(response.get_data(as_text=True))
        seen[url] = " ".join(page.parts)
        for link in page.links:
            parts = urlsplit(link)
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path.startswith(SKIP) or path.endswith(".csv") or path in seen:
                continue
            queue.append(path)
    return seen


@pytest.fixture
def demo(app):
    """The demo data of `flask seed-demo`; role → account."""
    from domain.accounts import find_by_login

    lines = app.test_cli_runner().invoke(args=["seed-demo"]).output.strip().splitlines()
    with app.test_request_context():
        return {role: find_by_login(login) for role, login, _ in (ln.split("\t") for ln in lines)}


@pytest.mark.parametrize("role", ["admin", "manager", "resident", "operator"])
def test_every_page_a_role_reaches_answers_and_speaks_english(app, demo, role):
    client = signed_in(app, demo[role])
    assert post(client, "/lang/en").status_code == 302
    pages = _walk(client)
    with app.app_context(), db.connection_context():
        typed = _typed_text()
    assert len(pages) >= 15, sorted(pages)
    russian = {}
    for url, text in pages.items():
        for value in (*typed, *MEANT):
            text = text.replace(value, " ")
        words = set(CYRILLIC.findall(text))
        if words:
            russian[url] = sorted(words)
    assert not russian, russian
