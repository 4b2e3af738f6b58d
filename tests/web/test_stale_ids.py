"""A manager's page left open acts on the row it shows or on nothing: the id of a request its
author withdrew, or of a member removed, is never given to someone else's new row (the
audit's case on SQLite, where the next insert used to take the deleted newest row's id)."""

from __future__ import annotations

import pytest

from domain.territories import JoinRequest, Membership, add_unit, create_territory, request_join
from tests.web.territory_kit import person, post, signed_in


@pytest.fixture
def world(app):
    """A territory, its manager, and two people who are not members."""
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК «Парк»", kind="residential")
        unit = add_unit(territory, "Дом 1")
        first, second = person("Первова"), person("Чужов")
    return {"app": app, "t": territory, "unit": unit, "manager": manager,
            "first": first, "second": second}


def test_accepting_a_request_its_author_withdrew_is_404_and_the_newer_one_is_untouched(world):
    app, t = world["app"], world["t"]
    author = signed_in(app, world["first"])
    join = {"code": t.display_code, "unit_label": "Дом 7"}
    assert post(author, "/territories/join", join).status_code == 302
    withdrawn = JoinRequest.get(JoinRequest.account == world["first"]).id
    manager = signed_in(app, world["manager"])
    assert "Дом 7" in manager.get(f"/t/{t.id}/manage/").get_data(as_text=True)

    # The author withdraws it while the manager's page still shows it; a stranger asks next.
    assert post(author, f"/territories/requests/{withdrawn}/cancel").status_code == 302
    stranger = signed_in(app, world["second"])
    assert post(stranger, "/territories/join", {**join, "unit_label": "Дом 8"}).status_code == 302
    newer = JoinRequest.get(JoinRequest.account == world["second"])

    prefix = f"r{withdrawn}-a-"
    accepted = post(manager, f"/t/{t.id}/manage/requests/{withdrawn}/accept", {
        f"{prefix}unit": "0", f"{prefix}new_unit": "Дом 7", f"{prefix}role": "operator"})
    assert accepted.status_code == 404
    rejected = post(manager, f"/t/{t.id}/manage/requests/{withdrawn}/reject",
                    {f"r{withdrawn}-x-reason": "Нет такого дома"})
    assert rejected.status_code == 404
    assert JoinRequest.get_by_id(newer.id).status == "pending"
    assert not Membership.select().where(Membership.account == world["second"]).exists()
    assert newer.id != withdrawn


def test_changing_a_removed_member_is_404_and_the_newcomer_keeps_their_role(world):
    app, t, unit = world["app"], world["t"], world["unit"]
    with app.test_request_context():
        removed = Membership.create(account=world["first"], territory=t, unit=unit).id
    manager = signed_in(app, world["manager"])
    assert "Первова" in manager.get(f"/t/{t.id}/manage/members/{removed}").get_data(as_text=True)

    assert post(manager, f"/t/{t.id}/manage/members/{removed}/remove").status_code == 302
    with app.test_request_context():
        rid = request_join(world["second"], t.code, "Дом 1").id
    assert post(manager, f"/t/{t.id}/manage/requests/{rid}/accept", {
        f"r{rid}-a-unit": str(unit.id), f"r{rid}-a-role": "resident"}).status_code == 302
    newcomer = Membership.get(Membership.account == world["second"])

    # The form of the removed member, still open, is sent: making them a manager.
    changed = post(manager, f"/t/{t.id}/manage/members/{removed}",
                   {"role": "manager", "unit": "0"})
    assert changed.status_code == 404
    assert post(manager, f"/t/{t.id}/manage/members/{removed}/remove").status_code == 404
    kept = Membership.get_by_id(newcomer.id)
    assert (kept.account_id, kept.role, kept.unit_id) == (world["second"].id, "resident", unit.id)
    assert newcomer.id != removed
