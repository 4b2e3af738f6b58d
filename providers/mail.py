"""E-mail behind one small interface: the outbox for development, SMTP for real delivery."""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from providers.outbox import Outbox

DEFAULT_SENDER = "Пропуск <noreply@propusk.local>"
SMTP_TIMEOUT = 10.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class MailError(RuntimeError):
    """The mail server refused the message or could not be reached."""


@runtime_checkable
class Mailer(Protocol):
    """What the app needs from a mail service."""

    def send(self, to: str, subject: str, text: str, link: str | None = None) -> None:
        """Send a plain-text message; `link` is the one link the reader should open, if any."""


class OutboxMailer:
    """A mailer that writes to the outbox instead of sending (MAIL=outbox)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def send(self, to: str, subject: str, text: str, link: str | None = None) -> None:
        """Record the message as subject, a blank line and the body."""
        self.outbox.append("email", to, text=f"{subject}\n\n{text}", link=link)


class SmtpMailer:
    """A mailer that delivers through an SMTP server given as `smtp://[user:pass@]host[:port]`.

    Query options: `starttls=1` to upgrade the connection before anything else is sent,
    `from=...` to override the sender.
    """

    def __init__(self, url: str, sender: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "smtp":
            raise ValueError(f"MAIL URL must start with smtp://, got {_redact(url)!r}")
        if not parts.hostname:
            raise ValueError(f"MAIL URL has no host: {_redact(url)!r}")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(f"MAIL URL takes no path or fragment: {_redact(url)!r}")
        try:
            port = parts.port or smtplib.SMTP_PORT
        except ValueError as exc:
            raise ValueError(f"MAIL URL has a bad port: {_redact(url)!r}") from exc
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(options) - {"starttls", "from"}
        if unknown:
            raise ValueError(
                f"MAIL URL has unknown options {sorted(unknown)}; known: starttls, from"
            )

        self.host: str = parts.hostname
        self.port: int = port
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.starttls = _flag(options.get("starttls", ["0"])[-1])
        # An explicit ?from= belongs to this server's account, so it beats the app-wide sender.
        self.sender = options["from"][-1] if "from" in options else sender
        _, self.sender_address = parseaddr(self.sender)
        if "@" not in self.sender_address:
            raise ValueError(f"mail sender has no address: {self.sender!r}")
        # Injected only by tests that trust a self-signed certificate.
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"SmtpMailer(smtp://{who}{self.host}:{self.port}, starttls={self.starttls})"

    def message(self, to: str, subject: str, text: str, link: str | None = None) -> EmailMessage:
        """Build the message `send` would deliver."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        # An explicit domain: make_msgid() would otherwise ask DNS for this host's FQDN.
        msg["Message-ID"] = make_msgid(domain=self.sender_address.rpartition("@")[2])
        body = text if not link or link in text else f"{text}\n\n{link}"
        # base64 keeps Cyrillic 7-bit clean for servers without 8BITMIME.
        msg.set_content(body, charset="utf-8", cte="base64")
        return msg

    def send(self, to: str, subject: str, text: str, link: str | None = None) -> None:
        """Deliver the message; raise MailError when the server cannot take it."""
        msg = self.message(to, subject, text, link)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg, from_addr=self.sender_address, to_addrs=[to])
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"mail to {to} via {self.host}:{self.port} failed: {exc}") from exc


def make_mailer(setting: str, outbox: Outbox, sender: str = DEFAULT_SENDER) -> Mailer:
    """Build the mailer named by the MAIL setting; unknown settings raise ValueError."""
    if setting == "outbox":
        return OutboxMailer(outbox)
    if setting.startswith("smtp://"):
        return SmtpMailer(setting, sender)
    raise ValueError(f"MAIL={_redact(setting)!r} is not supported; expected 'outbox' or smtp://…")


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"MAIL URL option starttls={value!r} is not a yes/no value")


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
