"""Housekeeping (`python app.py`, `python -m gatebridge`): the hourly purge of deleted accounts."""

from __future__ import annotations

import logging

import gevent
from flask import Flask
from gevent.pool import Group

from domain import accounts
from domain.db import db

log = logging.getLogger("propusk.jobs")

PURGE_EVERY = 3600.0  # seconds


class PurgeJob:
    """Calls the same purge as `flask purge-deleted` every hour (first run at start)."""

    def __init__(self, app: Flask, every: float = PURGE_EVERY) -> None:
        self.app = app
        self.every = every
        self.group = Group()

    def run_once(self) -> int:
        """One purge, in an app context with its own connection."""
        with self.app.app_context(), db.connection_context():
            count = accounts.purge_deleted()
        if count:
            log.info("purged %s deleted accounts", count)
        return count

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # a bad hour must not stop the next one
                log.exception("purge of deleted accounts failed")
            gevent.sleep(self.every)

    def start(self) -> PurgeJob:
        """Start the loop in a greenlet."""
        greenlet = self.group.spawn(self._loop)
        greenlet.link_exception(lambda g: log.error("purge job died: %s", g.exception))
        return self

    def stop(self) -> None:
        """Stop the loop."""
        self.group.kill(block=True, timeout=5)
