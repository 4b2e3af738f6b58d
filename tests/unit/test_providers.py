"""The outbox contract (SPEC §10), telephony and mail, including SMTP against a real server."""

from __future__ import annotations

import json
import multiprocessing
import socket
import ssl
import subprocess
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask

import providers
from providers.mail import MailError, OutboxMailer, SmtpMailer, make_mailer
from providers.outbox import Outbox
from providers.telephony import OutboxTelephony, caller_number, make_telephony

CONTRACT_KEYS = {"channel", "to", "code", "link", "text", "at"}


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    # A folder that does not exist yet: the outbox must create it.
    return Outbox(tmp_path / "instance" / "outbox.jsonl")


def lines(box: Outbox) -> list[dict]:
    return [json.loads(line) for line in box.path.read_text(encoding="utf-8").splitlines()]


# --- the outbox -------------------------------------------------------------------------


def test_append_writes_one_json_line_with_contract_keys(box: Outbox) -> None:
    written = box.append("sms", "+79990001122", text="Код: 1234", code="1234")
    box.append("email", "a@b.c", text="Тема\n\nТело", link="http://x/verify?t=1")

    first, second = lines(box)
    assert first == written
    assert set(first) == {"channel", "to", "code", "text", "at"}
    assert set(second) == {"channel", "to", "link", "text", "at"}
    assert set(first) | set(second) <= CONTRACT_KEYS
    assert second["text"] == "Тема\n\nТело"
    at = datetime.fromisoformat(first["at"])
    assert at.utcoffset() == timedelta(0)


def test_russian_text_is_stored_readable(box: Outbox) -> None:
    box.append("sms", "+79990001122", text="Ваш код — 1234")
    raw = box.path.read_text(encoding="utf-8")
    assert "Ваш код — 1234" in raw  # not \u-escaped
    assert box.latest()["text"] == "Ваш код — 1234"


def test_unknown_channel_is_refused(box: Outbox) -> None:
    with pytest.raises(ValueError, match="channel"):
        box.append("fax", "+79990001122", text="x")


def test_entries_are_newest_first_and_limited(box: Outbox) -> None:
    for i in range(5):
        box.append("sms", f"+7999000000{i}", text=f"#{i}")
    assert [e["text"] for e in box.entries()] == ["#4", "#3", "#2", "#1", "#0"]
    assert [e["text"] for e in box.entries(limit=2)] == ["#4", "#3"]
    assert box.entries(limit=0) == []


def test_entries_of_a_missing_file_are_empty(box: Outbox) -> None:
    assert box.entries() == []
    assert box.latest() is None


def test_entries_read_across_block_boundaries(box: Outbox) -> None:
    # Lines longer than the 64 KiB read block, so a line is split across reads.
    big = "ж" * 50_000
    for i in range(4):
        box.append("email", "a@b.c", text=f"{i}{big}")
    assert [e["text"][0] for e in box.entries()] == ["3", "2", "1", "0"]
    assert all(len(e["text"]) == 50_001 for e in box.entries())


def test_torn_last_line_is_skipped_and_next_append_is_whole(box: Outbox) -> None:
    box.append("sms", "+79990001122", text="целая", code="1111")
    with box.path.open("ab") as f:
        f.write('{"channel": "sms", "to": "+7999", "text": "обор'.encode())  # a writer died

    assert [e["text"] for e in box.entries()] == ["целая"]

    box.append("sms", "+79990001122", text="после", code="2222")
    assert [e["text"] for e in box.entries()] == ["после", "целая"]
    assert box.latest(to="+79990001122")["code"] == "2222"


def test_garbage_lines_are_skipped(box: Outbox) -> None:
    box.path.parent.mkdir(parents=True)
    box.path.write_bytes(
        b'\xff\xfe not utf-8\n[1, 2]\n\n{"channel": "sms", "to": "x", "text": "ok"}\n'
    )
    assert [e["text"] for e in box.entries()] == ["ok"]


def test_latest_filters_by_recipient_and_channel(box: Outbox) -> None:
    box.append("call", "+79990001122", text="звонок", code="1111")
    box.append("sms", "+79990001122", text="смс", code="2222")
    box.append("sms", "+79990003344", text="чужое", code="3333")

    assert box.latest()["code"] == "3333"
    assert box.latest(to="+79990001122")["code"] == "2222"
    assert box.latest(to="+79990001122", channel="call")["code"] == "1111"
    assert box.latest(to="nobody@example.com") is None


def _append_many(path: str, worker: int, count: int, start) -> None:
    box = Outbox(Path(path))
    start.wait()
    for i in range(count):
        # Long lines make an interleaved write visible as broken JSON.
        box.append("sms", f"+7999{worker:07d}", text=f"{worker}:{i}:" + "я" * 3000, code="1234")


