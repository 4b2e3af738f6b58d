"""Isolation matrix: every territory-scoped route of territories and manage × every role,
and every /t/<tid> route of every area (passes, gates, billing too) closed to outsiders.

A member of one territory gets 404 for anything of another; an operator or resident
cannot manage; a resident never sees another resident's data; a removed, demoted or
rejected member loses access at once. Routes are read from the app's URL map, so a new
route joins the matrix by itself (and fails it if nobody says how to fill its arguments).
"""

from __future__ import annotations

import functools
import re
import tempfile

import pytest

from app import create_app
from domain.territories import (
    JoinRequest,
    Membership,
    Unit,
    add_unit,
    create_territory,
    request_join,
)
from tests.web.territory_kit import person, post, signed_in

AREAS = ("territories.", "manage.")
MANAGE_ROLES = {"manager", "admin"}
EVERY_MEMBER = {"manager", "resident", "operator", "admin"}
ROLES = ["manager", "resident", "operator", "non-member", "other-manager", "admin", "anonymous"]


@functools.cache
def _url_map():
    """The app's routes, read once at collection (an instance folder of its own, gone after)."""
    with tempfile.TemporaryDirectory(prefix="propusk-matrix-") as instance:
        app = create_app({"TESTING": True, "SECRET_KEY": "x",
                          "DATABASE_URL": "sqlite:///:memory:", "INSTANCE_PATH": instance})
    return app.url_map


def _scoped_rules():
    rules = []
    for rule in _url_map().iter_rules():
        if rule.endpoint.startswith(AREAS) and "tid" in rule.arguments:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                rules.append((rule.endpoint, rule.rule, method))
    return sorted(rules)


RULES = _scoped_rules()


def test_the_matrix_covers_the_routes_we_know():
    endpoints = {endpoint for endpoint, _, _ in RULES}
    assert {"territories.home", "manage.requests", "manage.accept", "manage.reject",
            "manage.members", "manage.member", "manage.remove", "manage.units", "manage.unit",
            "manage.delete_unit", "manage.import_units", "manage.settings",
            "manage.regenerate_code"} <= endpoints


@pytest.fixture
def world(app):
    """Territory A with people in every role, territory B with its own, an admin, an outsider."""
    with app.test_request_context():
        people = {r: person(r) for r in ("manager", "resident", "neighbour", "operator",
                                          "non-member", "other-manager", "admin", "applicant")}
        people["admin"].is_admin = True
        people["admin"].save()
        a = create_territory(people["manager"], name="Территория А", kind="residential")
        b = create_territory(people["other-manager"], name="Территория Б", kind="business")
        unit_a = add_unit(a, "Дом А1", "111")
        unit_a2 = add_unit(a, "Дом А2", "112")
        unit_b = add_unit(b, "Дом Б1", "211")
        resident = Membership.create(account=people["resident"], territory=a, unit=unit_a)
        Membership.create(account=people["neighbour"], territory=a, unit=unit_a2)
        Membership.create(account=people["operator"], territory=a, role="operator")
        member_b = Membership.create(account=person("жительБ"), territory=b, unit=unit_b)
        request_a = request_join(people["applicant"], a.code, "Дом А3")
        request_b = request_join(people["applicant"], b.code, "Дом Б3")
    return {
        "app": app, "people": people, "a": a, "b": b,
        "ids_a": {"tid": a.id, "rid": request_a.id, "mid": resident.id, "uid": unit_a.id},
        "ids_b": {"rid": request_b.id, "mid": member_b.id, "uid": unit_b.id},
    }


def _url(rule: str, ids: dict) -> str:
    url = rule
    for name, value in ids.items():
        url = url.replace(f"<int:{name}>", str(value))
    assert "<" not in url, f"the matrix does not know how to fill {url}"
    return url


def _client(world, role):
    if role == "anonymous":
        return world["app"].test_client()
    return signed_in(world["app"], world["people"][role])


def _call(client, method, url):
    if method == "GET":
        return client.get(url)
    if client.get_cookie("propusk") is None:
        # Anonymous: a session with a CSRF token, so we test the route's guard, not CSRF.
        client.get("/login")
        from tests.conftest import csrf_token
        return client.post(url, data={"csrf_token": csrf_token(client, "/login")})
    return post(client, url)


def _allowed(endpoint: str) -> set[str]:
    return EVERY_MEMBER if endpoint == "territories.home" else MANAGE_ROLES


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("endpoint", "rule", "method"), RULES)
def test_matrix(world, endpoint, rule, method, role):
    url = _url(rule, world["ids_a"])
    response = _call(_client(world, role), method, url)
    if role == "anonymous":
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    elif role in _allowed(endpoint):
        assert response.status_code in (200, 302, 422), (role, url, response.status_code)
    else:
        assert response.status_code == 404, (role, url, response.status_code)


OBJECT_RULES = [r for r in RULES if any(f"<int:{k}>" in r[1] for k in ("rid", "mid", "uid"))]


