"""Usability fixes on the billing pages: who paid, the access block by role, the tariffs
pages' confirmations, address and tabs."""

from __future__ import annotations

import re

import pytest

from domain import billing
from domain.accounts import Account
from domain.billing import Payment, Tariff, TariffPeriod
from domain.db import db
from domain.territories import Membership, Unit
from tests.billing_fixtures import join, kindergarten, token


def _paid(account, territory):
    offer = billing.app_offer(territory, TariffPeriod.of(territory.id).first().id)
    payment = billing.start_purchase(account, territory, offer, email="x@example.com",
                                     method="sbp", provider="sandbox")
    billing.attach_provider(payment, f"ext-{payment.id}", None)
    billing.apply_success(f"ext-{payment.id}", payment.expected_kopecks)
    return Payment.get_by_id(payment.id)


@pytest.fixture
def world(app, make_account):
    with app.test_request_context():
        admin = make_account(is_admin=True)
        manager = make_account(surname="Управляева", name="Мария", patronymic="Петровна")
        alice = make_account(surname="Иванова", name="Алиса", patronymic="Сергеевна")
        bob = make_account(surname="Петров", name="Борис", patronymic="Ильич")
        gone = make_account(surname="Удалённый", name="Гость")
        territory = kindergarten(manager, name="Сад 1", kind="residential")
        unit = Unit.create(territory=territory, name="Участок 632")
        Membership.create(account=alice, territory=territory, role="resident", unit=unit)
        join(bob, territory)
        join(gone, territory)
        operator = make_account(surname="Охранов", name="Олег", patronymic="Иванович")
        join(operator, territory, role="operator")
        payments = [_paid(alice, territory), _paid(bob, territory), _paid(gone, territory)]
        Payment.update(account=None).where(Payment.account == gone.id).execute()
        Membership.delete().where(Membership.account == gone.id).execute()
        Account.delete_by_id(gone.id)
    return {"admin": admin, "manager": manager, "alice": alice, "bob": bob,
            "operator": operator, "territory": territory, "payments": payments}


