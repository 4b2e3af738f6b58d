"""One person binding their card from two tabs at the same instant is told it is theirs,
not someone else's, and the second tab's try is not counted as a guess (concurrency audit,
stop 24). The first tab's transaction is held open on another connection (tests/gate_race)."""

from __future__ import annotations

from domain import limits
from domain.billing import Card, bind_card, parse_card_number
from domain.db import db
from domain.errors import DomainError
from domain.territories import Membership, create_territory
from tests.gate_race import race


def test_one_s_own_card_bound_from_two_tabs_at_once_is_said_to_be_one_s_own(app,
                                                                           make_account):
    with app.app_context():
        manager, parent = make_account(phone="+79997770011"), make_account(phone="+79997770012")
        t = create_territory(manager, name="Сад", kind="kindergarten")
        Membership.create(account=parent, territory=t, role="resident")
    number = parse_card_number("101,33333")

    def first(database) -> None:
        database.execute(Card.insert(territory=t.id, account=parent.id, number=number))

    def second():
        with app.test_request_context():
            try:
                bind_card(parent, t, "101,33333")
            except DomainError as error:
                return error.field, str(error.message)
            finally:
                db.close()

    outcome = race(app, first, second)
    assert outcome.get("result") == (
        "card_number", "Эта карта уже привязана к вашему аккаунту"), outcome
    with app.app_context():
        assert Card.select().where(Card.number == number).count() == 1
        guesses = limits.Attempt.select().where(limits.Attempt.kind == limits.CARD_NUMBER.kind)
        assert guesses.count() == 0
