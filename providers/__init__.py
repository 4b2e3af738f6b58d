"""The outside world behind small interfaces: the outbox, telephony and mail.

`init_app(app)` binds one of each to an app; the accessors below are the only lines
here that know about Flask's application context.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app

from providers.mail import DEFAULT_SENDER, Mailer, MailError, make_mailer
from providers.outbox import Outbox
from providers.telephony import Telephony, make_telephony

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "DEFAULT_SENDER",
    "MailError",
    "Mailer",
    "Outbox",
    "Telephony",
    "init_app",
    "mailer",
    "outbox",
    "telephony",
]


def init_app(app: Flask) -> None:
    """Create the app's outbox, telephony and mailer from its config; bad settings raise here."""
    box = Outbox(Path(app.instance_path) / "outbox.jsonl")
    app.extensions["outbox"] = box
    app.extensions["telephony"] = make_telephony(app.config.get("TELEPHONY", "outbox"), box)
    app.extensions["mail"] = make_mailer(
        app.config.get("MAIL", "outbox"), box, app.config.get("MAIL_FROM") or DEFAULT_SENDER
    )


def _extension(name: str) -> Any:
    try:
        return current_app.extensions[name]
    except KeyError:
        raise RuntimeError(f"providers.init_app(app) was not called; no {name!r}") from None


def telephony() -> Telephony:
    """Return the current app's telephony."""
    return _extension("telephony")


def mailer() -> Mailer:
    """Return the current app's mailer."""
    return _extension("mail")


def outbox() -> Outbox:
    """Return the current app's outbox."""
    return _extension("outbox")
