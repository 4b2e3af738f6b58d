"""The app installs as a PWA, works offline, and nothing breaks the CSP."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import csp_violations, sign_in_as
from tests.server import running_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _controlled(page) -> bool:
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.ready")
    page.reload()
    return page.evaluate("!!navigator.serviceWorker.controller")


def test_installable_with_a_clean_manifest(browser, demo):
    page = browser.new_page()
    page.goto(demo["base"] + "/")
    assert _controlled(page)
    cdp = browser.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    assert manifest["url"].endswith("/manifest.webmanifest")
    installability = cdp.send("Page.getInstallabilityErrors")
    assert installability["installabilityErrors"] == []
    assert csp_violations(page) == []


def test_offline_page_when_the_server_is_gone(browser, tmp_path):
    instance = tmp_path / "instance"
    page = browser.new_page()
    with running_app(instance) as base:
        page.goto(base + "/")
        assert _controlled(page)
    # The server is stopped now: a navigation falls back to the cached offline page.
    page.goto(base + "/help/install")
    assert "Нет соединения с интернетом" in page.content()
    assert page.locator("[data-offline-lang=en]").is_hidden()
    assert csp_violations(page) == []


def test_the_offline_page_speaks_the_language_last_seen_and_retries_the_page(browser, tmp_path):
    """Cached without cookies, the offline page still shows English to someone who chose
    it, and «Reload» retries the page that failed: back online, it is that page."""
    instance = tmp_path / "instance"
    page = browser.new_page()
    with running_app(instance) as base:
        page.goto(base + "/")
        assert _controlled(page)
        page.locator("footer button[lang=en]").click()
        page.wait_for_selector("html[lang=en]")
    page.goto(base + "/help/install")
    english = page.locator("[data-offline-lang=en]")
    assert english.is_visible() and page.locator("[data-offline-lang=ru]").is_hidden()
    assert "No internet connection" in english.inner_text()
    assert page.title() == "Offline · Propusk" and page.locator(".footer").is_hidden()
    assert page.inner_text(".brand").strip() == "Propusk"  # it said «Пропуск» (stop 23)
    port = int(base.rsplit(":", 1)[1])
    with running_app(instance, port=port):
        english.get_by_role("link").click()
        page.wait_for_url(base + "/help/install")
        page.wait_for_selector("[data-offline-lang]", state="detached")
    assert csp_violations(page) == []


def test_no_csp_violation_on_any_page(browser, demo):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    base = demo["base"]
    for path in ["/", "/login", "/offline", "/help/install", "/dev/outbox"]:
        page.goto(base + path)
        assert csp_violations(page) == [], path
    # A failed login: the 422 answer shows the error and keeps what was typed.
    page.goto(base + "/login")
    page.fill("#login", "+7 999 000-00-03")
    page.fill("#password", "wrong-password1")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Неверный логин или пароль")
    assert page.input_value("#login") == "+7 999 000-00-03"
    # Then the right password: signed in, navigation for members.
    login, password = demo["logins"]["resident"]
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Выйти")
    # Switch the language and back, through the footer buttons.
    page.click("button[lang=en]")
    page.wait_for_selector("html[lang=en]", state="attached")
    page.click("button[lang=ru]")
    page.wait_for_selector("html[lang=ru]", state="attached")
    assert csp_violations(page) == []
    assert not [e for e in errors if "Content Security Policy" in e]


def test_a_failed_htmx_request_is_explained_in_the_banner(browser, demo):
    page = browser.new_page()
    sign_in_as(page, demo, "resident")
    banner = page.locator("#request-error")
    assert banner.is_hidden()
    # A boosted link to a page that is not there: htmx gets our 404 fragment and swaps
    # nothing, so the banner says it, in the page's language.
    page.evaluate("""() => {
        const a = document.createElement('a');
        a.href = '/no-such-page'; a.id = 'dead-link'; a.textContent = 'x';
        document.querySelector('main').append(a);
        htmx.process(a);
    }""")
    page.click("#dead-link")
    banner.wait_for(state="visible")
    assert "Такой страницы нет" in banner.inner_text()
    assert page.url.endswith("/")  # still on the page it was
    # The next request that goes through hides it again.
    page.click("text=Профиль")
    page.wait_for_url("**/profile")
    assert banner.is_hidden()
    assert csp_violations(page) == []
