"""Cards at the gate over HTTP: a typed number waits for the manager, whose «Карты» page
approves or unbinds it; a refund takes back only what its purchase added."""

from __future__ import annotations

import datetime as dt
import html
import re
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

    # A date already past is refused at its field, and nothing changes.
    past = post(sad["manager"], approve, {"until": "2020-01-01"})
    assert past.status_code == 422
    assert _mistake(past.get_data(as_text=True), card.id) == ("2020-01-01", "Эта дата уже прошла")
    assert Card.get().valid_until == card.valid_until

    unbind = f"/t/{sad['tid']}/billing/cards/{card.id}/unbind"
    assert post(sad["manager"], unbind).status_code == 302
    assert Card.select().count() == 0
    assert _gate(sad["tid"]).reason == "unknown_card"
    # The number is free again.
    assert _bind(sad["parent"], sad["tid"], "0008106606").status_code == 302


def _mistake(page: str, card_id: int) -> tuple[str | None, str | None]:
    """The value a card's «Действует по» field shows and the mistake said under it."""
    field = re.search(rf'<input[^>]* id="until-{card_id}"[^>]*>', page).group(0)
    value = re.search(r'value="([^"]*)"', field)
    said = re.search(rf'<p class="error" id="until-{card_id}-error">([^<]*)</p>', page)
    if said:  # the field points at its mistake, as render_field does
        assert 'aria-invalid="true"' in field
        assert f'aria-describedby="until-{card_id}-error"' in field
    return (html.unescape(value.group(1)) if value else None,
            html.unescape(said.group(1)) if said else None)


@pytest.mark.parametrize(("typed", "said"), [
    ("2020-01-01", "Эта дата уже прошла"),
    ("2100-01-01", "Не позже 31.12.2099"),
    ("", "Укажите дату"),
    ("31.02.2030", "Неверное значение даты."),
])
def test_an_approval_mistake_is_said_at_the_date_as_typed(sad, typed, said):
    _bind(sad["parent"], sad["tid"])
    _bind(sad["parent"], sad["tid"], "124,00001")
    first, second = Card.select().order_by(Card.id)
    approve = f"/t/{sad['tid']}/billing/cards/{second.id}/approve"
    for headers in ({}, {"HX-Request": "true", "HX-Boosted": "true"}):  # hx-boost sends it so
        response = post(sad["manager"], approve, {"until": typed}, headers=headers)
        page = response.get_data(as_text=True)
        assert response.status_code == 422 and "<html" in page
        assert _mistake(page, second.id) == (typed, said)
        # The other card's form is as it was: its proposal, no mistake; nothing flashed.
        assert _mistake(page, first.id)[1] is None and _mistake(page, first.id)[0]
        assert 'class="flashes"' not in page
    assert Card.select().where(Card.valid_until.is_null(False)).count() == 0


def test_an_approval_mistake_is_said_in_english_too(sad):
    post(sad["manager"], "/lang/en")
    _bind(sad["parent"], sad["tid"])
    card = Card.get()
    page = post(sad["manager"], f"/t/{sad['tid']}/billing/cards/{card.id}/approve",
                {"until": "2020-01-01"}).get_data(as_text=True)
    assert _mistake(page, card.id) == ("2020-01-01", "This date has already passed")


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