@pytest.mark.slow
def test_concurrent_appends_from_processes_stay_whole(box: Outbox) -> None:
    workers, count = 4, 50
    # spawn, not fork: a fresh interpreter per worker, as separate web processes would be.
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_append_many, args=(str(box.path), w, count, start))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0

    written = lines(box)  # json.loads on every line: none torn or interleaved
    assert len(written) == workers * count
    seen = {e["text"].rsplit(":", 1)[0] for e in written}  # "worker:i", each exactly once
    assert len(seen) == workers * count
    assert len(box.entries(limit=1000)) == workers * count


# --- telephony --------------------------------------------------------------------------


def test_flash_call_goes_to_outbox_with_code_and_caller_number(box: Outbox) -> None:
    OutboxTelephony(box).flash_call("+79990001122", "0427")
    entry = box.latest(to="+79990001122")
    assert entry["channel"] == "call"
    assert entry["code"] == "0427"
    assert "+7 (900) 000-04-27" in entry["text"]
    assert "последние 4 цифры" in entry["text"]
    assert set(entry) <= CONTRACT_KEYS


def test_caller_number_ends_in_code() -> None:
    assert "".join(ch for ch in caller_number("9876") if ch.isdigit()).endswith("9876")
    for bad in ("123", "12345", "12a4", "١٢٣٤"):
        with pytest.raises(ValueError):
            caller_number(bad)


def test_sms_goes_to_outbox_with_code(box: Outbox) -> None:
    tel = OutboxTelephony(box)
    tel.sms("+79990001122", "Код для входа: 5555", code="5555")
    tel.sms("+79990001122", "Пропуск выдан")
    plain, coded = box.entries()
    assert coded == {**coded, "channel": "sms", "code": "5555", "text": "Код для входа: 5555"}
    assert plain["channel"] == "sms" and "code" not in plain


def test_make_telephony(box: Outbox) -> None:
    assert isinstance(make_telephony("outbox", box), OutboxTelephony)
    with pytest.raises(ValueError, match="TELEPHONY"):
        make_telephony("smsc", box)


# --- mail -------------------------------------------------------------------------------


def test_outbox_mailer_writes_subject_blank_line_body(box: Outbox) -> None:
    OutboxMailer(box).send("a@b.c", "Подтвердите почту", "Откройте ссылку", link="http://x/v/1")
    OutboxMailer(box).send("a@b.c", "Чек", "Оплачено 100 ₽")
    no_link, with_link = box.entries()
    assert with_link["channel"] == "email"
    assert with_link["text"] == "Подтвердите почту\n\nОткройте ссылку"
    assert with_link["link"] == "http://x/v/1"
    assert "link" not in no_link and "code" not in no_link


@pytest.mark.parametrize(
    "setting",
    [
        "sendmail",
        "",
        "smtps://mail.example.com:465",
        "smtp://",
        "smtp://mail.example.com:port",
        "smtp://mail.example.com/path",
        "smtp://mail.example.com?tls=1",
        "smtp://mail.example.com?starttls=maybe",
    ],
)
def test_make_mailer_rejects_unknown_settings(box: Outbox, setting: str) -> None:
    with pytest.raises(ValueError):
        make_mailer(setting, box)


def test_make_mailer_parses_smtp_url(box: Outbox) -> None:
    m = make_mailer("smtp://u%40x:p%3As@mail.example.com:2525?starttls=1&from=a%40b.c", box)
    assert isinstance(m, SmtpMailer)
    assert (m.host, m.port, m.username, m.password, m.starttls) == (
        "mail.example.com",
        2525,
        "u@x",
        "p:s",
        True,
    )
    assert m.sender == "a@b.c"
    assert "p:s" not in repr(m)
    assert make_mailer("smtp://mail.example.com", box).port == 25


def test_error_messages_hide_the_password(box: Outbox) -> None:
    with pytest.raises(ValueError) as err:
        make_mailer("smtp://u:secret@mail.example.com?bogus=1", box)
    assert "secret" not in str(err.value)


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.envelopes.append(envelope)
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """Start a real SMTP server on loopback; yield a function that starts it with options."""
    started: list[Controller] = []

    def start(**kwargs) -> tuple[Inbox, int]:
        inbox, port = Inbox(), free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return inbox, port

    yield start
    for controller in started:
        controller.stop()


def _received(inbox: Inbox):
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    return envelope, message_from_bytes(envelope.original_content, policy=policy.default)


