"""Real Chromium: a manager creates a territory, someone joins by its code, is accepted
with a unit, and then sees the territory; the manager's console on a phone screen."""

from __future__ import annotations

import re

import pytest

from domain.demo import PASSWORD
from tests.e2e.conftest import csp_violations, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPLICANT = "+79990000005"  # seed-demo's applicant, who belongs nowhere but has a request



def sign_out(page):
    page.click("nav >> text=Выйти")
    page.wait_for_selector("#login")


def test_create_join_accept_and_enter(browser, demo):
    base = demo["base"]
    page = browser.new_page()
    manager_login, manager_password = demo["logins"]["manager"]

    # The manager creates a territory and reads its code.
    sign_in(page, base, manager_login, manager_password)
    page.click("text=Создать территорию")
    page.fill("#name", "Коттеджный посёлок «Берёзки»")
    page.select_option("#kind", "residential")
    page.fill("#address", "д. Берёзки")
    page.click("button:has-text('Создать территорию')")
    page.wait_for_selector("h1:has-text('Берёзки')")
    code = page.inner_text(".code")
    assert re.fullmatch(r"\d{3}-\d{3}", code)
    sign_out(page)

    # Another account asks to join with the code, typed without the dash.
    sign_in(page, base, APPLICANT, PASSWORD)
    page.click("#start-actions >> text=Подключиться к территории")
    page.fill("#code", code.replace("-", ""))
    page.fill("#unit_label", "Участок 632 и 633 (дом 148)")
    page.click("button:has-text('Подключиться')")
    page.wait_for_selector("text=Запрос отправлен")
    request_box = page.locator(".request", has_text="Берёзки")
    assert "Ожидает решения управляющего" in request_box.inner_text()
    sign_out(page)

    # The manager accepts with a new unit and the resident role.
    sign_in(page, base, manager_login, manager_password)
    # The territory last chosen (before signing out) is where the manager starts again.
    assert "Берёзки" in page.inner_text("#current-territory")
    page.click("#current-territory >> text=Войти в территорию")
    page.wait_for_selector("h1:has-text('Берёзки')")
    page.click("nav >> text=Управление")
    card = page.locator("section.card", has_text="Новикова")
    assert card.locator("input[name$='-a-new_unit']").input_value() == "Участок 632 и 633 (дом 148)"
    card.locator("select[name$='-a-role']").select_option("resident")
    card.locator("button:has-text('Подтвердить')").click()
    page.wait_for_selector("text=подключён(а) к территории")
    page.click(".tabs >> text=Объекты")
    row = page.locator("#units tr", has_text="Участок 632 и 633 (дом 148)")
    assert "1 / 10" in row.inner_text()
    assert csp_violations(page) == []
    sign_out(page)

    # The new member sees the territory, and the outbox told them.
    sign_in(page, base, APPLICANT, PASSWORD)
    # Their only territory comes first on the home page.
    assert "Берёзки" in page.inner_text("#current-territory")
    page.click("#current-territory >> text=Войти в территорию")
    page.wait_for_selector("h1:has-text('Берёзки')")
    body = page.inner_text("#territory")
    assert "Резидент" in body and "Участок 632 и 633 (дом 148)" in body
    assert page.locator("nav >> text=Управление").count() == 0
    page.goto(base + "/dev/outbox")
    assert "принят" in page.inner_text("#outbox")
    assert csp_violations(page) == []


def test_a_role_change_that_revokes_passes_asks_first(browser, demo):
    """Making a resident an operator revoked their passes with no question (s24 audit);
    «Отмена» now keeps everything as it was."""
    from tests.database import query, url_for

    def sql(text, params=()):
        return query(url_for(demo["instance"]), text, params)

    resident_login = demo["logins"]["resident"][0]
    tid, mid = sql(
        "select m.territory_id, m.id from membership m join account a on a.id = m.account_id "
        "join vehicle_pass p on p.account_id = a.id and p.territory_id = m.territory_id "
        "where a.phone = ? and p.revoked_at is null limit 1", (resident_login,))[0]
    page = browser.new_page()
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    sign_in(page, demo["base"], *demo["logins"]["manager"])
    page.goto(f"{demo['base']}/t/{tid}/manage/members/{mid}")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.select_option("#role", "operator")
    page.click("button:has-text('Сохранить')")
    page.wait_for_timeout(700)  # time for a request that must not come
    assert len(asked) == 1 and "будут отозваны" in asked[0] and posts == []
    assert sql("select role from membership where id = ?", (mid,)) == [("resident",)]
    # Another choice asks nothing.
    page.select_option("#role", "resident")
    page.click("button:has-text('Сохранить')")
    page.wait_for_selector("text=Сохранено")
    assert len(asked) == 1
