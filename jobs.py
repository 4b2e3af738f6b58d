"""Housekeeping (`python app.py`, `python -m gatebridge`), hourly: the purge of deleted
accounts, the expiry of abandoned payments and the gate events' retention (with
PostgreSQL's coming monthly partitions)."""

from __future__ import annotations

import logging

import gevent
from flask import Flask
from gevent.pool import Group

from domain import accounts, billing, retention
from domain.db import db

log = logging.getLogger("propusk.jobs")

PURGE_EVERY = 3600.0  # seconds


class PurgeJob:
    """Runs what `flask purge-deleted` and `flask events prune` do, and cancels payments
    pending longer than billing.PENDING_LIFETIME, every hour (first at start).

    Web workers under gunicorn do not run it: the one bridge process does (docs/deploy.md).
    """

    def __init__(self, app: Flask, every: float = PURGE_EVERY) -> None:
        self.app = app
        self.every = every
        self.group = Group()

    def run_once(self) -> int:
        """One round, in an app context with its own connection; returns the accounts purged."""
        with self.app.app_context(), db.connection_context():
            count = accounts.purge_deleted()
            expired = billing.expire_pending()
            pruned, created = retention.apply_policy()
        if count:
            log.info("purged %s deleted accounts", count)
        if expired:
            log.info("canceled %s payments pending too long", expired)
        if pruned or created:
            log.info("pruned %s gate events; created partitions %s", pruned, created)
        return count

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # a bad hour must not stop the next one
                log.exception("housekeeping failed")
            gevent.sleep(self.every)

    def start(self) -> PurgeJob:
        """Start the loop in a greenlet."""
        greenlet = self.group.spawn(self._loop)
        greenlet.link_exception(lambda g: log.error("purge job died: %s", g.exception))
        return self

    def stop(self) -> None:
        """Stop the loop."""
        self.group.kill(block=True, timeout=5)
