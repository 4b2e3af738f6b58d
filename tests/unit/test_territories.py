"""Territory rules: codes, requests, admission, members, units and account-number files."""

from __future__ import annotations

import pytest

from domain.accounts import Account
from domain.errors import DomainError, NotFound
from domain.limits import Attempt
from domain.territories import (
    MAX_PER_UNIT,
    CsvError,
    JoinRequest,
    Membership,
    Territory,
    Unit,
    accept_request,
    add_unit,
    attach,
    create_territory,
    delete_unit,
    import_units_csv,
    join_by_account_number,
    parse_code,
    regenerate_code,
    reject_request,
    remove_member,
    rename_unit,
    request_join,
    update_member,
)


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield


_n = iter(range(1000, 9999))


def person(**fields) -> Account:
    return Account.create(phone=f"+7999666{next(_n):04d}", **fields)


@pytest.fixture
def place(ctx):
    manager = person(surname="Управляева")
    territory = create_territory(manager, name="  ЖК   «Парк» ", kind="residential")
    return territory, manager


def test_created_territory_has_a_random_six_digit_code_and_its_creator_manages_it(ctx):
    manager = person()
    made = [create_territory(manager, name=f"Т{i}", kind="other") for i in range(30)]
    codes = [t.code for t in made]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(set(codes)) == 30
    # Not handed out in creation order.
    assert codes != sorted(codes)
    assert made[0].display_code == f"{codes[0][:3]}-{codes[0][3:]}"
    assert Membership.get(territory=made[0]).role == "manager"


def test_name_is_tidied_and_kind_and_zone_are_checked(place, ctx):
    territory, manager = place
    assert territory.name == "ЖК «Парк»"
    assert territory.passes_enabled  # on by default except in kindergartens
    garden = create_territory(manager, name="Сад", kind="kindergarten")
    assert not garden.passes_enabled
    with pytest.raises(DomainError) as bad:
        create_territory(manager, name="X", kind="castle")
    assert bad.value.field == "kind"
    with pytest.raises(DomainError) as bad:
        create_territory(manager, name="X", kind="other", timezone="Mars/Olympus")
    assert bad.value.field == "timezone"
    with pytest.raises(DomainError) as bad:
        create_territory(manager, name="   ", kind="other")
    assert bad.value.field == "name"


def test_regenerated_code_replaces_the_old_one(place):
    territory, _ = place
    old = territory.code
    new = regenerate_code(territory)
    assert new != old and Territory.get_by_id(territory.id).code == new
    applicant = person()
    with pytest.raises(DomainError) as bad:
        request_join(applicant, old, "Дом 1")
    assert bad.value.field == "code"
    assert request_join(applicant, new, "Дом 1").status == "pending"


@pytest.mark.parametrize("typed", ["123-456", "123456", " 123 456 ", "123–456"])
def test_code_is_typed_with_or_without_the_dash(typed, ctx):
    assert parse_code(typed) == "123456"


@pytest.mark.parametrize("typed", ["12345", "1234567", "abc-def", "", "123-45a"])
def test_bad_codes_are_refused_at_the_code_field(typed, ctx):
    with pytest.raises(DomainError) as bad:
        parse_code(typed)
    assert bad.value.field == "code"


def test_join_request_rules(place):
    territory, manager = place
    applicant = person()
    with pytest.raises(DomainError) as bad:
        request_join(applicant, territory.display_code, "  ")
    assert bad.value.field == "unit_label"
    with pytest.raises(DomainError, match="не найдена"):
        request_join(applicant, "000-000" if territory.code != "000000" else "000-001", "Дом")
    request = request_join(applicant, territory.display_code, "Участок 632 и 633 (дом 148)")
    assert request.unit_label == "Участок 632 и 633 (дом 148)"
    with pytest.raises(DomainError, match="уже отправлен"):
        request_join(applicant, territory.code, "Дом")
    with pytest.raises(DomainError, match="уже подключены"):
        request_join(manager, territory.code, "Дом")


