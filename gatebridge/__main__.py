"""`python -m gatebridge`: the bridge as a process of its own, beside the web processes.

It is the deployment's one singleton, so it also runs the housekeeping `python app.py`
runs in-process (the hourly purge of deleted accounts); gunicorn's web workers run none.
"""

if __name__ == "__main__":
    # Sockets, threads and time must be cooperative before anything else imports them.
    from gevent import monkey

    monkey.patch_all()

import argparse
import logging
import signal
import sys

import gevent
import gevent.event

log = logging.getLogger("propusk.gatebridge")


DESCRIPTION = """\
Run the gatebridge: poll every gate controller of the database (GATE-CTL v1 over Modbus
TCP), answer the credentials presented at the gates, pulse the relays, record the
events; and, hourly, the housekeeping (purge of deleted accounts, expiry of abandoned
payments, retention of gate events). Upgrades the schema first. Runs until SIGTERM or
SIGINT. Run exactly one per database, beside the web processes (docs/deploy.md).
"""

EPILOG = """\
configuration, from the environment (README, "Configuration"): INSTANCE_PATH (default
./instance: the SQLite file, the event spool, the outbox, a generated secret key),
DATABASE_URL (default: SQLite under INSTANCE_PATH), SECRET_KEY, EVENTS_RETENTION_DAYS
(default 400), PAYMENT_PROVIDER, TELEPHONY, MAIL, PUBLIC_URL, PASSWORD_HASHING.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: no options but --help; anything else is a usage error (exit 2)."""
    parser = argparse.ArgumentParser(
        prog="python -m gatebridge",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the bridge of the configured app and run until SIGTERM or SIGINT."""
    # Before anything touches the instance folder or the database: `--help` only prints.
    parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from app import SettingsError, create_app

    try:
        app = create_app()
    except SettingsError as error:
        sys.exit(f"python -m gatebridge: {error}")
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    if not _upgraded(app, stopping):
        return 0
    bridge = app.extensions["gatebridge"]
    from jobs import PurgeJob

    bridge.start()
    purge = PurgeJob(app).start()
    log.info("gatebridge running (database %s)", app.config["DATABASE_URL"].split("?")[0])
    stopping.wait()
    log.info("gatebridge stopping")
    purge.stop()
    bridge.stop()
    return 0


def _upgraded(app, stopping: gevent.event.Event) -> bool:
    """Bring the schema up to date, waiting for a database that cannot be reached yet;
    False when told to stop meanwhile.

    A bridge that exited at once (a database restarting, a host booting before its remote
    database) was started again and again by its service manager until that gave up
    (systemd: five starts in ten seconds), and then stayed down after the database came
    back. It waits here instead, growing pauses up to START_RETRY_MAX_S. An error that is
    not about reaching the database (a step that fails) still ends the start.
    """
    from peewee import OperationalError

    from domain.db import db
    from domain.schema import upgrade

    pause = 1.0
    while True:
        try:
            with app.app_context(), db.connection_context():
                upgrade()
            return True
        except OperationalError as error:
            log.warning("database not reachable (%s); trying again in %.0f s", error, pause)
        if stopping.wait(pause):
            return False
        pause = min(pause * 2, START_RETRY_MAX_S)


# The longest pause: a database back is found within it, and the gates polled then (the
# service retries within the same bound, service.RETRY_S). 30 s left every gate unpolled
# for up to 30 s after the database came back (bridge audit, stop 24).
START_RETRY_MAX_S = 3.0


if __name__ == "__main__":
    sys.exit(main())
