"""Buying through the sandbox bank, end to end over HTTP (test client), and the webhook's rules."""

from __future__ import annotations

import json

import pytest

import providers
from domain import billing
from domain.billing import AccessGrant, Card, Payment, PaymentEvent, PromoCode
from domain.db import utcnow
from tests.billing_fixtures import join, kindergarten, token, wire_sandbox


@pytest.fixture
def shop(app, make_account, auth):
    """A kindergarten, its manager, a signed-in resident with an e-mail."""
    with app.app_context():
        manager = make_account(email="boss@example.com")
        resident = make_account(email="parent@example.com")
        territory = kindergarten(manager)
        join(resident, territory)
    wire_sandbox(app)
    auth.login(resident.phone)
    return {"territory": territory, "resident": resident, "manager": manager, "tid": territory.id}


def _buy_access(client, tid, method="sbp", promo="", period_months=3):
    path = f"/t/{tid}/billing/access"
    period_id = next(p.id for p in billing.TariffPeriod.select() if p.months == period_months)
    return client.post(path, data={
        "csrf_token": token(client, path), "period": period_id, "email": "parent@example.com",
        "promo": promo, "method": method,
    })


def _bank_pay(client, payment, card=False):
    bank = payment.confirmation_url.replace("http://localhost", "")
    data = {"csrf_token": token(client, bank)}
    if card:
        data.update(number="4111 1111 1111 1111", expiry="12/30", cvc="123")
    return client.post(bank + "/pay", data=data)


def test_access_page_shows_prices_per_month(client, shop):
    html = client.get(f"/t/{shop['tid']}/billing/access").get_data(as_text=True)
    assert "Доступ по приложению" in html and "Тарифы" in html and "Родители группы 1" in html
    assert "Срок действия 3 мес." in html and "85,00" in html and "28,33\xa0₽/мес." in html
    assert "Срок действия 1 год" in html and "300,00" in html and "25,00\xa0₽/мес." in html
    assert 'value="parent@example.com"' in html  # the receipt e-mail is pre-filled
    assert "Способы оплаты" in html


def test_sbp_checkout_qr_status_and_payment(app, client, shop):
    response = _buy_access(client, shop["tid"])
    assert response.status_code == 302
    payment = Payment.get()
    assert (payment.status, payment.expected_kopecks, payment.method) == ("pending", 8500, "sbp")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "QR-код для оплаты" in page and "<svg" in page and "Итого" in page and "85,00" in page
    assert "Статус оплаты" in page and "Ожидается оплата" in page
    assert 'hx-trigger="every 1s"' in page
    status_url = f"/t/{shop['tid']}/billing/payments/{payment.id}/status"
    waiting = client.get(status_url, headers={"HX-Request": "true"})
    assert waiting.status_code == 200 and "<html" not in waiting.get_data(as_text=True)
    assert "Ожидается оплата" in waiting.get_data(as_text=True)

    assert _bank_pay(client, payment).status_code == 302
    done = client.get(status_url, headers={"HX-Request": "true"})
    body = done.get_data(as_text=True)
    assert done.status_code == 286 and "Оплачено" in body and "every 1s" not in body
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "succeeded" and payment.amount_kopecks == 8500
    grant = AccessGrant.get()
    assert grant.paid_until == payment.paid_until == billing.add_months(
        payment.paid_at, 3, shop["territory"].timezone)
    with app.app_context():
        receipt = providers.outbox().latest(to="parent@example.com", channel="email")
    assert "Чек об оплате" in receipt["text"] and "85,00" in receipt["text"]
    assert "Родители группы 1" in receipt["text"]


def test_second_purchase_extends_from_the_current_end(app, client, shop):
    for _ in range(2):
        _buy_access(client, shop["tid"])
        _bank_pay(client, Payment.select().order_by(Payment.id.desc()).get())
    first, second = Payment.select().order_by(Payment.id)
    assert second.period_start == first.paid_until
    assert AccessGrant.get().paid_until == second.paid_until


def test_declined_payment_is_canceled_and_frees_the_promo(app, client, shop):
    with app.app_context():
        billing.add_promo(shop["territory"], "LETO", percent=10, usage_limit=1)
    _buy_access(client, shop["tid"], promo="leto")
    payment = Payment.get()
    assert payment.expected_kopecks == 7650 and payment.discount_kopecks == 850
    assert PromoCode.get().used_count == 1
    bank = payment.confirmation_url.replace("http://localhost", "")
    client.post(bank + "/decline", data={"csrf_token": token(client, bank)})
    assert Payment.get().status == "canceled"
    assert PromoCode.get().used_count == 0
    assert AccessGrant.select().count() == 0