def test_accept_with_a_new_unit_and_role(place):
    territory, manager = place
    applicant = person()
    request = request_join(applicant, territory.code, "Дом 5")
    member = accept_request(manager, territory, request.id, role="resident", new_unit="Дом 5")
    assert member.role == "resident" and member.unit.name == "Дом 5"
    request = JoinRequest.get_by_id(request.id)
    assert request.status == "accepted" and request.decided_by_id == manager.id
    with pytest.raises(NotFound):
        accept_request(manager, territory, request.id, role="resident", new_unit="Дом 5")


def test_accept_into_an_existing_unit_and_operators_need_none(place):
    territory, manager = place
    unit = add_unit(territory, "Дом 7")
    a = request_join(person(), territory.code, "Дом 7")
    b = request_join(person(), territory.code, "Пост охраны")
    assert accept_request(manager, territory, a.id, role="resident", unit_id=unit.id).unit == unit
    assert accept_request(manager, territory, b.id, role="operator").unit is None


def test_a_resident_needs_a_unit_and_a_unit_of_another_territory_is_refused(place):
    territory, manager = place
    other = create_territory(person(), name="Чужая", kind="other")
    foreign = add_unit(other, "Чужой дом")
    request = request_join(person(), territory.code, "Дом")
    with pytest.raises(DomainError) as bad:
        accept_request(manager, territory, request.id, role="resident")
    assert bad.value.field == "unit"
    with pytest.raises(DomainError) as bad:
        accept_request(manager, territory, request.id, role="resident", unit_id=foreign.id)
    assert bad.value.field == "unit"
    assert JoinRequest.get_by_id(request.id).status == "pending"
    assert not Membership.select().where(Membership.unit == foreign).exists()


def test_an_eleventh_account_is_refused_by_every_way_in(place):
    territory, manager = place
    unit = add_unit(territory, "Дом 1", "555")
    for _ in range(MAX_PER_UNIT):
        Membership.create(account=person(), territory=territory, unit=unit)
    request = request_join(person(), territory.code, "Дом 1")
    with pytest.raises(DomainError, match="10"):
        accept_request(manager, territory, request.id, role="resident", unit_id=unit.id)
    with pytest.raises(DomainError, match="10"):
        accept_request(manager, territory, request.id, role="resident", new_unit="Дом 1")
    with pytest.raises(DomainError, match="10"):
        join_by_account_number(person(), territory.id, "555")
    with pytest.raises(DomainError, match="10"):
        attach(person(), territory, "resident", "Дом 1")
    assert Membership.select().where(Membership.unit == unit).count() == MAX_PER_UNIT


def test_reject_keeps_the_reason_and_grants_nothing(place):
    territory, manager = place
    applicant = person()
    request = request_join(applicant, territory.code, "Дом")
    reject_request(manager, territory, request.id, "  Не нашли такой дом ")
    request = JoinRequest.get_by_id(request.id)
    assert request.status == "rejected" and request.reason == "Не нашли такой дом"
    assert not Membership.select().where(Membership.account == applicant).exists()
    # They may ask again.
    assert request_join(applicant, territory.code, "Дом 9").status == "pending"


def test_a_request_of_another_territory_cannot_be_decided_here(place):
    territory, manager = place
    other = create_territory(person(), name="Чужая", kind="other")
    request = request_join(person(), other.code, "Дом")
    with pytest.raises(NotFound):
        accept_request(manager, territory, request.id, role="operator")
    with pytest.raises(NotFound):
        reject_request(manager, territory, request.id)


def test_join_by_account_number(place):
    territory, _ = place
    unit = add_unit(territory, "Кв. 5", " 100 200 ")
    assert unit.account_number == "100200"
    resident = person()
    member = join_by_account_number(resident, territory.id, "100200")
    assert member.role == "resident" and member.unit_id == unit.id
    with pytest.raises(DomainError, match="уже подключ"):
        join_by_account_number(resident, territory.id, "100200")


