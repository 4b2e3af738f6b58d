"""Every kind of page each demo role reaches, on a 360 px phone: nothing wider than the screen,
every control big enough for a thumb, no CSP violation, no script error."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import PHONE, csp_violations, sign_in_as

SKIP = ("/logout", "/static/", "/dev/", "/sw.js", "/manifest")
# Wider than the viewport: what sticks out, named by tag and class, for the failure message.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .slice(-3).map(e => `${e.tagName.toLowerCase()}.${e.className} → ${Math.round(e.getBoundingClientRect().right)} px`);
}"""
# Controls a thumb must hit: buttons, fields, the menu and the tabs, at least 44 × 44 px
# (WCAG 2.5.5). Links inside running text are exempt, as the guideline allows, and a tick box
# or a radio button is measured by its label, which a tap on works the same.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'button, .button, input:not([type=hidden]), select, summary, .nav a, .tabs a, .footer > a')]
  .filter(e => e.offsetParent !== null)
  .map(e => [e, ((e.type === 'checkbox' || e.type === 'radio') && e.labels.length
                 ? e.labels[0] : e).getBoundingClientRect()])
  .filter(([e, r]) => r.height < 43.5 || r.width < 43.5)
  .map(([e, r]) => `${e.tagName.toLowerCase()}.${e.className} «${(e.innerText || e.value || e.name || '').trim().slice(0, 20)}» ${Math.round(r.width)}×${Math.round(r.height)}`)"""


def _kind(path: str) -> str:
    """One page of each kind: /t/2/manage/members/5 stands for every member's page."""
    return re.sub(r"/\d+", "/N", path)


@pytest.mark.parametrize("role", ["manager", "resident", "operator"])
def test_every_kind_of_page_fits_a_phone(browser, demo, role):
    page = browser.new_page()
    assert page.viewport_size == {"width": PHONE[0], "height": PHONE[1]}
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in_as(page, demo, role)
    base = demo["base"]
    queue, kinds, problems, small, tall = ["/"], set(), {}, {}, {}
    while queue:
        path = queue.pop(0)
        if _kind(path) in kinds:
            continue
        kinds.add(_kind(path))
        response = page.goto(base + path)
        assert response is not None and response.status == 200, (path, response)
        sticking_out = page.evaluate(OVERFLOW)
        if sticking_out:
            problems[path] = sticking_out
        if page.evaluate(SMALL_TARGETS):
            small[path] = page.evaluate(SMALL_TARGETS)
        # Two rows at most (the brand; the switcher beside the menu that scrolls sideways):
        # a manager's four wrapped rows took 188 px, a fifth of the screen, on every page.
        header = page.evaluate("document.querySelector('.topbar').offsetHeight")
        if header > 2 * 44 + 24:
            tall[path] = header
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            parts = urlsplit(href)
            if parts.netloc != urlsplit(base).netloc or parts.path.startswith(SKIP) \
                    or parts.path.endswith(".csv"):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if _kind(target) not in kinds:
                queue.append(target)
    assert len(kinds) >= 10, sorted(kinds)
    assert not problems, problems
    assert not small, small
    assert not tall, tall
    assert csp_violations(page) == []
    assert not errors, errors