def _row(html, payment):
    match = re.search(rf'<tr data-payment="{payment.id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for payment {payment.id}"
    return match.group(1)


# -- 1. who paid ------------------------------------------------------------------------------


def test_manager_registry_shows_number_payer_and_unit(client, auth, world):
    auth.login(world["manager"].phone)
    html = client.get(f"/t/{world['territory'].id}/billing/payments").get_data(as_text=True)
    assert "Плательщик" in html and ">№<" in html
    alice_paid, bob_paid, gone_paid = world["payments"]
    row = _row(html, alice_paid)
    assert f">{alice_paid.id}<" in row
    assert "Иванова Алиса Сергеевна" in row and "Участок 632" in row
    assert world["territory"].display_code not in row  # not the territory code as «ID»
    assert "Петров Борис Ильич" in _row(html, bob_paid)
    assert "Аккаунт удалён" in _row(html, gone_paid)


def test_registry_is_one_query(app, client, auth, world, monkeypatch):
    auth.login(world["manager"].phone)
    path = f"/t/{world['territory'].id}/billing/payments"
    client.get(path)
    statements = []
    original = db.obj.execute_sql

    def counting(sql, *args, **kwargs):
        statements.append(sql)
        return original(sql, *args, **kwargs)

    monkeypatch.setattr(db.obj, "execute_sql", counting)
    response = client.get(path, headers={"HX-Request": "true"})
    assert response.get_data(as_text=True).count("data-payment=") == 3
    # One query for the rows with payers and units: no query a row (the session's own
    # query reads the device with its account and membership, never a unit).
    rows = [s for s in statements if 'FROM "payment"' in s]
    assert len(rows) == 1, rows
    per_row = [s for s in statements if s.startswith(('SELECT', 'select'))
               and ('FROM "unit"' in s or 'FROM "account"' in s or 'FROM "membership"' in s)]
    assert per_row == [], per_row


def test_admin_sees_payers_and_refund_names_them(client, auth, world):
    auth.login(world["admin"].phone)
    html = client.get("/payments").get_data(as_text=True)
    alice_paid = world["payments"][0]
    row = _row(html, alice_paid)
    assert "Иванова Алиса Сергеевна" in row and "Участок 632" in row
    assert world["territory"].display_code in row  # the code only in the all-territories view
    assert f"за платёж № {alice_paid.id} (Иванова Алиса Сергеевна)" in row


def test_resident_sees_no_one_else(client, auth, world):
    auth.login(world["alice"].phone)
    for path in ("/payments", f"/t/{world['territory'].id}/billing/payments"):
        html = client.get(path).get_data(as_text=True)
        assert html.count("data-payment=") == 1
        assert "Плательщик" not in html
        assert "Петров" not in html and "Аккаунт удалён" not in html
        assert "Участок 632" in html  # her own object


def test_term_has_its_unit_and_empty_filter_says_so(client, auth, world):
    auth.login(world["alice"].phone)
    html = client.get("/payments").get_data(as_text=True)
    assert re.search(r'data-label="Срок действия">3 мес\.<', html)
    html = client.get("/payments?status=refunded").get_data(as_text=True)
    assert "Нет платежей по этим условиям" in html and "Платежей пока нет" not in html


# -- 2. the access block is for those who buy access ---------------------------------------


def test_guard_home_has_no_paid_access_block(client, auth, world):
    auth.login(world["operator"].phone)
    html = client.get(f"/t/{world['territory'].id}/").get_data(as_text=True)
    assert "Активировать доступ" not in html and "billing-actions" not in html
    assert "Проверить номер" in html


def test_resident_and_manager_home_keep_the_access_block(client, auth, world):
    for who in ("alice", "manager"):
        auth.login(world[who].phone)
        html = client.get(f"/t/{world['territory'].id}/").get_data(as_text=True)
        assert "Активировать доступ" in html, who
        auth.logout()


# -- 7. confirmations and the address after a mistake ----------------------------------------


def test_adding_and_deleting_tariffs_and_periods_confirms(client, auth, world):
    auth.login(world["manager"].phone)
    tid = world["territory"].id
    settings = f"/t/{tid}/billing/settings"
    response = client.post(f"/t/{tid}/billing/tariffs", follow_redirects=True, data={
        "csrf_token": token(client, settings), "name": "Жители"})
    assert "Тариф добавлен" in response.get_data(as_text=True)
    tariff = Tariff.get(Tariff.name == "Жители")
    response = client.post(f"/t/{tid}/billing/tariffs/{tariff.id}/periods", follow_redirects=True,
                           data={"csrf_token": token(client, settings),
                                 f"p{tariff.id}-months": "3", f"p{tariff.id}-price": "85"})
    assert "Период добавлен" in response.get_data(as_text=True)
    period = TariffPeriod.get(TariffPeriod.tariff == tariff)
    response = client.post(f"/t/{tid}/billing/periods/{period.id}/delete", follow_redirects=True,
                           data={"csrf_token": token(client, settings)})
    assert "Период удалён" in response.get_data(as_text=True)
    response = client.post(f"/t/{tid}/billing/tariffs/{tariff.id}/delete", follow_redirects=True,
                           data={"csrf_token": token(client, settings)})
    assert "Тариф удалён" in response.get_data(as_text=True)


def test_deleting_a_promo_confirms(client, auth, world):
    auth.login(world["manager"].phone)
    tid = world["territory"].id
    settings = f"/t/{tid}/billing/settings"
    client.post(f"/t/{tid}/billing/promos", data={
        "csrf_token": token(client, settings), "code": "VESNA", "discount_kind": "percent",
        "value": "10"})
    promo = billing.PromoCode.get()
    response = client.post(f"/t/{tid}/billing/promos/{promo.id}/delete", follow_redirects=True,
                           data={"csrf_token": token(client, settings)})
    assert "Промокод удалён" in response.get_data(as_text=True)


def test_a_failed_period_keeps_the_tariffs_address(client, auth, world):
    auth.login(world["manager"].phone)
    tid = world["territory"].id
    settings = f"/t/{tid}/billing/settings"
    tariff = Tariff.get(Tariff.territory == tid)
    response = client.post(f"/t/{tid}/billing/tariffs/{tariff.id}/periods", data={
        "csrf_token": token(client, settings), f"p{tariff.id}-months": "3",
        f"p{tariff.id}-price": "abc"}, headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert response.status_code == 422
    assert response.headers.get("HX-Replace-Url") == settings
    response = client.post(f"/t/{tid}/billing/tariffs", data={
        "csrf_token": token(client, settings), "name": ""},
        headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert response.status_code == 422
    assert response.headers.get("HX-Replace-Url") == settings


# -- 8. «Тарифы и цены» among the management tabs ---------------------------------------------


def test_tariffs_are_a_management_tab(client, auth, world):
    auth.login(world["manager"].phone)
    tid = world["territory"].id
    html = client.get(f"/t/{tid}/manage/units").get_data(as_text=True)
    assert f'href="/t/{tid}/billing/settings"' in html.split('class="tabs"')[1].split("</nav>")[0]
    html = client.get(f"/t/{tid}/billing/settings").get_data(as_text=True)
    tabs = html.split('class="tabs"')[1].split("</nav>")[0]
    assert re.search(rf'href="/t/{tid}/billing/settings" aria-current="page">Тарифы и цены<',
                     tabs)
    html = client.get(f"/t/{tid}/billing/payments").get_data(as_text=True)
    tabs = html.split('class="tabs"')[1].split("</nav>")[0]
    assert re.search(rf'href="/t/{tid}/billing/payments" aria-current="page">Платежи<', tabs)


def test_residents_payments_have_no_management_tabs(client, auth, world):
    auth.login(world["alice"].phone)
    html = client.get(f"/t/{world['territory'].id}/billing/payments").get_data(as_text=True)
    assert "Разделы управления" not in html
