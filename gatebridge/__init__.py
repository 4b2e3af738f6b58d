"""The gatebridge: talks GATE-CTL v1 (Modbus) to gate controllers beside the web app.

`init_app` attaches a `Bridge` to `app.extensions["gatebridge"]`; `python app.py` starts it
next to the web server and `python -m gatebridge` runs it as a process of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
from flask import Flask
from gevent.pool import Group

log = logging.getLogger("propusk.gatebridge")


class Bridge:
    """Owns the bridge's greenlets: started once, stopped with the process."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.group = Group()
        self.tasks: list[Callable[[], None]] = []
        self.running = False
        self.service: object | None = None

    def add_task(self, task: Callable[[], None]) -> None:
        """Register a long-running function to run in its own greenlet once started."""
        self.tasks.append(task)
        if self.running:
            self._spawn(task)

    def _spawn(self, task: Callable[[], None]) -> None:
        greenlet = self.group.spawn(self._run, task)
        greenlet.link_exception(self._crashed)

    def _run(self, task: Callable[[], None]) -> None:
        with self.app.app_context():
            task()

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        log.error("gatebridge greenlet crashed", exc_info=greenlet.exc_info)

    def start(self) -> None:
        """Spawn every registered task."""
        if self.running:
            return
        self.running = True
        for task in self.tasks:
            self._spawn(task)

    def stop(self) -> None:
        """Kill the greenlets and wait for them to end."""
        self.running = False
        self.group.kill(timeout=5)


def init_app(app: Flask) -> None:
    """Attach the bridge; it stays off under tests unless a test starts it."""
    from gatebridge.service import BridgeService

    bridge = Bridge(app)
    bridge.service = BridgeService(app)
    bridge.add_task(bridge.service.run)
    app.extensions["gatebridge"] = bridge


def start(app: Flask) -> None:
    """Start the app's bridge when configured (GATEBRIDGE=1) and not testing."""
    if app.config.get("GATEBRIDGE") and not app.testing:
        app.extensions["gatebridge"].start()


def stop(app: Flask) -> None:
    """Stop the app's bridge."""
    app.extensions["gatebridge"].stop()
