"""Accounts in real Chromium against the real server: sign-up, login, devices, deletion."""

from __future__ import annotations

import json
import re

import pytest

from tests.database import query, url_for
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, csp_violations, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def latest(demo, to: str, channel: str) -> dict:
    """The newest outbox entry the running app wrote for `to` on `channel`."""
    lines = (demo["instance"] / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    for line in reversed(lines):
        entry = json.loads(line)
        if entry["to"] == to and entry["channel"] == channel:
            return entry
    raise AssertionError(f"nothing sent to {to} by {channel}")


def test_phone_signup_with_the_code_from_the_call(browser, demo):
    base = demo["base"]
    page = browser.new_page()
    page.goto(base + "/")
    page.get_by_role("link", name="Регистрация").first.click()
    page.wait_for_url(base + "/signup")
    page.fill("#phone", "8 999 123-45-67")
    page.get_by_role("button", name="Далее").click()
    page.wait_for_selector("text=Нужно ваше согласие")
    assert page.input_value("#phone") == "8 999 123-45-67"
    page.check("#consent")
    page.get_by_role("button", name="Далее").click()
    page.wait_for_url(base + "/signup/code")
    assert page.get_by_label("4 цифры входящего номера").is_visible()
    counter = page.locator("[data-countdown]")
    first = counter.text_content()
    assert re.fullmatch(r"0[12]:\d\d", first)
    # The countdown ticks live, without a reload.
    page.wait_for_function(
        "(t) => document.querySelector('[data-countdown]').textContent !== t", arg=first
    )
    assert page.locator("text=Получить код по SMS").is_hidden()
    page.fill("#code", "12")
    page.get_by_role("button", name="Далее").click()
    page.wait_for_selector("text=Необходимо ввести 4 цифры")
    page.fill("#code", latest(demo, "+79991234567", "call")["code"])
    page.get_by_role("button", name="Далее").click()
    page.wait_for_url(base + "/signup/password")
    page.fill("#password", "Zebra7track")
    page.fill("#confirm", "Zebra7track")
    page.get_by_role("button", name="Готово").click()
    page.wait_for_url(base + "/")
    page.get_by_role("link", name="Профиль").click()
    page.wait_for_url(base + "/profile")
    # No name yet: the heading, like the phone row, shows the number as people write it.
    assert page.locator("h1", has_text="+7 (999) 123-45-67").is_visible()
    assert page.locator("td", has_text="+7 (999) 123-45-67").is_visible()
    assert page.locator("text=Не заблокирован").is_visible()
    assert csp_violations(page) == []


def test_email_signup_through_the_link(browser, demo):
    base = demo["base"]
    page = browser.new_page()
    page.goto(base + "/signup/email")
    page.fill("#full_name", "Петрова Анна")
    page.fill("#phone", "9997654321")
    page.fill("#email", "anna@example.ru")
    page.fill("#password", "Lun4park-xyz")
    page.fill("#confirm", "Lun4park-xyz")
    page.check("#consent")
    page.get_by_role("button", name="Зарегистрироваться").click()
    page.wait_for_selector("text=Проверьте почту")
    page.goto(latest(demo, "anna@example.ru", "email")["link"])
    # Signed in; the phone given is the account's once the SMS code comes back.
    page.wait_for_url(base + "/profile/phone/code")
    page.wait_for_selector("text=Осталось подтвердить телефон")
    page.fill("#code", latest(demo, "+79997654321", "sms")["code"])
    page.get_by_role("button", name="ПРИМЕНИТЬ").click()
    page.wait_for_selector("text=Телефон подтверждён")
    assert page.locator("text=+7 (999) 765-43-21").first.is_visible()
    page.goto(base + "/")
    assert page.locator("text=Здравствуйте, Петрова Анна").is_visible()
    assert csp_violations(page) == []


def test_login_and_signing_another_device_out(browser, demo, playwright_driver):
    base = demo["base"]
    phone, password = demo["logins"]["manager"]
    laptop = browser.new_page()
    sign_in(laptop, base, phone, password)
    other_browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        mobile = other_browser.new_context(locale="ru-RU").new_page()
        sign_in(mobile, base, phone, password)
        laptop.goto(base + "/profile/devices")
        rows = laptop.locator("#devices tbody tr")
        assert rows.count() >= 2
        other = rows.filter(has_not_text="это устройство").first
        other.get_by_role("button", name="Выйти").click()
        laptop.wait_for_selector("text=Устройство отключено")
        mobile.goto(base + "/profile")
        assert mobile.url.startswith(base + "/login")
        laptop.goto(base + "/profile")
        assert laptop.url == base + "/profile"
    finally:
        other_browser.close()
    assert csp_violations(laptop) == []


def test_deletion_then_cancel(browser, demo):
    base = demo["base"]
    phone, password = demo["logins"]["operator"]
    page = browser.new_page()
    sign_in(page, base, phone, password)
    page.goto(base + "/profile")
    page.get_by_role("link", name="Удалить аккаунт").click()
    page.get_by_role("link", name="Удалить аккаунт и все доступы").click()
    page.wait_for_url(base + "/profile/delete/consequences")
    for box in page.locator("input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Удалить аккаунт и все доступы").click()
    page.wait_for_url(base + "/profile/delete/code")
    page.fill("#code", latest(demo, phone, "sms")["code"])
    page.get_by_role("button", name="Подтвердить").click()
    page.wait_for_url(base + "/")
    banner = page.locator("#deletion-banner")
    assert banner.is_visible()
    assert re.search(r"\d\d\.\d\d\.\d{4}", banner.text_content())
    banner.get_by_role("link", name="Отменить удаление").click()
    page.get_by_role("button", name="Подтвердить").click()
    page.wait_for_url(base + "/profile")
    assert page.locator("text=Удаление аккаунта отменено").is_visible()
    page.goto(base + "/")
    assert page.locator("#deletion-banner").count() == 0
    assert csp_violations(page) == []


def test_a_double_click_on_sign_in_signs_in_once(browser, demo):
    """Two sign-ins from one click would make a spare device, which pushes one of the
    person's own out once they have ten."""
    base = demo["base"]
    login, password = demo["logins"]["resident"]

    def devices() -> int:
        return query(url_for(demo["instance"]),
                     "select count(*) from device d join account a on a.id = d.account_id "
                     "where a.phone = ?", (login,))[0][0]

    before = devices()
    page = browser.new_page()
    page.goto(base + "/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.dblclick("button[type=submit]", delay=40)
    page.wait_for_url(base + "/")
    page.wait_for_timeout(300)  # a second sign-in, had it gone, would be in by now
    assert devices() == before + 1
