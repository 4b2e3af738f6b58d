"""Real Chromium, desktop: a keyboard user keeps their place while a poll replaces the page part."""

from __future__ import annotations

import pytest

from tests.database import query, url_for
from tests.e2e.conftest import csp_violations, sign_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_territory_switcher_closes_like_a_menu(browser, demo):
    page = browser.new_page()
    sign_in_as(page, demo, "manager")  # two territories: the switcher is there
    switcher = page.locator("#switcher")
    page.click("#switcher summary")
    assert switcher.get_attribute("open") is not None
    page.keyboard.press("Escape")
    assert switcher.get_attribute("open") is None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.click("#switcher summary")
    page.mouse.click(10, 600)  # a tap elsewhere, away from the open menu
    assert switcher.get_attribute("open") is None
    page.click("#switcher summary")
    page.click("#switcher summary")  # its own summary still toggles it
    assert switcher.get_attribute("open") is None
    assert csp_violations(page) == []


def test_the_focus_survives_the_gates_table_being_polled(browser, demo):
    [(tid,)] = query(url_for(demo["instance"]), "select id from territory where kind = 'residential'")
    page = browser.new_page()
    sign_in_as(page, demo, "manager")
    page.goto(f"{demo['base']}/t/{tid}/gates")
    link = page.locator("#gate-states a", has_text="Въезд")
    link.focus()
    # Mark the table shown now: the poll (every second) replaces it with a new one.
    page.evaluate("document.getElementById('gate-states').dataset.old = '1'")
    # (No wait_for_function: the strict CSP forbids the eval it uses.)
    for _ in range(50):
        page.wait_for_timeout(100)
        if not page.evaluate("document.getElementById('gate-states').dataset.old"):
            break
    else:
        pytest.fail("the gates table was not polled")
    page.wait_for_timeout(300)  # the swap has settled
    focused = page.evaluate("[document.activeElement.tagName, document.activeElement.textContent]")
    assert focused == ["A", "Въезд"]
    # Enter opens the gate's page as a page: the poller's hx-target="this" is not inherited
    # by the link inside it, which used to paste the whole edit page into the table.
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/t/{tid}/gates/*/edit")
    assert page.locator("header").count() == 1 and page.locator("h1").count() == 1
    assert csp_violations(page) == []
