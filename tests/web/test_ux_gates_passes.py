"""Usability fixes on the pass/log bar and the manager's gate list."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from domain import gates
from domain.db import utcnow
from domain.gates import Gate
from domain.territories import Membership, create_territory


@pytest.fixture
def world(app, make_account):
    with app.app_context():
        manager = make_account(surname="Управляева", name="Мария")
        operator = make_account(surname="Охранов", name="Олег")
        territory = create_territory(manager, name="ЖК", kind="residential")
        Membership.create(account=operator, territory=territory, role="operator")
        gate = Gate.create(territory=territory, name="Въезд", host="127.0.0.1", port=5020,
                           unit_id=1)
    return {"manager": manager, "operator": operator, "t": territory.id, "gate": gate.id}


def _bar(html):
    return html.split('id="passes-actions"')[1].split("</nav>")[0]


@pytest.mark.parametrize(("path", "label"), [
    ("passes/all", "Все пропуска"), ("events", "Журнал"), ("passes", "Мои заявки"),
    ("passes/new", "Добавить новую заявку"),
])
def test_the_pass_bar_marks_the_current_page(client, auth, world, path, label):
    auth.login(world["manager"].phone)
    bar = _bar(client.get(f"/t/{world['t']}/{path}").get_data(as_text=True))
    current = re.findall(r'<a [^>]*aria-current="page"[^>]*>([^<]+)</a>', bar)
    assert current == [label], bar


def test_the_home_marks_nothing_in_the_pass_bar(client, auth, world):
    auth.login(world["manager"].phone)
    bar = _bar(client.get(f"/t/{world['t']}/").get_data(as_text=True))
    assert "aria-current" not in bar


def test_each_gate_has_an_edit_button(client, auth, world):
    auth.login(world["manager"].phone)
    html = client.get(f"/t/{world['t']}/gates").get_data(as_text=True)
    row = re.search(rf'id="gate-row-{world["gate"]}".*?</tr>', html, re.S).group(0)
    edit = f'/t/{world["t"]}/gates/{world["gate"]}/edit'
    assert re.search(rf'<a class="button button-small[^"]*" href="{edit}"[^>]*>Изменить</a>', row)


def test_the_heartbeat_is_told_as_time_since_the_last_answer(app, client, auth, world):
    with app.app_context():
        gates.save_status(world["gate"], status="online",
                          last_seen_at=utcnow() - dt.timedelta(seconds=2), heartbeat=384,
                          gate_state=1, fault_code=0, last_error=None)
    auth.login(world["manager"].phone)
    html = client.get(f"/t/{world['t']}/gates/states",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Пульс</th>" not in html and 'data-label="Пульс"' not in html
    assert re.search(r">\s*[23] с назад</span>", html)
    assert re.search(r'title="[^"]*Пульс 384"', html)  # the counter only for whoever digs
