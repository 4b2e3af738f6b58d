"""`python -m gatebridge`: the bridge as a process of its own, beside the web processes.

It is the deployment's one singleton, so it also runs the housekeeping `python app.py`
runs in-process (the hourly purge of deleted accounts); gunicorn's web workers run none.
"""

if __name__ == "__main__":
    # Sockets, threads and time must be cooperative before anything else imports them.
    from gevent import monkey

    monkey.patch_all()

import logging
import signal
import sys

import gevent
import gevent.event

log = logging.getLogger("propusk.gatebridge")


def main() -> int:
    """Start the bridge of the configured app and run until SIGTERM or SIGINT."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from app import create_app
    from domain.db import db
    from domain.schema import upgrade

    app = create_app()
    with app.app_context(), db.connection_context():
        upgrade()
    bridge = app.extensions["gatebridge"]
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    from jobs import PurgeJob

    bridge.start()
    purge = PurgeJob(app).start()
    log.info("gatebridge running (database %s)", app.config["DATABASE_URL"].split("?")[0])
    stopping.wait()
    log.info("gatebridge stopping")
    purge.stop()
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
