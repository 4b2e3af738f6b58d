"""Real Chromium buys through the sandbox bank: app access by SBP, a card by bank card."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.database import query, url_for
from tests.e2e.conftest import csp_violations, sign_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _kindergarten_id(demo) -> int:
    sql = "SELECT id FROM territory WHERE kind = 'kindergarten'"
    return query(url_for(demo["instance"]), sql)[0][0]



def test_buy_app_access_with_sbp(browser, demo):
    tid = _kindergarten_id(demo)
    page = browser.new_page()
    sign_in_as(page, demo)
    page.goto(f"{demo['base']}/t/{tid}/billing/")
    page.click("text=Купить доступ")
    page.wait_for_selector("text=Родители группы 1")
    assert "28,33" in page.content()
    # Sent without a period: the mistake is said there and the first period has the focus.
    page.click("button[value=sbp]")
    page.wait_for_selector("#period-error")
    expect(page.locator("input[name=period]").first).to_be_focused()
    page.click("label.period:has-text('Срок действия 3 мес.')")
    assert page.input_value("#email") == "resident@propusk.demo"
    page.click("button[value=sbp]")
    page.wait_for_selector(".qr svg")
    assert "85,00" in page.inner_text(".total")
    status = page.locator("#payment-status")
    assert "Ожидается оплата" in status.inner_text()

    # The payer's bank app: another page opens the QR's link and pays.
    bank = browser.new_page()
    bank.goto(page.get_attribute("[data-bank-link]", "href"))
    bank.click("button:has-text('Оплатить')")
    bank.wait_for_selector("text=Оплачено")

    # The checkout page learns it by itself, within a couple of polls.
    page.wait_for_selector("#payment-status:has-text('Оплачено до')", timeout=5000)
    assert "every 1s" not in (page.locator("#payment-status").get_attribute("hx-trigger") or "")
    # And the way to pay goes with it: no QR code or bank link beside «Оплачено».
    expect(page.locator("#checkout-pay .qr")).to_have_count(0)
    expect(page.locator("[data-bank-link]")).to_have_count(0)
    page.goto(demo["base"] + "/payments")
    row = page.locator("tr[data-payment]").first
    assert "Завершен" in row.inner_text() and "Приложение" in row.inner_text()
    assert csp_violations(page) == [] and csp_violations(bank) == []


def test_buy_a_card_by_bank_card_and_bind_it(browser, demo):
    tid = _kindergarten_id(demo)
    page = browser.new_page()
    sign_in_as(page, demo)
    page.goto(f"{demo['base']}/t/{tid}/billing/")
    page.click("text=Купить карту")
    page.wait_for_selector("text=СТОИМОСТЬ КАРТЫ")
    assert "150,00" in page.content() and "48 мес." in page.content()
    page.click("button[value=bank_card]")
    # Straight to the bank's card form.
    page.wait_for_selector("#number")
    page.fill("#number", "4111 1111 1111 1111")
    page.fill("#expiry", "12/30")
    page.fill("#cvc", "123")
    page.click("button:has-text('Оплатить')")
    page.wait_for_selector("#payment-status:has-text('Требуется ввод карты')")
    page.click("#payment-status >> text=У меня есть карта")
    page.fill("#card_number", "123,45678")
    page.click("button:has-text('Подтвердить')")
    page.wait_for_selector("text=Карта 123,45678 привязана")
    assert "действует до" in page.content()
    page.goto(f"{demo['base']}/payments?kind=card")
    row = page.locator("tr[data-payment]").first
    assert "Завершен" in row.inner_text() and "Требуется ввод карты" not in row.inner_text()
    assert csp_violations(page) == []