def test_account_numbers_only_where_uploaded_and_wrong_guesses_are_limited(place, ctx):
    territory, manager = place
    bare = create_territory(manager, name="Без счетов", kind="other")
    with pytest.raises(DomainError) as bad:
        join_by_account_number(person(), bare.id, "1")
    assert bad.value.field == "territory"
    add_unit(territory, "Кв. 1", "777")
    guesser = person()
    for guess in range(5):
        with pytest.raises(DomainError, match="не найден"):
            join_by_account_number(guesser, territory.id, str(guess))
    assert Attempt.select().where(Attempt.kind == "account_number").count() == 5
    with pytest.raises(DomainError, match="Слишком много"):
        join_by_account_number(guesser, territory.id, "777")
    assert not Membership.select().where(Membership.account == guesser).exists()


def test_territory_codes_cannot_be_tried_one_after_another(place, ctx):
    territory, _manager = place
    prober = person()
    for guess in range(10):
        with pytest.raises(DomainError, match="не найдена"):
            request_join(prober, f"000-{guess:03d}" if territory.code != f"000{guess:03d}" else "999-999", "Дом")
    with pytest.raises(DomainError, match="Слишком много") as stopped:
        request_join(prober, territory.display_code, "Дом")
    assert stopped.value.field == "code"
    # Someone else is not affected.
    assert request_join(person(), territory.display_code, "Дом").status == "pending"


def test_many_accounts_from_one_address_share_a_limit_of_guesses(place, ctx):
    """Fresh accounts for every ten codes do not help a guesser at one address; another
    address is not affected."""
    from domain import limits

    territory, _manager = place
    wrong = "999-999" if territory.code != "999999" else "999-998"
    for _ in range(limits.TERRITORY_CODE_IP.tries):
        with pytest.raises(DomainError, match="не найдена"):
            request_join(person(), wrong, "Дом", ip="203.0.113.7")
    with pytest.raises(DomainError, match="Слишком много"):
        request_join(person(), territory.display_code, "Дом", ip="203.0.113.7")
    assert request_join(person(), territory.display_code, "Дом",
                        ip="198.51.100.1").status == "pending"
    add_unit(territory, "Кв. 1", "777")
    for _ in range(limits.ACCOUNT_NUMBER_IP.tries):
        with pytest.raises(DomainError, match="не найден"):
            join_by_account_number(person(), territory.id, "1", ip="203.0.113.8")
    with pytest.raises(DomainError, match="Слишком много"):
        join_by_account_number(person(), territory.id, "777", ip="203.0.113.8")
    assert join_by_account_number(person(), territory.id, "777", ip="198.51.100.1").unit


def test_member_role_and_unit_change_and_the_last_manager_stays(place):
    territory, manager = place
    unit = add_unit(territory, "Дом 1")
    boss = Membership.get(account=manager, territory=territory)
    with pytest.raises(DomainError, match="последний"):
        update_member(territory, boss.id, role="resident", unit_id=unit.id)
    with pytest.raises(DomainError, match="последний"):
        remove_member(territory, boss.id)
    deputy = Membership.create(account=person(), territory=territory, role="operator")
    update_member(territory, deputy.id, role="manager", unit_id=None)
    update_member(territory, boss.id, role="resident", unit_id=unit.id)
    assert Membership.get_by_id(boss.id).role == "resident"
    remove_member(territory, boss.id)
    assert not Membership.select().where(Membership.id == boss.id).exists()


def test_moving_a_member_into_a_full_unit_is_refused(place):
    territory, _ = place
    full = add_unit(territory, "Полный")
    for _ in range(MAX_PER_UNIT):
        Membership.create(account=person(), territory=territory, unit=full)
    member = Membership.create(account=person(), territory=territory, role="operator")
    with pytest.raises(DomainError, match="10"):
        update_member(territory, member.id, role="resident", unit_id=full.id)
    # Someone already in the full unit may change role without being counted twice.
    inside = Membership.get(unit=full)
    update_member(territory, inside.id, role="operator", unit_id=full.id)


