"""Real Chromium on a phone screen: file and revoke a pass, check a plate, watch the live feed."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from playwright.sync_api import expect

from tests.database import query, url_for
from tests.e2e.conftest import csp_violations, sign_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timing]


def _sql(demo, sql: str, params: tuple = ()) -> list[tuple]:
    return query(url_for(demo["instance"]), sql, params)


def _residential(demo) -> int:
    return _sql(demo, "select id from territory where kind = 'residential'")[0][0]



def test_resident_files_and_revokes_a_pass(browser, demo):
    tid = _residential(demo)
    page = browser.new_page()
    asked, says_yes = [], []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept() if says_yes.pop(0) else dialog.dismiss()

    page.on("dialog", answer)
    sign_in_as(page, demo, "resident")
    page.goto(f"{demo['base']}/t/{tid}/passes/new")
    # the dates are asked only when «Указать даты» is chosen
    assert not page.is_visible("#valid_to")
    page.click("text=Указать даты")
    assert page.is_visible("#valid_to")
    page.click("text=Неделя")
    assert not page.is_visible("#valid_to")
    # a wrong letter first: the error shows at the field, what was typed stays
    page.fill("#plate", "ж 123 ух 178")
    page.click("button:has-text('Добавить')")
    page.wait_for_selector("text=Буквы «Ж» нет на российских номерах")
    assert page.input_value("#plate") == "ж 123 ух 178"
    page.fill("#plate", "х 123 ух 178")
    page.click("button:has-text('Добавить')")
    page.wait_for_selector("text=Заявка добавлена: Х 123 УХ 178")
    # «Мои заявки» is marked in the pass bar, with the menu's underline
    current = page.locator("#passes-actions a[aria-current=page]")
    assert current.inner_text() == "Мои заявки"
    shadow = "a => getComputedStyle(a).boxShadow"
    other = page.locator("#passes-actions a:not([aria-current])").first
    assert current.evaluate(shadow) not in ("none", other.evaluate(shadow))
    active = page.locator("#passes-active")
    assert active.locator("text=Х 123 УХ 178").count() == 1
    item = active.locator("li", has_text="Х 123 УХ 178")
    # «Отмена» in the question keeps the pass: nothing is sent
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    says_yes.append(False)
    item.locator("button:has-text('Отозвать')").click()
    page.wait_for_timeout(700)  # time for a request that must not come
    assert asked == ["Отозвать пропуск Х 123 УХ 178?"] and posts == []
    assert _sql(demo, "select revoked_at from vehicle_pass where plate = 'X123YX178'") == [(None,)]
    says_yes.append(True)
    item.locator("button:has-text('Отозвать')").click()
    page.wait_for_selector("text=Пропуск Х 123 УХ 178 отозван")
    assert len(asked) == 2
    assert page.locator("#passes-active").locator("text=Х 123 УХ 178").count() == 0
    ended = page.locator("#passes-ended li", has_text="Х 123 УХ 178")
    assert "Отозван" in ended.inner_text()
    [(revoked,)] = _sql(demo, "select revoked_at from vehicle_pass where plate = 'X123YX178'")
    assert revoked is not None
    assert csp_violations(page) == []


def test_operator_checks_a_plate_on_one_phone_screen(browser, demo):
    tid = _residential(demo)
    page = browser.new_page()
    sign_in_as(page, demo, "operator")
    page.goto(f"{demo['base']}/t/{tid}/check")
    # suggestions arrive while typing (htmx, 300 ms after the last key)
    page.type("#plate", "а77", delay=60)
    suggestion = page.locator("#suggestions a", has_text="А 777 АА 77")
    suggestion.wait_for(timeout=3000)
    suggestion.click()
    verdict = page.locator("#verdict")
    verdict.wait_for()
    text = verdict.inner_text()
    assert "Въезд разрешён" in text and "Пропуск действует" in text
    assert "Федоров Роман Георгиевич" in text
    assert "Участок 632 и 633 (дом 148)" in text
    assert page.get_attribute("#verdict a.tel", "href") == "tel:+79990000003"
    box = verdict.bounding_box()
    assert box["y"] + box["height"] <= 740, box  # the whole answer on a 360×740 screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # an expired pass: denied, with the reason in Russian
    page.fill("#plate", "к 456 мн 50")
    page.press("#plate", "Enter")
    page.wait_for_selector("#verdict >> text=Въезд запрещён")
    assert "Срок пропуска истёк" in page.inner_text("#verdict")
    # Nothing a plate is made of: said at the field, which keeps the text and the focus, and
    # the last answer goes; the next plate takes the mistake away.
    page.fill("#plate", "$$$")
    page.press("#plate", "Enter")
    page.wait_for_selector("#plate[aria-invalid=true]")
    assert "Это не номер автомобиля" in page.inner_text("#plate-error")
    assert page.input_value("#plate") == "$$$" and page.inner_text("#verdict").strip() == ""
    expect(page.locator("#plate")).to_be_focused()
    assert page.get_attribute("#plate-error", "role") == "alert"  # read out as it comes
    # A tap on a suggestion brings the form back without the mistake, and the keyboard is
    # put back in the field (the tapped link went with the old form).
    page.fill("#plate", "")
    page.type("#plate", "а77", delay=60)
    page.locator("#suggestions a", has_text="А 777 АА 77").click()
    page.wait_for_selector("#verdict >> text=Въезд разрешён")
    assert page.locator("#plate-error, #plate[aria-invalid]").count() == 0
    expect(page.locator("#plate")).to_be_focused()
    page.fill("#plate", "$$$")
    page.press("#plate", "Enter")
    page.wait_for_selector("#plate[aria-invalid=true]")
    page.fill("#plate", "к 456 мн 50")
    page.press("#plate", "Enter")
    page.wait_for_selector("#verdict >> text=Срок пропуска истёк")
    assert page.locator("#plate-error, #plate[aria-invalid]").count() == 0
    expect(page.locator("#plate")).to_be_focused()
    # A check that cannot reach the server: the last answer goes (it was for another plate)
    # and the banner says why, and stays while the feed goes on polling.
    page.route("**/check?plate=*", lambda route: route.abort())
    page.fill("#plate", "а 777 аа 77")
    page.press("#plate", "Enter")
    page.wait_for_selector("#request-error:not([hidden])")
    assert page.inner_text("#verdict").strip() == ""
    page.wait_for_timeout(2500)  # two polls of the feed
    assert page.is_visible("#request-error") and "Нет связи" in page.inner_text("#request-error")
    page.unroute("**/check?plate=*")
    # A poll that fails says so too, and the first poll that gets through again takes it
    # back: the connection is there.
    page.route("**/events/newer*", lambda route: route.abort())
    page.wait_for_timeout(1500)
    assert "Нет связи" in page.inner_text("#request-error")
    page.unroute("**/events/newer*")
    expect(page.locator("#request-error")).to_be_hidden(timeout=5000)
    # Signed out in another tab: the feed's next poll takes the whole page to the login form
    # (it used to paste the login page into the feed and the verdict), to come back here.
    other = browser.new_page()
    other.goto(f"{demo['base']}/")
    other.click("button:has-text('Выйти')")
    other.wait_for_selector("text=Войти")
    page.wait_for_url("**/login?next=/t/*/check*")
    assert page.locator("h1").count() == 1 and page.locator("#login").count() == 1
    login, password = demo["logins"]["operator"]
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/t/{tid}/check?plate=*")
    assert "Въезд запрещён" in page.inner_text("#verdict")
    assert csp_violations(page) == []


def _guard_s_log(browser, demo):
    """The operator's «Журнал» of the residential territory, its feed polling: the page,
    the territory and how many events it shows."""
    tid = _residential(demo)
    page = browser.new_page()
    sign_in_as(page, demo, "operator")
    page.goto(f"{demo['base']}/t/{tid}/events")
    page.wait_for_selector("#feed-poll", state="attached")
    return page, tid, page.locator("#feed li.event").count()


def test_live_feed_shows_events_from_another_page_and_another_process(browser, demo):
    watcher, tid, before = _guard_s_log(browser, demo)

    # 1. «Открыть» pressed on a second page
    presser = browser.new_page()
    presser.goto(f"{demo['base']}/t/{tid}/check")
    presser.click("button:has-text('Открыть: Въезд')")
    # The demo gate's controller (127.0.0.1:5020) is not running here: the press fails at
    # once, and is an event all the same. (Should one be running, it opens.)
    outcome = presser.locator(".gate-command-done, .gate-command-failed").inner_text()
    pressed = time.monotonic()
    if "Открыто" in outcome:
        label = "Открыто оператором"
    else:
        assert "Ворота не в сети — открыть сейчас нельзя" in outcome, outcome
        label = "Контроллер не на связи"
    watcher.locator("#feed li.event", has_text=label).first.wait_for(timeout=2500)
    assert time.monotonic() - pressed < 2.0
    assert "Охранов Олег" in watcher.locator("#feed li.event").first.inner_text()

    # 2. an event written straight into the database by another process (as the bridge does)
    [(gate,)] = _sql(demo, "select id from gate where territory_id = ?", (tid,))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _sql(
        demo,
        "insert into gate_event (territory_id, gate_id, at, kind, credential, direction,"
        " code, reason, source) values (?, ?, ?, 'plate', 'T555TT99', 1, 3, 'pass_expired',"
        " 'bridge')",
        (tid, gate, now),
    )
    inserted = time.monotonic()
    first = watcher.locator("#feed li.event").first
    watcher.locator("#feed li.event", has_text="Т 555 ТТ 99").wait_for(timeout=2500)
    assert time.monotonic() - inserted < 2.0
    assert "Т 555 ТТ 99" in first.inner_text() and "Срок пропуска истёк" in first.inner_text()
    assert watcher.locator("#feed li.event").count() == before + 2
    assert watcher.locator("#feed-poll").count() == 1
    assert csp_violations(watcher) == [] and csp_violations(presser) == []


def test_a_poll_answered_not_found_stops_asking(browser, demo):
    """Audit (stop 23): a guard taken out of the territory (or a manager made a resident)
    left tabs that asked for the feed every second for ever, each answered 404. The first
    404 now says why in the banner and ends the poll; what the page showed stays."""
    page, _tid, shown = _guard_s_log(browser, demo)
    asked = []

    def refused(route):
        asked.append(route.request.url)
        route.fulfill(status=404, content_type="text/html; charset=utf-8",
                      body='<p class="flash flash-error" data-request-error>'
                           'Территория не найдена</p>')

    page.route("**/events/newer*", refused)
    page.wait_for_selector("#request-error:not([hidden])")
    page.wait_for_timeout(3000)  # three more seconds of polls, were it still polling
    assert len(asked) == 1
    assert "Территория не найдена" in page.inner_text("#request-error")
    assert page.locator("#feed li.event").count() == shown
    assert csp_violations(page) == []
