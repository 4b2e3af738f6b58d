"""Cards at the gate over HTTP: a typed number waits for the manager, whose «Карты» page
approves or unbinds it; a refund takes back only what its purchase added."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from domain import billing
from domain.access import Credential, decide
from domain.billing import Card, Payment
from domain.db import utcnow
from tests.billing_fixtures import join, kindergarten, wire_sandbox
from tests.web.territory_kit import post, signed_in

NUMBER = 8_106_606  # 123,45678


@pytest.fixture
def sad(app, make_account):
    """A kindergarten with its manager, a parent, an operator, a platform admin, and a
    second kindergarten of another manager."""
    with app.test_request_context():
        manager, parent, operator = make_account(), make_account(), make_account()
        admin = make_account(is_admin=True)
        territory = kindergarten(manager)
        elsewhere = kindergarten(make_account(), name="Другой сад")
        join(parent, territory)
        join(operator, territory, role="operator")
        join(parent, elsewhere)
    wire_sandbox(app)
    return {"t": territory, "tid": territory.id, "elsewhere": elsewhere,
            "manager": signed_in(app, manager), "parent": signed_in(app, parent),
            "operator": signed_in(app, operator), "admin": signed_in(app, admin),
            "parent_id": parent.id}


def _gate(tid, number=NUMBER):
    return decide(tid, Credential("card", str(number)), 1, utcnow())


def _bind(client, tid, printed="123,45678"):
    return post(client, f"/t/{tid}/billing/card", {"card_number": printed})


def test_a_typed_number_waits_for_the_manager_and_opens_nothing(sad):
    response = _bind(sad["parent"], sad["tid"], "123,45678")
    assert response.status_code == 302
    home = sad["parent"].get(response.headers["Location"]).get_data(as_text=True)
    assert "Карта 123,45678 привязана и ожидает подтверждения управляющего" in home
    assert "123,45678 — ожидает подтверждения управляющего" in home
    decision = _gate(sad["tid"])
    assert (decision.granted, decision.reason) == (False, "card_not_approved")
    assert decision.reason_label == "Карта ожидает подтверждения управляющего"


def test_the_manager_lists_approves_and_unbinds_cards(sad):
    _bind(sad["parent"], sad["tid"])
    card = Card.get()
    page = sad["manager"].get(f"/t/{sad['tid']}/billing/cards").get_data(as_text=True)
    assert "Карты" in page and "123,45678" in page
    assert "Ожидает подтверждения управляющего" in page
    assert 'data-confirm="Подтвердить карту 123,45678?' in page
    assert 'data-confirm="Отвязать карту 123,45678?' in page
    # The default approval is the territory's card validity (48 months) from today.
    zone = ZoneInfo(sad["t"].timezone)
    default = billing.add_months(utcnow(), 48, sad["t"].timezone).astimezone(zone).date()
    assert f'value="{default.isoformat()}"' in page

    last_day = (utcnow() + dt.timedelta(days=60)).date()
    approve = f"/t/{sad['tid']}/billing/cards/{card.id}/approve"
    assert post(sad["manager"], approve, {"until": last_day.isoformat()}).status_code == 302
    card = Card.get()
    local_end = card.valid_until.astimezone(zone)
    assert (local_end.date(), local_end.time()) == (last_day + dt.timedelta(days=1), dt.time())
    decision = _gate(sad["tid"])
    assert (decision.granted, decision.reason, decision.valid_until) == (
        True, "card_valid", card.valid_until)
    page = sad["manager"].get(f"/t/{sad['tid']}/billing/cards").get_data(as_text=True)
    assert "Действует" in page and "Продлить" in page
    # Its end reads as the day chosen, not as the midnight after it; «Продлить» proposes
    # the validity from that end, which it would accept.
    shown = last_day.strftime("%d.%m.%Y")
    assert f">{shown}</td>" in page and "00:00" not in page
    longer = billing.add_months(card.valid_until, 48, sad["t"].timezone).astimezone(zone).date()
    assert f'value="{longer.isoformat()}"' in page
    assert f"действует до {shown}" in sad["parent"].get(
        f"/t/{sad['tid']}/billing/").get_data(as_text=True)

    # A date already past is refused, and nothing changes.
    past = post(sad["manager"], approve, {"until": "2020-01-01"}, follow_redirects=True)
    assert "Эта дата уже прошла" in past.get_data(as_text=True)
    assert Card.get().valid_until == card.valid_until

    unbind = f"/t/{sad['tid']}/billing/cards/{card.id}/unbind"
    assert post(sad["manager"], unbind).status_code == 302
    assert Card.select().count() == 0
    assert _gate(sad["tid"]).reason == "unknown_card"
    # The number is free again.
    assert _bind(sad["parent"], sad["tid"], "0008106606").status_code == 302


def test_cards_page_is_the_managers_of_this_territory_only(app, sad, make_account):
    _bind(sad["parent"], sad["tid"])
    card = Card.get()
    cards = f"/t/{sad['tid']}/billing/cards"
    for who in ("parent", "operator"):
        assert sad[who].get(cards).status_code == 404
        assert post(sad[who], f"{cards}/{card.id}/unbind").status_code == 404
    # The platform admin acts as a manager.
    assert sad["admin"].get(cards).status_code == 200
    # Another territory's card through this territory's address: 404, and it stays.
    with app.test_request_context():
        other_manager = make_account()
        mine = kindergarten(other_manager, name="Мой сад")
    theirs = signed_in(app, other_manager)
    for action, data in (("unbind", {}), ("approve", {"until": "2999-01-01"})):
        assert post(theirs, f"/t/{mine.id}/billing/cards/{card.id}/{action}",
                    data).status_code == 404
    assert Card.get().valid_until is None
    # The tab is among the manager's; a territory without cards has neither tab nor page.
    assert f"/t/{sad['tid']}/billing/cards" in sad["manager"].get(
        f"/t/{sad['tid']}/manage/settings").get_data(as_text=True)
    with app.test_request_context():
        home = kindergarten(other_manager, name="ЖК", kind="residential")
    assert theirs.get(f"/t/{home.id}/billing/cards").status_code == 404
    assert "billing/cards" not in theirs.get(
        f"/t/{home.id}/manage/settings").get_data(as_text=True)


def test_the_cards_tab_is_in_english_too(sad):
    post(sad["manager"], "/lang/en")
    _bind(sad["parent"], sad["tid"])
    page = sad["manager"].get(f"/t/{sad['tid']}/billing/cards").get_data(as_text=True)
    assert "Waiting for the manager&#39;s approval" in page and "Unlink" in page


# -- refunds of card purchases -----------------------------------------------------------------


def _buy_card_and_pay(client, tid):
    path = f"/t/{tid}/billing/card/buy"
    post(client, path, {"email": "p@example.com", "method": "sbp"})
    payment = Payment.select().order_by(Payment.id.desc()).get()
    bank = payment.confirmation_url.replace("http://localhost", "")
    assert post(client, bank + "/pay").status_code == 302
    return Payment.get_by_id(payment.id)


def test_refund_of_a_renewal_leaves_the_card_its_earlier_end(sad):
    _bind(sad["parent"], sad["tid"])
    card = Card.get()
    last_day = (utcnow() + dt.timedelta(days=60)).date()
    post(sad["manager"], f"/t/{sad['tid']}/billing/cards/{card.id}/approve",
         {"until": last_day.isoformat()})
    approved = Card.get().valid_until
    payment = _buy_card_and_pay(sad["parent"], sad["tid"])
    assert _bind(sad["parent"], sad["tid"]).status_code == 302  # the renewal goes on it
    assert Card.get().valid_until == billing.add_months(approved, 48, sad["t"].timezone)

    response = post(sad["admin"], f"/payments/{payment.id}/refund")
    assert response.status_code == 302
    assert Payment.get_by_id(payment.id).status == "refunded"
    assert Card.get().valid_until == approved
    assert _gate(sad["tid"]).granted