def test_wrong_promo_says_why(app, client, shop):
    with app.app_context():
        # Made while it still worked.
        billing.add_promo(shop["territory"], "OLD", percent=10,
                          expires_at=utcnow().replace(year=2020),
                          now=utcnow().replace(year=2019))
    wrong = [("NOPE", "Такого промокода нет"), ("old", "Срок действия промокода истёк")]
    for code, reason in wrong:
        response = _buy_access(client, shop["tid"], promo=code)
        assert response.status_code == 422
        assert reason in response.get_data(as_text=True)
    assert Payment.select().count() == 0


def test_bank_card_goes_to_the_card_form_and_back(app, client, shop):
    response = _buy_access(client, shop["tid"], method="bank_card")
    assert response.status_code == 302
    payment = Payment.get()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Перейти к оплате картой" in page and payment.confirmation_url in page
    form = client.get(payment.confirmation_url.replace("http://localhost", ""))
    assert "Номер карты" in form.get_data(as_text=True)
    back = _bank_pay(client, payment, card=True)
    assert back.status_code == 302 and back.headers["Location"].endswith(
        f"/t/{shop['tid']}/billing/payments/{payment.id}")
    assert Payment.get().status == "succeeded"


def test_htmx_bank_card_redirects_the_browser_to_the_form(app, client, shop):
    path = f"/t/{shop['tid']}/billing/access"
    period = billing.TariffPeriod.select().where(billing.TariffPeriod.months == 3).get()
    response = client.post(path, headers={"HX-Request": "true"}, data={
        "csrf_token": token(client, path), "period": period.id, "email": "a@example.com",
        "method": "bank_card"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == Payment.get().confirmation_url


def test_buy_card_then_bind_it(app, client, shop):
    path = f"/t/{shop['tid']}/billing/card/buy"
    html = client.get(path).get_data(as_text=True)
    assert "СТОИМОСТЬ КАРТЫ" in html and "150,00" in html and "48 мес." in html
    client.post(path, data={"csrf_token": token(client, path), "email": "p@example.com",
                            "method": "sbp"})
    payment = Payment.get()
    assert (payment.kind, payment.expected_kopecks, payment.months) == ("card", 15000, 48)
    _bank_pay(client, payment)
    registry = client.get("/payments").get_data(as_text=True)
    assert "Требуется ввод карты" in registry and "Завершен" in registry
    bind = f"/t/{shop['tid']}/billing/card"
    # A decimal keypad: the only numeric one on iOS with a key between the two halves.
    assert 'inputmode="decimal"' in client.get(bind).get_data(as_text=True)
    response = client.post(bind, data={"csrf_token": token(client, bind),
                                       "card_number": "123.45678"})
    assert response.status_code == 302
    card = Card.get()
    payment = Payment.get()
    assert card.number == 8_106_606 and card.payment_id == payment.id
    assert card.valid_until == billing.add_months(payment.paid_at, 48, "Europe/Moscow")
    assert "Требуется ввод карты" not in client.get("/payments").get_data(as_text=True)
    assert billing.card_access(shop["tid"], 8_106_606, utcnow()) == (
        shop["resident"].id, card.valid_until)


def test_card_bound_elsewhere_is_refused(app, client, shop, make_account):
    with app.app_context():
        other = make_account()
        join(other, shop["territory"])
        billing.bind_card(other, shop["territory"], "0008106606")
    bind = f"/t/{shop['tid']}/billing/card"
    response = client.post(bind, data={"csrf_token": token(client, bind),
                                       "card_number": "123,45678"})
    assert response.status_code == 422
    assert "уже привязана к другому аккаунту" in response.get_data(as_text=True)
    assert Card.select().count() == 1


def test_cards_only_in_kindergartens(app, client, shop, make_account):
    from tests.billing_fixtures import kindergarten as make

    with app.app_context():
        home = make(shop["manager"], name="ЖК", kind="residential")
        join(shop["resident"], home)
    assert client.get(f"/t/{home.id}/billing/card").status_code == 404
    assert client.get(f"/t/{home.id}/billing/card/buy").status_code == 404
    assert "Активировать доступ" in client.get(f"/t/{home.id}/billing/").get_data(as_text=True)


def test_only_those_who_buy_get_the_forms_to_bind_and_buy(app, client, auth, shop,
                                                        make_account):
    """Audit (stop 23): the pages hid «У меня есть карта» and «Купить доступ» from guards
    and from the admin where they are no member, but the server took their forms: a card
    bound for nobody the gate would let in, 85 ₽ paid for access the gate refused."""
    tid = shop["tid"]
    with app.app_context():
        guard = make_account()
        join(guard, shop["territory"], role="operator")
        admin = make_account(is_admin=True)
    for who in (guard, admin):
        auth.logout()
        auth.login(who.phone)
        for path in ("card", "card/buy", "access"):
            assert client.get(f"/t/{tid}/billing/{path}").status_code == 404, (who, path)
        assert client.post(f"/t/{tid}/billing/card", data={
            "csrf_token": token(client, "/profile"), "card_number": "124,11111"}).status_code == 404
    assert Card.select().count() == 0 and Payment.select().count() == 0


def test_free_territory_sells_no_access(app, client, shop):
    billing.Territory.update(app_access_free=True).execute()
    html = client.get(f"/t/{shop['tid']}/billing/").get_data(as_text=True)
    assert "Доступ бесплатный" in html and "Купить доступ" not in html
    assert _buy_access(client, shop["tid"]).status_code == 200
    assert Payment.select().count() == 0


# -- the webhook ---------------------------------------------------------------------------


def _notification(payment, event="payment.succeeded", value=None):
    value = value or billing.kopecks_to_value(payment.expected_kopecks)
    return json.dumps({"type": "notification", "event": event, "object": {
        "id": payment.provider_payment_id, "status": "succeeded", "paid": True,
        "amount": {"value": value, "currency": "RUB"}}}).encode()


def _post(client, app, body, signature=None):
    provider = app.extensions["payments"]
    return client.post("/billing/webhook", data=body, headers={
        "Content-Type": "application/json",
        "X-Sandbox-Signature": provider.sign(body) if signature is None else signature})


def test_webhook_rejects_unsigned_and_forged(app, client, shop):
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    body = _notification(payment)
    assert _post(client, app, body, signature="").status_code == 403
    assert _post(client, app, body, signature="0" * 64).status_code == 403
    forged = app.extensions["payments"].sign(body.replace(b"85.00", b"1.00"))
    assert _post(client, app, body, signature=forged).status_code == 403
    assert Payment.get().status == "pending"


def test_webhook_amount_must_be_what_we_asked(app, client, shop):
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    assert _post(client, app, _notification(payment, value="1.00")).status_code == 409
    assert Payment.get().status == "pending" and AccessGrant.select().count() == 0


def test_webhook_repeated_applies_once(app, client, shop):
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    for _ in range(5):
        assert _post(client, app, _notification(payment)).status_code == 200
    assert PaymentEvent.select().count() == 1
    assert AccessGrant.get().paid_until == Payment.get().paid_until
    with app.app_context():
        emails = [e for e in providers.outbox().entries() if e["channel"] == "email"]
    assert len(emails) == 1


def test_webhook_is_csrf_exempt_but_unknown_payment_is_404(app, client, shop):
    body = json.dumps({"type": "notification", "event": "payment.succeeded", "object": {
        "id": "sbx-nope", "amount": {"value": "1.00", "currency": "RUB"}}}).encode()
    assert _post(client, app, body).status_code == 404
    assert _post(client, app, b"not json").status_code == 400


def test_the_sandbox_bank_is_hidden_with_the_dev_pages(app, client, shop):
    # A development page like the outbox: with DEV_PAGES=0 nobody may «pay» on it.
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    bank = payment.confirmation_url.replace("http://localhost", "")
    assert client.get(bank).status_code == 200
    app.config["DEV_PAGES"] = False
    assert client.get(bank).status_code == 404
    assert _bank_pay(client, payment).status_code == 404
    assert Payment.get().status == "pending"


def test_the_receipt_is_in_the_payer_s_language_whoever_settles_it(app, client, shop):
    """The payment is settled by whoever tells us it is paid (the bank's webhook, here its
    page in another browser, in Russian): the receipt still speaks the payer's language,
    the one its title was written in."""
    with app.app_context():
        billing.Account.update(locale="en").where(
            billing.Account.id == shop["resident"].id).execute()
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    assert payment.title.startswith("App access")
    assert _bank_pay(app.test_client(), payment).status_code == 302
    with app.app_context():
        receipt = providers.outbox().latest(to="parent@example.com", channel="email")
    assert "Payment receipt: 85.00" in receipt["text"] and "Total: 85.00" in receipt["text"]
    assert "Итого" not in receipt["text"] and "Способ оплаты" not in receipt["text"]


def test_what_was_bought_is_named_in_the_reader_s_language(app, client, shop):
    """Bought on an English page, the checkout read in Russian names it in Russian; the
    tariff's own name stays as the manager wrote it."""
    with app.app_context():
        billing.Account.update(locale="en").where(
            billing.Account.id == shop["resident"].id).execute()
    _buy_access(client, shop["tid"])
    payment = Payment.get()
    assert payment.title.startswith("App access") and payment.tariff_name
    with app.app_context():
        billing.Account.update(locale="ru").where(
            billing.Account.id == shop["resident"].id).execute()
    page = client.get(f"/t/{shop['tid']}/billing/payments/{payment.id}").get_data(as_text=True)
    assert f"Доступ по приложению: {payment.tariff_name}" in page
    assert "App access" not in page


def test_the_receipt_keeps_the_language_bought_in_when_the_account_switches(app, client, shop):
    """Bought in English, then Russian chosen on another device before the bank reports the
    payment: the receipt is in English, as the page and the title were."""
    with app.app_context():
        billing.Account.update(locale="en").where(
            billing.Account.id == shop["resident"].id).execute()
    _buy_access(client, shop["tid"])
    with app.app_context():
        billing.Account.update(locale="ru").where(
            billing.Account.id == shop["resident"].id).execute()
    payment = Payment.get()
    assert payment.locale == "en" and payment.title.startswith("App access")
    assert _bank_pay(app.test_client(), payment).status_code == 302
    with app.app_context():
        receipt = providers.outbox().latest(to="parent@example.com", channel="email")
    assert "Total: 85.00" in receipt["text"] and "Итого" not in receipt["text"]


def test_the_receipt_names_a_promo_code_deleted_before_the_payment(app, client, shop):
    """Audit: a code deleted between the checkout and the payment left «Скидка по промокоду :
    −8,50 ₽» on the receipt."""
    with app.app_context():
        billing.add_promo(shop["territory"], "leto", percent=10)
    _buy_access(client, shop["tid"], promo=" Leto ")
    payment = Payment.get()
    assert payment.promo_code == "LETO"
    with app.test_request_context():
        billing.delete_promo(shop["territory"], payment.promo_id)
    assert Payment.get().promo_id is None
    _bank_pay(client, payment)
    with app.app_context():
        receipt = providers.outbox().latest(to="parent@example.com", channel="email")
    assert "Скидка по промокоду LETO: −8,50\xa0₽" in receipt["text"]


def test_an_earlier_payment_without_the_codes_text_falls_back(app, client, shop):
    """Paid before the code's text was kept: the code as it is now, or no name at all."""
    with app.app_context():
        billing.add_promo(shop["territory"], "LETO", percent=10)
    _buy_access(client, shop["tid"], promo="leto")
    Payment.update(promo_code=None).execute()
    assert Payment.get().promo_label == "LETO"
    with app.test_request_context():
        billing.delete_promo(shop["territory"], Payment.get().promo_id)
    _bank_pay(client, Payment.get())
    with app.app_context():
        receipt = providers.outbox().latest(to="parent@example.com", channel="email")
    assert "Скидка по промокоду: −8,50\xa0₽" in receipt["text"]
    assert "промокоду :" not in receipt["text"]


def test_once_paid_the_checkout_drops_the_qr_code_and_the_bank_link(app, client, shop):
    """Audit: the status turned «Оплачено» while the QR code and «Открыть в приложении
    банка» stayed beside it (outside the polled widget)."""
    checkout = _buy_access(client, shop["tid"]).headers["Location"]
    payment = Payment.get()
    page = client.get(checkout).get_data(as_text=True)
    assert '<div id="checkout-pay">' in page and "data-bank-link" in page
    status_url = f"/t/{shop['tid']}/billing/payments/{payment.id}/status"
    waiting = client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-swap-oob" not in waiting  # nothing to drop while it waits
    _bank_pay(client, payment)
    done = client.get(status_url, headers={"HX-Request": "true"})
    body = done.get_data(as_text=True)
    assert done.status_code == 286 and "Оплачено" in body
    assert '<div id="checkout-pay" hx-swap-oob="true"></div>' in body
    assert "data-bank-link" not in body and "<script" not in body
    # Loaded afresh, the page has no way to pay either, and no second #checkout-pay.
    page = client.get(checkout).get_data(as_text=True)
    assert "data-bank-link" not in page and "<svg" not in page
    assert page.count('id="checkout-pay"') == 1


def test_a_canceled_checkout_drops_the_way_to_pay_too(app, client, shop):
    checkout = _buy_access(client, shop["tid"], method="bank_card").headers["Location"]
    payment = Payment.get()
    bank = payment.confirmation_url.replace("http://localhost", "")
    client.post(bank + "/decline", data={"csrf_token": token(client, bank)})
    status_url = f"/t/{shop['tid']}/billing/payments/{payment.id}/status"
    body = client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Отменен" in body and 'id="checkout-pay" hx-swap-oob="true"' in body
    assert "Перейти к оплате картой" not in client.get(checkout).get_data(as_text=True)