def test_units_add_rename_delete(place):
    territory, _ = place
    unit = add_unit(territory, "Дом 1", "11")
    add_unit(territory, "Дом 2", "22")
    with pytest.raises(DomainError) as bad:
        add_unit(territory, "Дом 1")
    assert bad.value.field == "name"
    with pytest.raises(DomainError) as bad:
        rename_unit(territory, unit.id, "Дом 1", "22")
    assert bad.value.field == "account_number"
    with pytest.raises(DomainError) as bad:
        add_unit(territory, "Дом 3", "12 34;")
    assert bad.value.field == "account_number"
    rename_unit(territory, unit.id, "Дом 1а", "")
    renamed = Unit.get_by_id(unit.id)
    assert renamed.name == "Дом 1а" and renamed.account_number is None
    Membership.create(account=person(), territory=territory, unit=unit)
    with pytest.raises(DomainError, match="подключены"):
        delete_unit(territory, unit.id)
    empty = add_unit(territory, "Пустой")
    delete_unit(territory, empty.id)
    assert Unit.get_or_none(Unit.id == empty.id) is None


def test_csv_import_creates_and_updates_in_any_common_shape(place):
    territory, _ = place
    add_unit(territory, "Дом 12, кв. 5")
    data = "Объект;Лицевой счёт\nДом 12, кв. 5;100200300\nДом 14;100200301\n\nДом 15;\n"
    assert import_units_csv(territory, data.encode("utf-8-sig")) == (2, 1)
    numbers = dict(Unit.select(Unit.name, Unit.account_number).where(
        Unit.territory == territory).tuples())
    assert numbers["Дом 12, кв. 5"] == "100200300"
    assert numbers["Дом 14"] == "100200301" and numbers["Дом 15"] is None
    # Excel in Russia saves cp1251 with commas; swapping two numbers is allowed.
    swap = "Дом 12, кв. 5,100200301\nДом 14,100200300\n".replace("Дом 12, кв. 5", '"Дом 12, кв. 5"')
    assert import_units_csv(territory, swap.encode("cp1251")) == (0, 2)
    assert Unit.get(name="Дом 14").account_number == "100200300"


def test_a_bad_csv_is_reported_line_by_line_and_nothing_is_imported(place):
    territory, _ = place
    add_unit(territory, "Старый", "999")
    data = "\n".join([
        "Дом 1;111",        # 1 fine
        ";112",             # 2 no unit
        "Дом 3;11 3;x",     # 3 three columns
        "Дом 1;114",        # 4 unit repeated
        "Дом 5;111",        # 5 number repeated
        "Дом 6;№6",         # 6 bad number
        "Дом 7;999",        # 7 number of another unit
    ]).encode()
    with pytest.raises(CsvError) as bad:
        import_units_csv(territory, data)
    lines = bad.value.lines
    assert [line.split(":")[0] for line in lines] == [
        "Строка 2", "Строка 3", "Строка 4", "Строка 5", "Строка 6", "Строка 7"
    ], lines
    assert "Старый" in lines[-1]
    assert Unit.select().where(Unit.territory == territory).count() == 1


def test_excel_s_unicode_text_is_read_and_a_binary_file_is_refused(place):
    """Audit (stop 23): UTF-16 (Excel's «Текст в Юникоде») answered 500, and a binary file,
    read as cp1251, became a unit named with NUL bytes."""
    territory, _ = place
    excel = "Объект\tЛицевой счёт\r\nДом 77\t555666\r\n".encode("utf-16")
    assert import_units_csv(territory, excel) == (1, 0)
    assert Unit.get(name="Дом 77").account_number == "555666"
    # An .xlsx (a zip), a NUL, a UTF-16 file cut short, a line end inside a cell.
    for junk in (b"PK\x03\x04\x14\x00\x06\x00", b"a;1\x00\n", b"\xff\xfe\x00ba",
                 "Дом\r\r78;1".encode("utf-16")):
        with pytest.raises(CsvError) as refused:
            import_units_csv(territory, junk)
        assert refused.value.lines == ["Файл не читается: сохраните его как CSV в UTF-8"]
    assert Unit.select().where(Unit.territory == territory).count() == 1


def test_an_empty_csv_is_an_error(place):
    territory, _ = place
    with pytest.raises(CsvError):
        import_units_csv(territory, b"\n\n")


