"""Passes on the web: filing, lists, revoking, the operator's check, «Открыть», feed, log, CSV."""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from blueprints.passes import routes as passes_routes
from domain import gates
from domain.access import Credential, decide
from domain.accounts import Account
from domain.db import utcnow
from domain.gates import Gate, GateEvent, record_event
from domain.passes import VehiclePass
from domain.territories import Membership, Territory, Unit, create_territory
from tests.conftest import csrf_token
from tests.web.test_form_mistakes import field_error, input_value


@pytest.fixture
def world(app, make_account):
    """Territory «ЖК» with a manager, two residents in units and an operator; another territory."""
    with app.app_context():
        manager = make_account(phone="+79990000102", surname="Управляева", name="Мария")
        t = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=t, name="Дом 12, кв. 5")
        resident = make_account(phone="+79990000103", surname="Федоров", name="Роман")
        neighbour = make_account(phone="+79990000104", surname="Соседов", name="Сергей")
        operator = make_account(phone="+79990000105", surname="Охранов", name="Олег")
        Membership.create(account=resident, territory=t, role="resident", unit=unit)
        Membership.create(account=neighbour, territory=t, role="resident")
        Membership.create(account=operator, territory=t, role="operator")
        stranger = make_account(phone="+79990000106")
        other = create_territory(stranger, name="Другая", kind="residential")
        gate = Gate.create(territory=t, name="Въезд", host="127.0.0.1", port=5020)
        other_gate = Gate.create(territory=other, name="Чужие", host="127.0.0.1", port=5021)
        return SimpleNamespace(
            t=t.id, other=other.id, unit=unit.id, manager=manager.id, resident=resident.id,
            neighbour=neighbour.id, operator=operator.id, stranger=stranger.id, gate=gate.id,
            other_gate=other_gate.id,
        )


def _pass(owner, tid, plate, start=-1, end=24, revoked=False):
    now = utcnow()
    return VehiclePass.create(
        territory=tid, account=owner, plate=plate,
        valid_from=now + dt.timedelta(hours=start),
        valid_to=None if end is None else now + dt.timedelta(hours=end),
        revoked_at=now if revoked else None,
    ).id


def _file(client, tid, **data):
    token = csrf_token(client, f"/t/{tid}/passes/new")
    data.setdefault("period", "day")
    return client.post(f"/t/{tid}/passes/new", data={"csrf_token": token, **data})


def _post(client, path, referer=None):
    token = csrf_token(client, "/")
    headers = {"Referer": referer} if referer else {}
    return client.post(path, data={"csrf_token": token}, headers=headers)


# --- Filing ---------------------------------------------------------------------------


def test_resident_files_a_pass_that_opens_at_once(app, client, auth, world):
    auth.login("+79990000103")
    response = _file(client, world.t, plate="а 777 аа 77")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/t/{world.t}/passes")
    with app.app_context():
        filed = VehiclePass.get()
        assert (filed.plate, filed.account_id, filed.unit_id) == ("A777AA77", world.resident,
                                                                 world.unit)
        assert dt.timedelta(hours=23) < filed.valid_to - filed.valid_from <= dt.timedelta(days=1)
        assert decide(world.t, Credential("plate", "A777AA77"), 1, utcnow()).granted
    html = client.get(f"/t/{world.t}/passes").get_data(as_text=True)
    assert "Заявка добавлена: А 777 АА 77" in html
    assert "А 777 АА 77" in html


def test_the_form_speaks_the_seed_words(client, auth, world):
    auth.login("+79990000103")
    html = client.get(f"/t/{world.t}/passes/new").get_data(as_text=True)
    for words in ("Добавить новую заявку", "Номер автомобиля", "Иностранный номер", "Сегодня",
                  "Сутки", "Неделя", "Месяц", "Указать даты", "Постоянный", ">Добавить<"):
        assert words in html
    assert 'type="datetime-local"' in html
    # The territory's zone as people know it, in their language.
    assert "Время территории: UTC+03 Москва" in html
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    html = client.get(f"/t/{world.t}/passes/new").get_data(as_text=True)
    assert "Territory time: UTC+03 Moscow" in html


def test_a_wrong_plate_is_refused_at_the_field_keeping_what_was_typed(app, client, auth, world):
    auth.login("+79990000103")
    response = _file(client, world.t, plate="Ж 123 ЖЖ 77")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Буквы «Ж» нет на российских номерах" in html
    assert 'value="Ж 123 ЖЖ 77"' in html
    with app.app_context():
        assert VehiclePass.select().count() == 0


def test_a_foreign_plate_needs_the_box(app, client, auth, world):
    auth.login("+79990000103")
    assert _file(client, world.t, plate="WOB ZK 295").status_code == 422
    assert _file(client, world.t, plate="WOB ZK 295", foreign="y").status_code == 302
    with app.app_context():
        filed = VehiclePass.get()
        assert (filed.plate, filed.foreign) == ("WOBZK295", True)


