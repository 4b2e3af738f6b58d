"""At most 10 accounts per unit, even when two managers accept at the same moment.

Real concurrency: two threads, each with its own connection to the same database (a
SQLite file, and a PostgreSQL database of the tests' throwaway cluster), released together
by a barrier, accept two requests into a unit that has one place left.
"""

from __future__ import annotations

import threading

import pytest

from domain.accounts import Account
from domain.db import db
from domain.errors import DomainError
from domain.territories import (
    MAX_PER_UNIT,
    JoinRequest,
    Membership,
    Unit,
    accept_request,
    create_territory,
)
from tests import database

ROUNDS = 15


def _person(n: int) -> Account:
    # No password: these people never sign in, and argon2 would only slow the test down.
    return Account.create(phone=f"+7999777{n:04d}", surname=f"Житель{n}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_app(request, app, tmp_path):
    """The test app on a SQLite file, or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield app
        return
    from app import create_app
    from domain.db import init_db
    from domain.schema import upgrade

    pg_app = create_app({"TESTING": True, "SECRET_KEY": "x",
                         "DATABASE_URL": database.cluster().fresh_database(),
                         "INSTANCE_PATH": str(tmp_path / "pg-instance")})
    with pg_app.app_context():
        upgrade()
    yield pg_app
    db.close()
    init_db(app.config["DATABASE_URL"])  # hand the shared proxy back to the test's app


@pytest.fixture
def setup(database_app):
    app = database_app
    with app.app_context():
        first = _person(1)
        second = _person(2)
        territory = create_territory(first, name="ЖК", kind="residential")
        Membership.create(account=second, territory=territory, role="manager")
    return app, territory, first, second


def _race(app, territory, managers, requests, unit_id):
    barrier = threading.Barrier(len(managers))
    outcomes: list[str] = []

    def accept(manager, request_id):
        with app.test_request_context():
            db.connect(reuse_if_open=True)
            try:
                barrier.wait()
                accept_request(manager, territory, request_id, role="resident", unit_id=unit_id)
                outcomes.append("accepted")
            except DomainError as error:
                outcomes.append(str(error.message))
            finally:
                db.close()

    pairs = zip(managers, requests, strict=True)
    threads = [threading.Thread(target=accept, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_two_managers_accepting_into_the_last_place_let_in_exactly_one(setup):
    app, territory, first, second = setup
    counter = 100
    for round_ in range(ROUNDS):
        with app.app_context():
            unit = Unit.create(territory=territory, name=f"Дом {round_}")
            for _ in range(MAX_PER_UNIT - 1):
                counter += 1
                Membership.create(account=_person(counter), territory=territory, unit=unit)
            requests = []
            for _ in range(2):
                counter += 1
                requests.append(
                    JoinRequest.create(account=_person(counter), territory=territory,
                                       unit_label=unit.name).id
                )
        outcomes = _race(app, territory, [first, second], requests, unit.id)
        assert sorted(o == "accepted" for o in outcomes) == [False, True], outcomes
        with app.app_context():
            assert Membership.select().where(Membership.unit == unit).count() == MAX_PER_UNIT
            statuses = sorted(JoinRequest.select(JoinRequest.status)
                              .where(JoinRequest.id.in_(requests)).tuples())
            assert statuses == [("accepted",), ("pending",)]


def test_two_managers_accepting_the_same_request_admit_once(setup):
    app, territory, first, second = setup
    with app.app_context():
        unit = Unit.create(territory=territory, name="Дом 1")
        request = JoinRequest.create(account=_person(50), territory=territory, unit_label="1")
    outcomes = _race(app, territory, [first, second], [request.id, request.id], unit.id)
    assert outcomes.count("accepted") == 1
    with app.app_context():
        assert Membership.select().where(Membership.unit == unit).count() == 1


def test_permanent_pass_limit_holds_when_two_are_filed_at_once(database_app):
    from domain.passes import VehiclePass, file_pass
    from domain.territories import Territory

    app = database_app
    with app.app_context():
        owner = _person(20)
        territory = create_territory(owner, name="Посёлок", kind="residential")
        Territory.update(max_permanent_passes=1).where(Territory.id == territory.id).execute()
        member_id = Membership.get(Membership.account == owner).id
    for round_ in range(8):
        with app.app_context():
            VehiclePass.delete().execute()
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def file(n: int, barrier=barrier, outcomes=outcomes, round_=round_) -> None:
            with app.test_request_context():
                db.connect(reuse_if_open=True)
                try:
                    member = Membership.get_by_id(member_id)
                    barrier.wait()
                    file_pass(member, plate=f"А1{round_}{n}АА77", permanent=True)
                    outcomes.append("filed")
                except DomainError as error:
                    outcomes.append(str(error.message))
                finally:
                    db.close()

        threads = [threading.Thread(target=file, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes)[0] == "filed" and outcomes.count("filed") == 1, outcomes
        with app.app_context():
            assert VehiclePass.select().where(VehiclePass.valid_to.is_null()).count() == 1
