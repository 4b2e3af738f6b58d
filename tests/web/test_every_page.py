"""Every page each demo role can reach, walked by its links: it answers; in English it shows
no Russian of our own (what people typed — names, addresses, plates — stays as typed); and
every form on it takes empty and hostile input without failing or losing what was typed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from markupsafe import escape

from domain.db import db
from domain.passes import format_plate
from domain.schema import app_models
from tests.conftest import csrf_token
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
    """The text and the shown attributes of a page, its links and its forms that post."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._hidden = 0
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style", "template"):
            self._hidden += 1
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        self._collect(tag, attrs)
        self.parts += [value for name, value in attrs.items() if name in SHOWN and value]
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])

    def _collect(self, tag, attrs):
        if tag == "form":
            action = attrs.get("hx-post") or attrs.get("action")
            posts = (attrs.get("method") or "").lower() == "post" or "hx-post" in attrs
            self._form = {"action": action, "fields": []} if posts and action else None
            if self._form:
                self.forms.append(self._form)
        elif self._form is not None and attrs.get("name"):
            kind = attrs.get("type", "text") if tag == "input" else tag
            # [kind, name, value]; a select's value is its first option's (None until then).
            if kind not in ("submit", "button") and not (
                    kind in ("checkbox", "radio") and "checked" not in attrs):
                value = None if kind == "select" else attrs.get("value", "")
                self._form["fields"].append([kind, attrs["name"], value])
        elif tag == "option" and self._form and self._form["fields"]:
            last = self._form["fields"][-1]
            if last[0] == "select" and last[2] is None:
                last[2] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._hidden -= 1
        if tag == "form":
            self._form = None

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


def _walk(client, start: str = "/", forms: list | None = None) -> dict[str, str]:
    """GET every same-site link reachable from `start`; page → its shown text. The forms
    that post, one per action, go into `forms`."""
    seen: dict[str, str] = {}
    actions: set[str] = set()
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
        # An id twice (one CSRF field's per form) leaves a label or a script to pick one.
        twice = sorted({i for i in page.ids if page.ids.count(i) > 1})
        assert not twice, (url, twice)
        for form in page.forms:
            if forms is not None and form["action"] not in actions:
                actions.add(form["action"])
                forms.append(form)
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


ROLES = ["admin", "manager", "resident", "operator", "anonymous"]


def _browser(app, demo, role):
    """A client signed in as the demo role, or nobody's, and where its walk starts."""
    if role == "anonymous":
        return app.test_client(), "/login"
    return signed_in(app, demo[role]), "/"


@pytest.mark.parametrize("role", ROLES)
def test_every_page_a_role_reaches_answers_and_speaks_english(app, demo, role):
    client, start = _browser(app, demo, role)
    assert post(client, "/lang/en", {"csrf_token": csrf_token(client, start)}).status_code == 302
    pages = _walk(client, start)
    with app.app_context(), db.connection_context():
        typed = _typed_text()
    assert len(pages) >= (4 if role == "anonymous" else 15), sorted(pages)
    russian = {}
    for url, text in pages.items():
        for value in (*typed, *MEANT):
            text = text.replace(value, " ")
        words = set(CYRILLIC.findall(text))
        if words:
            russian[url] = sorted(words)
    assert not russian, russian


# Forms that end the session when they succeed; the walk would go on signed out.
ENDS_SESSION = ("/logout", "/lang/", "sign-out")
TYPED = ("text", "textarea", "email", "tel", "search", "url")
# What a form may answer to bad input: done, redirected, refused (422), gone (an object an
# earlier form of the walk deleted), too many tries. Never 400 (its CSRF token is missing),
# 405 (it posts where nothing takes a post) or 5xx.
ANSWERS = {200, 204, 302, 303, 404, 409, 422, 429}


def _filled(form: dict, hostile: bool) -> dict[str, str]:
    data = {}
    for kind, name, value in form["fields"]:
        if kind == "hidden" or (kind in ("checkbox", "radio") and not hostile):
            data[name] = value
        elif kind in ("checkbox", "radio", "select"):
            data[name] = "<zz>" if hostile else value
        else:
            data[name] = f"Ж<b>'\"{name} ё😀 {'x' * 300}" if hostile else ""
    return data


@pytest.mark.parametrize("role", ROLES)
def test_every_form_a_role_reaches_takes_bad_input(app, demo, role):
    client, start = _browser(app, demo, role)
    forms: list[dict] = []
    _walk(client, start, forms=forms)
    forms = [f for f in forms if not any(part in f["action"] for part in ENDS_SESSION)]
    assert len(forms) >= (2 if role == "anonymous" else 5), forms
    wrong, lost = [], []
    for form in forms:
        for hostile in (False, True):
            data = _filled(form, hostile)
            for headers in ({}, {"HX-Request": "true"}):
                response = client.post(form["action"], data=data, headers=headers)
                if response.status_code not in ANSWERS:
                    wrong.append((form["action"], hostile, headers, response.status_code))
                if hostile and response.status_code == 422:
                    html = response.get_data(as_text=True)
                    lost += [(form["action"], name) for kind, name, _ in form["fields"]
                             if kind in TYPED and str(escape(data[name])) not in html]
    assert not wrong, wrong
    assert not lost, lost
