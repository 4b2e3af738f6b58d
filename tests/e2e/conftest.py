"""Real Chromium (Debian's, driven by Playwright) against the real gevent server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.database import url_for
from tests.server import ROOT, running_app

CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium keeps trying to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Records every CSP violation a page raises, before any of the page's own code runs.
CSP_RECORDER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
"""

PHONE = (360, 740)
DESKTOP = (1280, 800)


def seed(instance) -> list[tuple[str, str, str]]:
    """Run `flask seed-demo` for an instance; returns its (role, login, password) lines."""
    env = {"INSTANCE_PATH": str(instance), "SECRET_KEY": "e2e-secret", "PATH": "/usr/bin:/bin",
           "DATABASE_URL": url_for(instance), "PASSWORD_HASHING": os.environ["PASSWORD_HASHING"]}
    for command in (["migrate"], ["seed-demo"]):
        out = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", *command],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout
    return [tuple(line.split("\t")) for line in out.strip().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[dict]:
    """A running app with the demo data; yields its base URL and logins by role."""
    instance = tmp_path_factory.mktemp("e2e") / "instance"
    instance.mkdir()
    logins = {role: (login, password) for role, login, password in seed(instance)}
    with running_app(instance) as base:
        yield {"base": base, "logins": logins, "instance": instance}


@pytest.fixture(scope="session")
def playwright_driver():
    """One Playwright driver for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright_driver, tmp_path):
    """A persistent Chromium profile (installability needs a non-incognito profile)."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": PHONE[0], "height": PHONE[1]},
        locale="ru-RU",
    )
    context.add_init_script(CSP_RECORDER)
    yield context
    context.close()


def sign_in(page, base: str, login: str, password: str) -> None:
    """Sign in through the login page and wait for the signed-in shell."""
    page.goto(base + "/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Выйти")


def sign_in_as(page, demo: dict, role: str = "resident") -> None:
    """Sign in as one of seed-demo's logins."""
    login, password = demo["logins"][role]
    sign_in(page, demo["base"], login, password)


def csp_violations(page) -> list:
    """The CSP violations the page has seen so far."""
    return page.evaluate("window.__csp || []")