@pytest.mark.slow
def test_smtp_mailer_delivers_russian_mail_with_link(smtp_server) -> None:
    inbox, port = smtp_server()
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", "Пропуск <noreply@propusk.local>")
    mailer.send(
        "resident@example.com",
        "Подтвердите почту",
        "Здравствуйте! Откройте ссылку:",
        link="http://127.0.0.1:5000/verify/abc",
    )

    envelope, msg = _received(inbox)
    assert envelope.mail_from == "noreply@propusk.local"
    assert envelope.rcpt_tos == ["resident@example.com"]
    assert msg["To"] == "resident@example.com"
    assert str(msg["Subject"]) == "Подтвердите почту"
    assert str(msg["From"]) == "Пропуск <noreply@propusk.local>"
    assert msg["Message-ID"].endswith("@propusk.local>")
    assert msg["Date"].datetime.utcoffset() == timedelta(0)
    body = msg.get_content()
    assert "Здравствуйте! Откройте ссылку:" in body
    assert "http://127.0.0.1:5000/verify/abc" in body


@pytest.mark.slow
def test_smtp_mailer_logs_in_when_user_given(smtp_server) -> None:
    logins: list[LoginPassword] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        logins.append(auth_data)
        # handled=False lets aiosmtpd answer a failure itself; otherwise the client waits.
        ok = auth_data == LoginPassword(b"robot", b"p@ss")
        return AuthResult(success=ok, handled=ok)

    # No TLS here, so aiosmtpd must be told to allow AUTH in clear; the STARTTLS test below
    # covers the encrypted path.
    inbox, port = smtp_server(authenticator=authenticator, auth_require_tls=False)
    SmtpMailer(f"smtp://robot:p%40ss@127.0.0.1:{port}", "noreply@propusk.local").send(
        "a@b.c", "Чек", "Оплачено"
    )
    assert logins == [LoginPassword(b"robot", b"p@ss")]
    _, msg = _received(inbox)
    assert msg.get_content().strip() == "Оплачено"

    with pytest.raises(MailError):
        SmtpMailer(f"smtp://robot:wrong@127.0.0.1:{port}", "noreply@propusk.local").send(
            "a@b.c", "Чек", "Оплачено"
        )


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.slow
def test_smtp_mailer_uses_starttls_when_asked(smtp_server, tls_pair) -> None:
    server_tls, client_tls = tls_pair
    inbox, port = smtp_server(tls_context=server_tls, require_starttls=True)

    # Without ?starttls=1 a server that requires it refuses the message.
    with pytest.raises(MailError):
        SmtpMailer(f"smtp://127.0.0.1:{port}", "noreply@propusk.local").send("a@b.c", "Т", "Т")
    assert inbox.envelopes == []

    mailer = SmtpMailer(
        f"smtp://127.0.0.1:{port}?starttls=1", "noreply@propusk.local", ssl_context=client_tls
    )
    mailer.send("a@b.c", "Тема", "Текст")
    _, msg = _received(inbox)
    assert str(msg["Subject"]) == "Тема"


def test_smtp_mailer_reports_unreachable_server() -> None:
    with pytest.raises(MailError):
        SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "noreply@propusk.local").send(
            "a@b.c", "Т", "Т"
        )


# --- binding to an app ------------------------------------------------------------------


def test_init_app_binds_providers_and_accessors(tmp_path: Path) -> None:
    app = Flask("propusk_test", instance_path=str(tmp_path / "instance"))
    providers.init_app(app)
    with app.app_context():
        assert providers.outbox().path == tmp_path / "instance" / "outbox.jsonl"
        providers.telephony().flash_call("+79990001122", "1234")
        providers.mailer().send("a@b.c", "Тема", "Текст")
        assert providers.outbox().latest(channel="call")["code"] == "1234"
        assert providers.outbox().latest(channel="email")["to"] == "a@b.c"


def test_init_app_smtp_and_sender(tmp_path: Path) -> None:
    app = Flask("propusk_test", instance_path=str(tmp_path))
    app.config.update(MAIL="smtp://mail.example.com:2525", MAIL_FROM="Дом <dom@example.com>")
    providers.init_app(app)
    assert isinstance(app.extensions["mail"], SmtpMailer)
    assert app.extensions["mail"].sender == "Дом <dom@example.com>"


@pytest.mark.parametrize("key,value", [("TELEPHONY", "twilio"), ("MAIL", "mailgun")])
def test_init_app_refuses_unknown_settings(tmp_path: Path, key: str, value: str) -> None:
    app = Flask("propusk_test", instance_path=str(tmp_path))
    app.config[key] = value
    with pytest.raises(ValueError, match=key):
        providers.init_app(app)


def test_accessors_say_when_init_app_was_not_called(tmp_path: Path) -> None:
    app = Flask("propusk_test", instance_path=str(tmp_path))
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        providers.mailer()