def test_admin_attach_answers_a_pending_request(place):
    territory, _ = place
    applicant = person()
    request = request_join(applicant, territory.code, "Дом 3")
    member = attach(applicant, territory, "resident", "Дом 3")
    assert member.unit.name == "Дом 3"
    assert JoinRequest.get_by_id(request.id).status == "accepted"
    with pytest.raises(DomainError, match="уже подключён"):
        attach(applicant, territory, "operator")


def test_a_member_taken_out_loses_their_passes_and_taking_them_back_does_not_revive_them(place):
    """Audit (stop 23): removal deleted the membership only. The passes stayed «Действует»
    in «Все пропуска», and when the person was taken back in, into another unit, they opened
    the gate again, showing the guard the old unit."""
    import datetime as dt

    from domain.access import Credential, decide
    from domain.db import utcnow
    from domain.passes import VehiclePass, file_pass

    territory, manager = place
    first, second = add_unit(territory, "Дом 7"), add_unit(territory, "Дом 99")
    resident = person(surname="Жильцов")
    member = attach(resident, territory, "resident", "Дом 7")
    week = utcnow() + dt.timedelta(days=7)
    live = file_pass(member, plate="С222СС77", valid_to=week)
    ended = file_pass(member, plate="Е111ЕЕ77", valid_to=week)
    VehiclePass.update(valid_from=utcnow() - dt.timedelta(days=3),
                       valid_to=utcnow() - dt.timedelta(days=1)).where(
        VehiclePass.id == ended.id).execute()
    plate = Credential("plate", "C222CC77")
    assert decide(territory, plate, 1, utcnow()).granted
    remove_member(territory, member.id, by=manager)
    gone = VehiclePass.get_by_id(live.id)
    assert gone.revoked_at is not None and gone.revoked_by_id == manager.id
    assert VehiclePass.get_by_id(ended.id).revoked_at is None  # an ended pass stays as it was
    back = attach(resident, territory, "resident", "Дом 99")
    assert not decide(territory, plate, 1, utcnow()).granted
    assert back.unit_id == second.id and gone.unit_id == first.id


def test_a_pass_filed_while_its_owner_is_removed_is_revoked_too(app, place):
    """Review (stop 23): removal revoked the passes it saw, then waited for a filing that
    held the member's row and deleted the membership, leaving that pass live. It now waits
    for the member's row as filing does, and revokes what was filed meanwhile."""
    import datetime as dt

    from domain.db import utcnow
    from domain.passes import VehiclePass
    from tests.gate_race import race

    territory, manager = place
    add_unit(territory, "Дом 1")
    member = attach(person(), territory, "resident", "Дом 1")

    def file(other):  # what file_pass writes after locking the member's row
        lock = Membership.select(Membership.id).where(Membership.id == member.id)
        other.execute(lock.for_update() if other.for_update else lock)
        other.execute(VehiclePass.insert(territory=territory.id, account=member.account_id,
                                         unit=member.unit_id, plate="T555TT77",
                                         valid_from=utcnow(),
                                         valid_to=utcnow() + dt.timedelta(days=30)))

    def remove():
        with app.test_request_context():
            return remove_member(territory, member.id, by=manager)

    assert "error" not in race(app, file, remove)
    assert not Membership.select().where(Membership.id == member.id).exists()
    assert not VehiclePass.select().where(VehiclePass.revoked_at.is_null()).exists()


def test_joining_by_account_number_answers_the_person_s_pending_request(place):
    """Audit (stop 23): a person with a request waiting who then joined by account number
    stayed in the managers' queue, and accepting the request failed."""
    territory, manager = place
    add_unit(territory, "Кв. 5", "555")
    newcomer = person()
    waiting = request_join(newcomer, territory.display_code, "Кв. 5")
    join_by_account_number(newcomer, territory.id, "555")
    assert JoinRequest.get_by_id(waiting.id).status == "accepted"
    assert not JoinRequest.select().where((JoinRequest.territory == territory)
                                          & (JoinRequest.status == "pending")).exists()
