"""Propusk: `create_app()` builds the web app; `python app.py` serves it with the gatebridge."""

if __name__ == "__main__":
    # Sockets, threads and time must be cooperative before anything else imports them.
    from gevent import monkey

    monkey.patch_all()

import datetime as dt
import gc
import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import gatebridge
import providers
from blueprints import register_blueprints
from blueprints.errors import init_errors
from blueprints.i18n import init_i18n
from blueprints.passes.shortcut import CheckShortcut
from blueprints.requests import init_requests
from blueprints.security import init_security
from blueprints.sessions import init_sessions
from cli import register_cli
from domain import accounts, retention
from domain.db import db, init_db
from domain.networks import Network
from extensions import csrf, htmx
from providers import payments

log = logging.getLogger("propusk")


def _secret_key(instance: Path) -> str:
    """SECRET_KEY from the environment, else one generated once into the instance folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip()


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError, click.ClickException):
    """A variable of the environment that Propusk cannot read; the message names it.

    Also a click exception: `flask --app app …` builds the app as it starts, and click prints
    it as one line («Error: …», exit code 1) instead of a traceback."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        click.ClickException.__init__(self, message)


def env_flag(name: str, default: bool) -> bool:
    """A yes/no variable: 1/0, true/false, yes/no or on/off in any case; unset is `default`."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SettingsError(f"{name}={os.environ[name]!r}: expected 1/0, true/false, yes/no "
                        "or on/off")


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole-number variable between `minimum` and `maximum`; unset is `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        expected = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer from {minimum}"
        )
        if maximum is not None:
            expected += f" up to {maximum}"
        raise SettingsError(f"{name}={os.environ[name]!r}: expected {expected}")
    return value


def env_networks(name: str) -> tuple[Network, ...]:
    """Networks (CIDR, or single addresses) separated by commas; unset is none."""
    raw = os.environ.get(name, "").strip()
    found = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not a network like 10.20.0.0/16 "
                                "or an address") from None
    return tuple(found)


def settings(instance: Path) -> dict[str, Any]:
    """The configuration SPEC §10 reads from the environment, with the embedded defaults."""
    return {
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'propusk.db'}",
        "TELEPHONY": os.environ.get("TELEPHONY", "outbox"),
        "MAIL": os.environ.get("MAIL", "outbox"),
        "PAYMENT_PROVIDER": os.environ.get("PAYMENT_PROVIDER", "sandbox"),
        "DEV_PAGES": env_flag("DEV_PAGES", True),
        "SESSION_COOKIE_SECURE": env_flag("COOKIE_SECURE", False),
        "PROXY_HOPS": env_int("PROXY_HOPS", 0),
        "GATEBRIDGE": env_flag("GATEBRIDGE", True),
        "PASSWORD_HASHING": os.environ.get("PASSWORD_HASHING", "standard"),
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", ""),
        # Where gate controllers may be: the bridge connects to nothing else, and the gate
        # form refuses an address outside (docs/security.md). Unset: any address.
        "GATE_NETWORKS": env_networks("GATE_NETWORKS"),
        "EVENTS_RETENTION_DAYS": env_int(
            "EVENTS_RETENTION_DAYS", retention.DEFAULT_RETENTION_DAYS, minimum=1,
            maximum=retention.MAX_RETENTION_DAYS,
        ),
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Propusk web application; `config` overrides the environment (tests)."""
    config = dict(config or {})
    instance = Path(config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH", "instance"))
    instance = instance.resolve()
    instance.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(instance))
    app.config.from_mapping(settings(instance))
    app.config.update(
        INSTANCE_PATH=str(instance),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="propusk",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(days=365),
        # The device row holds the session's life (domain/accounts.py); re-signing an
        # unchanged cookie on every response was a tenth of a check's time.
        SESSION_REFRESH_EACH_REQUEST=False,
        # A PWA tab stays open for days: the token lives as long as the session does.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(instance)
    # Innermost, so that the proxy and public-address fixes below apply to it too.
    app.wsgi_app = CheckShortcut(app, app.wsgi_app)
    _public_address(app)
    if app.config["PAYMENT_PROVIDER"] == "sandbox" and not app.config["DEV_PAGES"]:
        raise ValueError("PAYMENT_PROVIDER=sandbox pays on a development page, which "
                         "DEV_PAGES=0 hides: no payment could be made. Set a real provider.")
    if app.config["PROXY_HOPS"]:
        # Behind one reverse proxy the client's address is the last X-Forwarded-For hop.
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    accounts.use_hashing(app.config["PASSWORD_HASHING"])
    init_db(app.config["DATABASE_URL"])
    _bind_connection(app)
    csrf.init_app(app)
    htmx.init_app(app)
    init_requests(app)
    init_i18n(app)
    init_sessions(app)
    init_security(app)
    init_errors(app)
    providers.init_app(app)
    payments.init_app(app)
    register_blueprints(app)
    register_cli(app)
    gatebridge.init_app(app)
    return app


# Host names served without PUBLIC_URL: `python app.py` listens on loopback only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _public_address(app: Flask) -> None:
    """Absolute links (in e-mails, to the payment provider) come from PUBLIC_URL, never from
    the request's Host header, which the client writes: a password-recovery link built from
    a forged Host would send the victim's token to the forger's site. A request naming any
    other host is refused (400). Without PUBLIC_URL only loopback names are served, so a
    deployment behind a proxy has to say its address (docs/deploy.md)."""
    hosts = list(LOOPBACK_HOSTS)
    url = app.config.get("PUBLIC_URL")
    if url:
        parts = urlsplit(url)
        if (parts.scheme not in ("http", "https") or not parts.hostname
                or parts.path.strip("/") or parts.query or parts.fragment):
            raise ValueError(f"PUBLIC_URL={url!r}: expected the site's address, "
                             "like https://propusk.example.ru")
        app.config["SERVER_NAME"] = parts.netloc
        app.config["PREFERRED_URL_SCHEME"] = parts.scheme
        hosts.append(parts.hostname)
        # The scheme too: inside a request Flask builds links with the request's scheme, and
        # a proxy that sends no X-Forwarded-Proto would have tokens mailed as http:// links.
        inner = app.wsgi_app

        def public_scheme(environ: dict, start_response: Any) -> Any:
            environ["wsgi.url_scheme"] = parts.scheme
            return inner(environ, start_response)

        app.wsgi_app = public_scheme
    if app.config.get("TRUSTED_HOSTS") is None:
        app.config["TRUSTED_HOSTS"] = hosts


def _bind_connection(app: Flask) -> None:
    """One database connection per request, closed in teardown."""

    @app.before_request
    def _connect() -> None:
        db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()


def settle_memory() -> None:
    """Move what start-up built (modules, templates, the app) out of the garbage collector's
    sight: every full collection would walk those objects again while requests wait."""
    gc.collect()
    gc.freeze()


def main() -> None:
    """Serve on 127.0.0.1:$PORT with gevent's WSGI server, the gatebridge alongside."""
    import serving
    from domain.schema import upgrade

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        port = env_int("PORT", 5000, minimum=1, maximum=65535)
        app = create_app()
    except SettingsError as error:
        raise SystemExit(f"python app.py: {error}") from None
    with app.app_context(), db.connection_context():
        upgrade()
    server = serving.server(port, app, log=None, error_log=log)
    gatebridge.start(app)
    from jobs import PurgeJob

    purge = app.extensions["purge_job"] = PurgeJob(app).start()
    settle_memory()
    log.info("Propusk on http://127.0.0.1:%s", port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        purge.stop()
        gatebridge.stop(app)


if __name__ == "__main__":
    main()