@pytest.mark.parametrize(("endpoint", "rule", "method"), OBJECT_RULES)
def test_objects_of_another_territory_are_404_even_under_ones_own(world, endpoint, rule, method):
    ids = {"tid": world["a"].id, **world["ids_b"]}
    response = _call(signed_in(world["app"], world["people"]["manager"]), method, _url(rule, ids))
    assert response.status_code == 404
    # Nothing of B changed.
    assert JoinRequest.get_by_id(world["ids_b"]["rid"]).status == "pending"
    assert Membership.get_or_none(Membership.id == world["ids_b"]["mid"]) is not None
    assert Unit.get_or_none(Unit.id == world["ids_b"]["uid"]) is not None


def test_a_resident_never_sees_another_residents_data(world):
    client = signed_in(world["app"], world["people"]["resident"])
    html = client.get(f"/t/{world['a'].id}/").get_data(as_text=True)
    assert "Дом А1" in html
    neighbour = world["people"]["neighbour"]
    assert "Дом А2" not in html and neighbour.surname not in html and neighbour.phone not in html
    assert "112" not in html  # the neighbour's account number


def test_a_removed_member_loses_access_at_once(world):
    a = world["a"]
    resident = signed_in(world["app"], world["people"]["resident"])
    assert resident.get(f"/t/{a.id}/").status_code == 200
    assert "Территория А" in resident.get("/").get_data(as_text=True)
    manager = signed_in(world["app"], world["people"]["manager"])
    post(manager, f"/t/{a.id}/manage/members/{world['ids_a']['mid']}/remove")
    assert resident.get(f"/t/{a.id}/").status_code == 404
    # The remembered choice of the device grants nothing either.
    assert "Территория А" not in resident.get("/").get_data(as_text=True)


def test_a_demoted_manager_loses_the_console_at_once(world):
    a, people = world["a"], world["people"]
    with world["app"].test_request_context():
        deputy = Membership.create(account=person("Заместитель"), territory=a, role="manager")
    deputy_client = signed_in(world["app"], deputy.account)
    assert deputy_client.get(f"/t/{a.id}/manage/").status_code == 200
    manager = signed_in(world["app"], people["manager"])
    post(manager, f"/t/{a.id}/manage/members/{deputy.id}", {"role": "operator", "unit": "0"})
    assert deputy_client.get(f"/t/{a.id}/manage/").status_code == 404
    assert deputy_client.get(f"/t/{a.id}/").status_code == 200


def test_a_rejected_applicant_gets_nothing(world):
    a = world["a"]
    applicant = signed_in(world["app"], world["people"]["applicant"])
    manager = signed_in(world["app"], world["people"]["manager"])
    post(manager, f"/t/{a.id}/manage/requests/{world['ids_a']['rid']}/reject")
    assert applicant.get(f"/t/{a.id}/").status_code == 404
    assert applicant.get(f"/t/{a.id}/manage/").status_code == 404


def _every_scoped_rule():
    rules = []
    for rule in _url_map().iter_rules():
        if "tid" in rule.arguments:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                rules.append((rule.endpoint, rule.rule, method))
    return sorted(rules)


EVERY_RULE = _every_scoped_rule()


def test_every_area_is_in_the_outsider_sweep():
    areas = {endpoint.split(".")[0] for endpoint, _, _ in EVERY_RULE}
    assert {"territories", "manage", "passes", "gates", "billing"} <= areas


@pytest.mark.parametrize(("endpoint", "rule", "method"), EVERY_RULE)
def test_outsiders_get_404_from_every_territory_route_of_every_area(world, endpoint, rule, method):
    """Whatever the area, a member of territory B (even its manager) learns nothing of A."""
    url = rule.replace("<int:tid>", str(world["a"].id))
    url = re.sub(r"<(?:int:)?\w+>", "1", url)
    for role in ("other-manager", "non-member"):
        response = _call(_client(world, role), method, url)
        assert response.status_code == 404, (role, method, url, response.status_code)


def test_the_person_and_their_membership_come_in_one_query(world, caplog):
    """Every territory page needs both: one round trip to the database, not two. The answer
    is the same as two lookups give: a member's role counts, a non-member gets 404, and an
    admin who is not a member still acts as a manager."""
    import logging

    a = world["a"]

    def lookups(role: str, path: str) -> tuple[int, list[str]]:
        client = _client(world, role)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            status = client.get(path, headers={"HX-Request": "true"}).status_code
        asked = [r.msg[0] for r in caplog.records if r.name == "peewee"]
        return status, [sql for sql in asked if re.search(r'FROM "(device|membership)"', sql)]

    # The check's verdict alone (htmx): the person, then the plate.
    status, asked = lookups("operator", f"/t/{a.id}/check?plate=A777AA77")
    assert status == 200
    assert len(asked) == 1 and 'JOIN "membership"' in asked[0], asked
    assert lookups("resident", f"/t/{a.id}/manage/")[0] == 404
    assert lookups("non-member", f"/t/{a.id}/")[0] == 404
    assert lookups("admin", f"/t/{a.id}/manage/")[0] == 200