def test_dates_are_read_in_the_territory_time_zone(app, client, auth, world):
    auth.login("+79990000103")
    start = (utcnow() + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=3)))
    end = start + dt.timedelta(days=1)
    fmt = "%Y-%m-%dT%H:%M"
    response = _file(client, world.t, plate="в123ор77", period="dates",
                     valid_from=start.strftime(fmt), valid_to=end.strftime(fmt))
    assert response.status_code == 302
    with app.app_context():
        filed = VehiclePass.get()
        assert filed.valid_from == start.replace(second=0, microsecond=0)
        assert filed.valid_to == end.replace(second=0, microsecond=0)
        assert filed.status() == "upcoming"


@pytest.mark.parametrize(
    ("start_days", "end_days", "message"),
    [(2, 1, "Окончание должно быть позже начала"), (-3, -2, "Этот период уже закончился"),
     (0, 400, "не больше года"), (0, None, "Укажите окончание периода"),
     (400, 401, "Начало — не позже чем через год")],
)
def test_bad_dates_say_why(app, client, auth, world, start_days, end_days, message):
    auth.login("+79990000103")
    now = utcnow().astimezone(dt.timezone(dt.timedelta(hours=3)))
    fmt = "%Y-%m-%dT%H:%M"
    data = {"valid_from": (now + dt.timedelta(days=start_days)).strftime(fmt)}
    if end_days is not None:
        data["valid_to"] = (now + dt.timedelta(days=end_days)).strftime(fmt)
    response = _file(client, world.t, plate="в123ор77", period="dates", **data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert VehiclePass.select().count() == 0


def test_quick_today_ends_at_midnight_in_the_territory(app, client, auth, world):
    auth.login("+79990000103")
    assert _file(client, world.t, plate="в123ор77", period="today").status_code == 302
    with app.app_context():
        end = VehiclePass.get().valid_to.astimezone(dt.timezone(dt.timedelta(hours=3)))
    assert (end.hour, end.minute) == (0, 0)


def test_permanent_passes_up_to_the_territory_limit(app, client, auth, world):
    auth.login("+79990000103")
    assert _file(client, world.t, plate="а111аа77", period="permanent").status_code == 302
    assert _file(client, world.t, plate="а222аа77", period="permanent").status_code == 302
    third = _file(client, world.t, plate="а333аа77", period="permanent")
    assert third.status_code == 422
    assert "Постоянных пропусков может быть не больше 2" in third.get_data(as_text=True)
    with app.app_context():
        assert VehiclePass.select().where(VehiclePass.valid_to.is_null()).count() == 2
    # revoking one frees a place
    first = VehiclePass.select().order_by(VehiclePass.id).first().id
    _post(client, f"/t/{world.t}/passes/{first}/revoke")
    assert _file(client, world.t, plate="а333аа77", period="permanent").status_code == 302


def test_the_manager_sets_the_permanent_limit(app, client, auth, world):
    auth.login("+79990000102")
    token = csrf_token(client, f"/t/{world.t}/passes/all")
    response = client.post(f"/t/{world.t}/passes/limit", data={"csrf_token": token, "limit": "0"})
    assert response.status_code == 302
    with app.app_context():
        assert Territory.get_by_id(world.t).max_permanent_passes == 0
    html = client.get(f"/t/{world.t}/passes/new").get_data(as_text=True)
    assert "Постоянный" not in html
    assert _file(client, world.t, plate="а111аа77", period="permanent").status_code == 422
    # A number out of range is said at the field, in the page, with what was typed.
    for typed in ("25", "-1", "два"):
        wrong = client.post(f"/t/{world.t}/passes/limit",
                            data={"csrf_token": token, "limit": typed})
        html = wrong.get_data(as_text=True)
        assert wrong.status_code == 422 and "<html" in html, typed
        assert field_error(html, "limit") in ("От 0 до 20", "Введите число"), typed
        assert input_value(html, "limit") == typed
        assert wrong.headers["HX-Replace-Url"] == f"/t/{world.t}/passes/all"
    with app.app_context():
        assert Territory.get_by_id(world.t).max_permanent_passes == 0


def test_operators_do_not_file_and_passes_off_hides_the_form(app, client, auth, world):
    auth.login("+79990000105")
    assert client.get(f"/t/{world.t}/passes/new").status_code == 404
    auth.logout()
    with app.app_context():
        Territory.update(passes_enabled=False).where(Territory.id == world.t).execute()
    auth.login("+79990000103")
    assert client.get(f"/t/{world.t}/passes/new").status_code == 404


def test_with_passes_off_the_guard_still_reaches_the_log_and_the_gates(app, client, auth, world):
    """Audit (stop 23): a territory without passes (a kindergarten lets in by cards) left
    its guard's home page empty: no «Журнал», no page to open the gates by hand."""
    with app.app_context():
        Territory.update(passes_enabled=False).where(Territory.id == world.t).execute()
    auth.login("+79990000105")
    home = client.get(f"/t/{world.t}/").get_data(as_text=True)
    assert f'href="/t/{world.t}/events"' in home and f'href="/t/{world.t}/check"' in home
    assert "Проверить номер" not in home
    gates = client.get(f"/t/{world.t}/check").get_data(as_text=True)
    assert "<h1>Ворота</h1>" in gates and 'id="plate"' not in gates and 'id="feed"' in gates
    auth.logout()
    auth.login("+79990000103")  # a resident: nothing of passes, and no empty menu
    assert 'id="passes-actions"' not in client.get(f"/t/{world.t}/").get_data(as_text=True)


# --- Lists, revoking, isolation -------------------------------------------------------


def test_own_list_groups_active_upcoming_ended_and_hides_others(app, client, auth, world):
    with app.app_context():
        _pass(world.resident, world.t, "A111AA77")
        _pass(world.resident, world.t, "B222BB77", start=5, end=30)
        _pass(world.resident, world.t, "C333CC77", start=-30, end=-5)
        _pass(world.resident, world.t, "E444EE77", revoked=True)
        _pass(world.neighbour, world.t, "K555KK77")
    auth.login("+79990000103")
    html = client.get(f"/t/{world.t}/passes").get_data(as_text=True)
    sections = {
        key: re.search(rf'id="passes-{key}".*?</section>', html, re.S).group(0)
        for key in ("active", "upcoming", "ended")
    }
    assert "А 111 АА 77" in sections["active"]
    assert "В 222 ВВ 77" in sections["upcoming"]
    assert "С 333 СС 77" in sections["ended"] and "Е 444 ЕЕ 77" in sections["ended"]
    assert "Отозван" in sections["ended"]
    assert "К 555 КК 77" not in html


def test_revoke_own_pass_closes_the_gate_at_once(app, client, auth, world):
    with app.app_context():
        pid = _pass(world.resident, world.t, "A111AA77")
    auth.login("+79990000103")
    response = _post(client, f"/t/{world.t}/passes/{pid}/revoke")
    assert response.status_code == 302
    with app.app_context():
        assert VehiclePass.get_by_id(pid).revoked_by_id == world.resident
        decision = decide(world.t, Credential("plate", "A111AA77"), 1, utcnow())
    assert (decision.code, decision.reason) == (2, "revoked")


def test_a_resident_cannot_revoke_or_see_someone_elses_pass(app, client, auth, world):
    with app.app_context():
        theirs = _pass(world.neighbour, world.t, "K555KK77")
        foreign = _pass(world.stranger, world.other, "M666MM77")
    auth.login("+79990000103")
    assert _post(client, f"/t/{world.t}/passes/{theirs}/revoke").status_code == 404
    # another territory's pass through my territory's URL, and through its own: 404 both
    assert _post(client, f"/t/{world.t}/passes/{foreign}/revoke").status_code == 404
    assert _post(client, f"/t/{world.other}/passes/{foreign}/revoke").status_code == 404
    assert client.get(f"/t/{world.other}/passes").status_code == 404
    assert client.get(f"/t/{world.t}/passes/all").status_code == 404
    with app.app_context():
        assert VehiclePass.select().where(VehiclePass.revoked_at.is_null(False)).count() == 0


def test_the_manager_revokes_any_pass_of_the_territory_only(app, client, auth, world):
    with app.app_context():
        theirs = _pass(world.resident, world.t, "A111AA77")
        foreign = _pass(world.stranger, world.other, "M666MM77")
    auth.login("+79990000102")
    assert _post(client, f"/t/{world.t}/passes/{foreign}/revoke").status_code == 404
    assert _post(client, f"/t/{world.t}/passes/{theirs}/revoke").status_code == 302
    with app.app_context():
        assert VehiclePass.get_by_id(theirs).revoked_by_id == world.manager
        assert VehiclePass.get_by_id(foreign).revoked_at is None


def test_manager_list_searches_filters_and_pages(app, client, auth, world):
    with app.app_context():
        for n in range(1, 31):
            _pass(world.neighbour, world.t, f"A{n:03d}AA77")
        _pass(world.resident, world.t, "X999XX99", start=-30, end=-5)
        _pass(world.stranger, world.other, "M666MM77")
    auth.login("+79990000102")
    first = client.get(f"/t/{world.t}/passes/all").get_data(as_text=True)
    assert first.count('<tr id="pass-') == 25
    assert "М 666 ММ 77" not in first
    second = client.get(f"/t/{world.t}/passes/all?page=2").get_data(as_text=True)
    assert second.count('<tr id="pass-') == 6
    # search by a Cyrillic fragment of a plate, as an htmx partial
    found = client.get(f"/t/{world.t}/passes/all?q=х999", headers={"HX-Request": "true"})
    body = found.get_data(as_text=True)
    assert "<html" not in body and "HX-Request" in found.headers["Vary"]
    assert body.count('<tr id="pass-') == 1 and "Х 999 ХХ 99" in body
    assert "Федоров" in body and 'href="tel:+79990000103"' in body
    by_name = client.get(f"/t/{world.t}/passes/all?q=Соседов").get_data(as_text=True)
    assert by_name.count('<tr id="pass-') == 25
    # Names in any case (SQLite's own lower() knows no Cyrillic), a phone as the list shows it
    for typed, rows in (("соседов", 25), ("СОСЕДОВ", 25), ("федоров", 1),
                        ("+7 (999) 000-01-03", 1), ("8 999 000 01 03", 1)):
        found = client.get(f"/t/{world.t}/passes/all", query_string={"q": typed})
        assert found.get_data(as_text=True).count('<tr id="pass-') == rows, typed
    expired = client.get(f"/t/{world.t}/passes/all?status=expired").get_data(as_text=True)
    assert expired.count('<tr id="pass-') == 1
    assert "page=2" in first and "status" not in first.split("page=2")[0][-60:]


PAGER_RE = re.compile(r'<a href="([^"]+)">(?:← )?(Назад|Дальше|Новее|Старее)')


def _pager(body: str) -> dict[str, str]:
    """The pager's links by their word, with &amp; undone."""
    return {word: href.replace("&amp;", "&") for href, word in PAGER_RE.findall(body)}


def _ids(body: str, prefix: str) -> list[int]:
    return [int(x) for x in re.findall(rf'id="{prefix}-(\d+)"', body)]


def test_manager_list_pages_by_keyset_forth_and_back(app, client, auth, world):
    """Next/previous links carry the pivot row, not an offset; ties in created_at keep order."""
    with app.app_context():
        same = utcnow()
        ids = [
            VehiclePass.create(territory=world.t, account=world.neighbour, plate=f"A{n:03d}AA77",
                               valid_from=same, valid_to=same + dt.timedelta(days=1),
                               created_at=same if n < 40 else same + dt.timedelta(minutes=n)).id
            for n in range(60)
        ]
    auth.login("+79990000102")
    expected = sorted(ids[40:], reverse=True) + sorted(ids[:40], reverse=True)
    seen, links, pages = [], [], []
    body = client.get(f"/t/{world.t}/passes/all?q=Соседов").get_data(as_text=True)
    while True:
        pages.append(body)
        seen += _ids(body, "pass")
        link = _pager(body).get("Дальше")
        if not link:
            break
        assert "after=" in link and "q=" in link
        links.append(link)
        body = client.get(link).get_data(as_text=True)
    assert seen == expected and len(pages) == 3
    assert "Страница 3" in pages[2] and "Дальше" not in pages[2]
    back = client.get(_pager(pages[2])["Назад"]).get_data(as_text=True)
    assert _ids(back, "pass") == expected[25:50] and "Страница 2" in back
    first = client.get(_pager(back)["Назад"]).get_data(as_text=True)
    assert _ids(first, "pass") == expected[:25] and "Назад" not in first


def test_log_pages_by_keyset(app, client, auth, world):
    with app.app_context():
        ids = [record_event(world.t, code=1, reason="x", kind="plate",
                            credential=f"A{n:03d}AA77", gate=world.gate).id for n in range(120)]
    auth.login("+79990000102")
    page1 = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    older = _pager(page1)["Старее"]
    assert f"older_than={ids[70]}" in older
    page2 = client.get(older).get_data(as_text=True)
    assert _ids(page2, "event") == ids[20:70][::-1]
    page3 = client.get(_pager(page2)["Старее"]).get_data(as_text=True)
    assert _ids(page3, "event") == ids[:20][::-1] and "Старее" not in _pager(page3)
    back = client.get(_pager(page3)["Новее"]).get_data(as_text=True)
    assert _ids(back, "event") == ids[20:70][::-1]


# --- The operator's check -------------------------------------------------------------


def test_check_answers_with_owner_unit_phone_and_period(app, client, auth, world):
    with app.app_context():
        _pass(world.resident, world.t, "A777AA77")
        unit = Unit.get_by_id(world.unit)
        VehiclePass.update(unit=unit).execute()
    auth.login("+79990000105")
    html = client.get(f"/t/{world.t}/check?plate=а 777 аа 77").get_data(as_text=True)
    verdict = re.search(r'<article class="verdict.*?</article>', html, re.S).group(0)
    assert "Въезд разрешён" in verdict and "verdict-ok" in verdict
    assert "Пропуск действует" in verdict
    assert "Федоров Роман" in verdict
    assert "Дом 12, кв. 5" in verdict
    assert 'href="tel:+79990000103"' in verdict and "+7 (999) 000-01-03" in verdict
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d — \d\d\.\d\d\.\d{4} \d\d:\d\d", verdict)
    with app.app_context():
        assert GateEvent.select().count() == 0  # a check is not a passage


def test_an_unknown_plate_is_shown_as_people_read_it(app, client, auth, world):
    auth.login("+79990000105")
    html = client.get(f"/t/{world.t}/check?plate=в 123 вв 77").get_data(as_text=True)
    assert "Номер не найден" in html
    assert '<p class="verdict-plate plate">В 123 ВВ 77</p>' in html


@pytest.mark.parametrize(
    ("setup", "plate", "reason"),
    [("expired", "B222BB77", "Срок пропуска истёк"),
     ("revoked", "B222BB77", "Пропуск отозван"),
     (None, "T000TT00", "Номер не найден")],
)
def test_check_denials(app, client, auth, world, setup, plate, reason):
    with app.app_context():
        if setup == "expired":
            _pass(world.resident, world.t, plate, start=-30, end=-5)
        if setup == "revoked":
            _pass(world.resident, world.t, plate, revoked=True)
    auth.login("+79990000105")
    html = client.get(f"/t/{world.t}/check?plate={plate}").get_data(as_text=True)
    assert "Въезд запрещён" in html and reason in html


def test_suggestions_while_typing(app, client, auth, world):
    with app.app_context():
        _pass(world.resident, world.t, "A777AA77")
        _pass(world.resident, world.t, "A778AA77", revoked=True)
        _pass(world.resident, world.t, "A779AA77", start=-30, end=-5)
        _pass(world.stranger, world.other, "A776AA77")
    auth.login("+79990000105")
    page = client.get(f"/t/{world.t}/check").get_data(as_text=True)
    assert 'hx-trigger="input changed delay:300ms"' in page
    response = client.get(f"/t/{world.t}/check/suggest?plate=а77", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="suggestions"' in body
    assert "А 777 АА 77" in body
    assert "778" not in body and "779" not in body and "776" not in body


def test_check_form_swaps_in_only_the_verdict(app, client, auth, world):
    with app.app_context():
        _pass(world.resident, world.t, "A777AA77")
    auth.login("+79990000105")
    page = client.get(f"/t/{world.t}/check").get_data(as_text=True)
    # The swap target: a live region that stays, its inside replaced (so each is read out).
    assert 'hx-target="#verdict" hx-swap="innerHTML"' in page
    assert '<div id="verdict" aria-live="polite" data-answer>' in page
    response = client.get(f"/t/{world.t}/check?plate=а777аа77", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith("<article") and 'id="verdict"' not in body
    assert "Въезд разрешён" in body and "Федоров" in body
    assert 'id="feed"' not in body and "gates" not in body
    unknown = client.get(f"/t/{world.t}/check?plate=B000BB00",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Въезд запрещён" in unknown and "<html" not in unknown


NOT_A_PLATE = "Это не номер автомобиля: в номере только буквы и цифры (например: А777АА999)"


def _plate_field(body: str) -> str:
    return re.search(r'<input[^>]* id="plate"[^>]*>', body).group(0)


@pytest.mark.parametrize("typed", ["$$$", "---", "а 777 аа 77!", "🚗"])
def test_what_no_plate_is_made_of_is_said_at_the_field_and_decides_nothing(
        app, client, auth, world, monkeypatch, typed):
    def decided(*args):
        raise AssertionError("the check decided on something that is no plate")

    monkeypatch.setattr(passes_routes, "check_plate", decided)
    auth.login("+79990000105")
    url = f"/t/{world.t}/check?{urlencode({'plate': typed})}"
    page = client.get(url).get_data(as_text=True)
    field = _plate_field(page)
    assert 'aria-invalid="true"' in field and 'aria-describedby="plate-error"' in field
    assert f'value="{html.escape(typed)}"' in field
    assert f'<p class="error" id="plate-error" role="alert">{NOT_A_PLATE}</p>' in page
    assert "Номер не найден" not in page and "<article" not in page
    # The check form's own request: an empty verdict (the last answer goes) and the form, out
    # of band, with the mistake at the field and the header that takes it away next time.
    response = client.get(url, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body and "<article" not in body
    form = re.search(r"<form[^>]*>", body).group(0)
    assert 'id="check-form"' in form and 'hx-swap-oob="true"' in form
    assert """hx-headers='{"X-Plate-Mistake": "shown"}'""" in form
    assert 'aria-invalid="true"' in _plate_field(body)
    assert f'value="{html.escape(typed)}"' in _plate_field(body)
    assert f'<p class="error" id="plate-error" role="alert">{NOT_A_PLATE}</p>' in body


@pytest.mark.parametrize("query", ["", "?plate=", "?plate=%20%20"])
def test_an_empty_plate_is_no_mistake_and_no_answer(client, auth, world, query):
    auth.login("+79990000105")
    page = client.get(f"/t/{world.t}/check{query}").get_data(as_text=True)
    assert "aria-invalid" not in _plate_field(page) and "plate-error" not in page
    assert "<article" not in page and "autofocus" in _plate_field(page)
    body = client.get(f"/t/{world.t}/check{query}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert body.strip() == ""


def test_the_next_plate_takes_the_field_s_mistake_away(app, client, auth, world):
    with app.app_context():
        _pass(world.resident, world.t, "A777AA77")
    auth.login("+79990000105")
    body = client.get(f"/t/{world.t}/check?plate=а777аа77",
                      headers={"HX-Request": "true", "X-Plate-Mistake": "shown"}
                      ).get_data(as_text=True)
    assert body.lstrip().startswith("<article") and "Въезд разрешён" in body
    form = re.search(r"<form[^>]*>", body).group(0)
    assert 'hx-swap-oob="true"' in form and "X-Plate-Mistake" not in form
    assert "aria-invalid" not in _plate_field(body) and "plate-error" not in body
    assert 'value="а777аа77"' in _plate_field(body)


def test_no_plate_is_said_in_english_too(client, auth, world):
    auth.login("+79990000105")
    _post(client, "/lang/en")
    page = client.get(f"/t/{world.t}/check?plate=$$$").get_data(as_text=True)
    assert ("This is not a plate: a plate has only letters and digits (for example: A777AA999)"
            in page)


def test_residents_do_not_check_or_watch(client, auth, world):
    auth.login("+79990000103")
    for path in ("check", "check/suggest", "events", "events/newer", "events.csv"):
        assert client.get(f"/t/{world.t}/{path}").status_code == 404, path


# --- «Открыть», feed, log -------------------------------------------------------------


def test_operator_open_is_recorded_with_their_name(app, client, auth, world):
    with app.app_context():
        gates.save_status(world.gate, status="online", last_seen_at=utcnow(), heartbeat=1,
                          gate_state=1, fault_code=0, last_error=None)
    auth.login("+79990000105")
    response = _post(client, f"/t/{world.t}/gates/{world.gate}/open")
    assert response.status_code == 302
    with app.app_context():
        command = gates.GateCommand.get()
        assert (command.gate_id, command.account_id, command.reason, command.status) == (
            world.gate, world.operator, "operator", "pending")
        # The bridge sends it and reports back; the press becomes an event with their name.
        assert gates.finish_command(command.id, True, "Открыто")
        event = GateEvent.get()
        assert (event.territory_id, event.gate_id, event.actor_id, event.kind, event.code,
                event.reason) == (world.t, world.gate, world.operator, "manual",
                                  1, "operator_open")
    html = client.get(f"/t/{world.t}/check").get_data(as_text=True)
    assert "Команда отправлена" in html
    assert "открыл(а) Охранов Олег" in html


def test_operator_open_of_an_offline_gate_fails_at_once(app, client, auth, world):
    auth.login("+79990000105")
    response = _post(client, f"/t/{world.t}/gates/{world.gate}/open")
    assert response.status_code == 302
    html = client.get(f"/t/{world.t}/check").get_data(as_text=True)
    assert "Ворота не в сети — открыть сейчас нельзя" in html
    with app.app_context():
        assert gates.GateCommand.get().status == "failed"
        event = GateEvent.get()
        assert (event.code, event.reason, event.actor_id) == (6, "gate_offline", world.operator)


def test_open_is_refused_for_other_gates_and_residents(app, client, auth, world):
    auth.login("+79990000105")
    assert _post(client, f"/t/{world.t}/gates/{world.other_gate}/open").status_code == 404
    assert _post(client, f"/t/{world.other}/gates/{world.other_gate}/open").status_code == 404
    auth.logout()
    auth.login("+79990000103")
    assert _post(client, f"/t/{world.t}/gates/{world.gate}/open").status_code == 404
    with app.app_context():
        assert GateEvent.select().count() == 0


def test_feed_poll_returns_only_newer_events_of_this_territory(app, client, auth, world):
    with app.app_context():
        first = record_event(world.t, code=1, reason="pass_valid", kind="plate",
                             credential="A777AA77", gate=world.gate, account=world.resident,
                             source="bridge").id
        record_event(world.other, code=1, reason="exit_free", kind="plate", credential="Y1")
    auth.login("+79990000105")
    page = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    assert f'after={first}' in page and "every 1s" in page
    assert client.get(f"/t/{world.t}/events/newer?after={first}",
                      headers={"HX-Request": "true"}).status_code == 204
    with app.app_context():
        second = record_event(world.t, code=3, reason="pass_expired", kind="plate",
                              credential="B222BB77", gate=world.gate, source="bridge").id
    response = client.get(f"/t/{world.t}/events/newer?after={first}",
                          headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.index('id="feed-poll"') < body.index(f'id="event-{second}"')
    assert f"after={second}" in body
    assert "В 222 ВВ 77" in body and "Срок пропуска истёк" in body
    assert "Y1" not in body and f'id="event-{first}"' not in body


def test_a_feed_poll_with_nothing_new_is_one_lookup(app, client, auth, world, caplog):
    """Every open feed polls every second; when nothing is new (another territory's event
    does not count) the answer comes before the filter form's gates and the events' people,
    and new events that the filter hides move the poller past them."""
    with app.app_context():
        first = record_event(world.t, code=1, reason="pass_valid", kind="plate",
                             credential="A777AA77", gate=world.gate).id
        record_event(world.other, code=1, reason="exit_free", kind="plate", credential="Y1")
    auth.login("+79990000105")
    # A log filtered down to nothing polls from the territory's newest event, not from 0.
    empty = client.get(f"/t/{world.t}/events?decision=denied").get_data(as_text=True)
    assert 'class="event ' not in empty and f"after={first}&amp;decision=denied" in empty
    poll = f"/t/{world.t}/events/newer?after={first}&gate={world.gate}&decision=granted"
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert client.get(poll, headers={"HX-Request": "true"}).status_code == 204
    asked = [record.msg[0] for record in caplog.records if record.name == "peewee"]
    lookups = [sql for sql in asked if "gate_event" in sql]
    assert len(lookups) == 1 and "JOIN" not in lookups[0].upper(), asked
    assert not [sql for sql in asked if re.search(r'FROM "gate"(?!_)', sql)], asked
    with app.app_context():
        hidden = record_event(world.t, code=3, reason="pass_expired", kind="plate",
                              credential="B1", gate=world.gate).id
    # Something new, but not what the filter shows: no event to add, and the poller moves
    # past it, so the next polls are the one lookup again (with the filter kept).
    moved = client.get(poll, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="feed-poll"' in moved and 'class="event' not in moved
    assert f"after={hidden}" in moved and "decision=granted" in moved
    poll = poll.replace(f"after={first}", f"after={hidden}")
    assert client.get(poll, headers={"HX-Request": "true"}).status_code == 204
    with app.app_context():
        third = record_event(world.t, code=1, reason="pass_valid", kind="plate",
                             credential="C1", gate=world.gate).id
    response = client.get(poll, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="event-{third}"' in body
    assert f"after={third}" in body


def test_log_filters_and_pages(app, client, auth, world):
    with app.app_context():
        for n in range(60):
            record_event(world.t, code=1 if n % 2 else 4, reason="x", kind="plate",
                         credential=f"A{n:03d}AA77", gate=world.gate)
    auth.login("+79990000102")
    page1 = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    assert page1.count('class="event ') == 50 and "page=2" in page1
    denied = client.get(f"/t/{world.t}/events?decision=denied").get_data(as_text=True)
    assert denied.count('class="event ') == 30 and "event-ok" not in denied
    plate = client.get(f"/t/{world.t}/events?plate=а 010").get_data(as_text=True)
    assert plate.count('class="event ') == 1
    assert f"gate={world.gate}" in client.get(
        f"/t/{world.t}/events?gate={world.gate}&decision=4").get_data(as_text=True)
    future = (utcnow() + dt.timedelta(days=2)).date().isoformat()
    empty = client.get(f"/t/{world.t}/events?date_from={future}").get_data(as_text=True)
    assert 'class="event ' not in empty
    # nonsense in the filters is ignored, never a 500
    assert client.get(f"/t/{world.t}/events?date_from=nonsense&gate=abc&page=-3").status_code == 200
    # a decision that is no choice of the filter is shown at it and filters nothing
    bad = client.get(f"/t/{world.t}/events?decision=9").get_data(as_text=True)
    assert bad.count('class="event ') == 50
    # so does a gate of another territory (its id is no choice here)
    bad = client.get(f"/t/{world.t}/events?gate=999999").get_data(as_text=True)
    assert bad.count('class="event ') == 50
    csv = client.get(f"/t/{world.t}/events.csv")
    assert csv.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_a_press_that_did_not_open_names_its_presser_once(app, client, auth, world):
    """A resident's «Открыть» while the controller is off: «Не выполнено», and the resident
    is named once, as the one who pressed (not also as the pass's owner)."""
    with app.app_context():
        record_event(world.t, code=6, reason="gate_offline", kind="phone", gate=world.gate,
                     account=world.resident, actor=world.resident, source="web")
    auth.login("+79990000105")
    html = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    item = html[html.index('class="event '):]
    item = item[:item.index("</li>")]
    assert "Не выполнено" in item and "Повторите" not in item
    assert item.count("Федоров Роман") == 1 and "«Открыть» нажал(а) Федоров Роман" in item


def test_csv_export_for_russian_excel(app, client, auth, world):
    with app.app_context():
        record_event(world.t, code=1, reason="pass_valid", kind="plate", credential="A777AA77",
                     gate=world.gate, account=world.resident)
        record_event(world.t, code=1, reason="operator_open", kind="manual", gate=world.gate,
                     actor=world.operator)
        record_event(world.other, code=1, reason="exit_free", kind="plate", credential="Y1")
    auth.login("+79990000105")
    response = client.get(f"/t/{world.t}/events.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].split(";")[:3] == ["Дата и время", "Ворота", "Направление"]
    assert len(lines) == 3
    assert "Открыто оператором" in lines[1] and "Охранов Олег" in lines[1]
    assert "А 777 АА 77" in lines[2] and "Федоров Роман" in lines[2]
    assert "Y1" not in raw.decode("utf-8-sig")


def test_csv_export_runs_no_formula_typed_into_any_cell(app, client, auth, world):
    """A gate name (or any typed text) starting with = + - @ reaches Excel as text."""
    from domain.gates import Gate

    with app.app_context():
        Gate.update(name='=HYPERLINK("http://evil.example","x")').where(
            Gate.id == world.gate).execute()
        record_event(world.t, code=1, reason="pass_valid", kind="plate", credential="A777AA77",
                     gate=world.gate, account=world.resident)
    auth.login("+79990000105")
    rows = client.get(f"/t/{world.t}/events.csv").get_data().decode("utf-8-sig").splitlines()
    cells = rows[1].split(";")
    assert cells[1].startswith("\"'=HYPERLINK") or cells[1].startswith("'=HYPERLINK")
    assert not any(cell.lstrip('"').startswith(("=", "+", "-", "@")) for cell in cells)


def test_home_actions_fit_the_role(app, world):
    from flask import render_template

    with app.test_request_context():
        t = Territory.get_by_id(world.t)
        by_role = {
            role: render_template("passes/_home_actions.html", territory=t,
                                  membership=Membership(id=1, role=role, territory=t))
            for role in ("resident", "operator", "manager")
        }
        # The platform admin where they are no member: a manager's membership, not saved.
        admin = render_template("passes/_home_actions.html", territory=t,
                                membership=Membership(role="manager", territory=t))
        t.passes_enabled = False
        off = render_template("passes/_home_actions.html", territory=t,
                              membership=Membership(role="manager", territory=t))
    assert "Добавить новую заявку" in by_role["resident"]
    assert "Проверить номер" not in by_role["resident"]
    assert "Журнал" not in by_role["resident"]
    assert "Добавить новую заявку" not in by_role["operator"]
    assert "Проверить номер" in by_role["operator"] and "Журнал" in by_role["operator"]
    assert all(w in by_role["manager"] for w in ("Мои заявки", "Все пропуска", "Журнал"))
    assert "Добавить новую заявку" not in off and "Журнал" in off
    assert "Добавить новую заявку" not in admin and "Мои заявки" not in admin
    assert "Все пропуска" in admin and "Журнал" in admin


def test_the_pass_list_finds_owners_as_people_type_them(app, client, auth, world):
    """The pass list missed «Фёдоров» typed «Федоров», a full name, and the patronymic."""
    with app.app_context():
        Account.update(surname="Фёдоров", patronymic="Георгиевич").where(
            Account.id == world.resident).execute()
        _pass(world.resident, world.t, "A111AA77")
        _pass(world.neighbour, world.t, "B222BB77")
    auth.login("+79990000102")
    for typed, rows in (("Федоров", 1), ("фЁдоров роман", 1), ("Георгиевич", 1),
                        ("Роман Соседов", 0), ("8 999 000 01", 2), ("8 999 000 01 04", 1)):
        found = client.get(f"/t/{world.t}/passes/all", query_string={"q": typed})
        assert found.get_data(as_text=True).count('<tr id="pass-') == rows, typed


def test_a_log_page_past_the_end_does_not_promise_new_events(app, client, auth, world):
    """Page 9 of a log of one page said «Новые появятся здесь сами», and it never polls."""
    with app.app_context():
        record_event(world.t, code=1, reason="pass_valid", kind="plate", credential="A111AA77",
                     gate=world.gate)
    auth.login("+79990000102")
    empty = client.get(f"/t/{world.t}/events?page=9").get_data(as_text=True)
    assert "На этой странице событий нет" in empty and "появятся здесь сами" not in empty
    assert f'href="/t/{world.t}/events"' in empty  # back to the newest
    first = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    assert "На этой странице событий нет" not in first
