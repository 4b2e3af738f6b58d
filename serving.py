"""How Propusk's processes speak HTTP: gevent's WSGI server, made fair between connections.

`python app.py` serves with `server()`; several processes run gunicorn with `Worker`
(`gunicorn -k serving.Worker -w N wsgi:app`, docs/deploy.md). Both use gevent's pywsgi
with `FairHandler` (`TurnHandler` in `python app.py`) and a listening socket with
Nagle's algorithm off.

Why the change: pywsgi serves a kept-alive connection in a loop, reading the next request
as soon as the last response is written. When that request has already arrived (a busy
client, a phone that sent two requests at once), the loop goes on without giving the event
loop a turn, so the other connections' requests, and new connections waiting to be
accepted, wait behind it. Under load a few connections were served back to back while
others waited seconds; with several worker processes, where gevent accepts one connection
per turn of the loop to spread them across processes, new connections waited up to three
seconds to be accepted (bench/README.md). Waiting for the loop to go idle between two
requests of one connection serves the connections in turn.
"""

from __future__ import annotations

import socket
import time
import weakref
from collections import deque
from typing import Any

import gevent
import gevent.socket
from gevent import pywsgi
from gevent.hub import Hub, Waiter
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


def listener(port: int, host: str = "127.0.0.1") -> gevent.socket.socket:
    """The listening socket, with Nagle's algorithm off for every connection it accepts.
    gevent's own socket, so that accepting never blocks the loop, monkey-patched or not
    (the tests run `server()` inside their own process).

    gevent's server sends a response's headers and its body in two writes. With Nagle on,
    the body waits for the client's ACK of the headers, which the client delays (up to
    40 ms on Linux) while it waits for the rest of the response: every keep-alive
    request, a «Проверить» on the operator's phone too, paid that wait (bench/README.md).
    gunicorn sets the same option on its sockets.
    """
    sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


# How long one turn of the event loop may spend starting web requests before the others
# wait for the next turn: a few checks. The bridge answers what it read after at most this
# (and the one request that started last), far inside the protocol's 50 ms.
TURN_BUDGET_S = 0.005


class Turns:
    """Web requests start while the loop's current turn has spent less than `budget`; the
    rest wait in arrival order for the next turns, each turn letting at least one go.

    Why: under load every busy connection had a request ready at each turn, and the loop
    ran them all (50 connections of 2 ms checks: 100 ms) before it looked at its sockets
    again. The gatebridge's greenlet, in the same process under `python app.py`, read an
    event and then waited that long to write the decision that GATE_PROTOCOL.md wants
    within 50 ms (bench/bridge_polls.py: 10-29 of ~67 writes late; none with turns).

    A check watcher marks the start of each turn: libev runs it right after polling the
    sockets, before the greenlets those wake. An idle watcher, which libev runs after them
    and only while requests wait, lets the queue go on.
    """

    def __init__(self, budget: float = TURN_BUDGET_S) -> None:
        self.budget = budget
        self.started = time.perf_counter()
        self._waiting: deque[Waiter] = deque()
        loop = gevent.get_hub().loop
        self._check = loop.check(ref=False)
        self._check.start(self._new_turn)
        self._idle = loop.idle(ref=False)

    def _new_turn(self) -> None:
        self.started = time.perf_counter()

    def wait(self) -> None:
        """Return when the calling greenlet may start its request: at once while the turn
        has time left and nobody waits, else after those before it."""
        if not self._waiting and time.perf_counter() - self.started < self.budget:
            return
        waiter = Waiter()
        self._waiting.append(waiter)
        if not self._idle.active:
            self._idle.start(self._release)
        waiter.get()

    def _release(self) -> None:
        # One at least, whatever the turn has already spent elsewhere: nobody starves.
        self._waiting.popleft().switch(None)
        while self._waiting and time.perf_counter() - self.started < self.budget:
            self._waiting.popleft().switch(None)
        if not self._waiting:
            self._idle.stop()


_TURNS: weakref.WeakKeyDictionary[Hub, Turns] = weakref.WeakKeyDictionary()


def turns() -> Turns:
    """The turns of this thread's event loop, shared by every server on it."""
    hub = gevent.get_hub()
    found = _TURNS.get(hub)
    if found is None:
        found = _TURNS[hub] = Turns()
    return found


class FairHandler(pywsgi.WSGIHandler):
    """pywsgi's handler, giving the event loop a turn between two requests of a connection."""

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if result is True:  # the connection stays open for its next request
            gevent.idle()
        return result


class TurnHandler(FairHandler):
    """The fair handler, starting a request only when the loop's turn has time for it
    (`Turns`): for `python app.py`, where the gatebridge shares the loop. Web-only
    processes (gunicorn's workers) do without: a queue per turn costs them a few per cent
    of throughput and protects nothing there."""

    def handle_one_response(self) -> Any:
        turns().wait()
        return super().handle_one_response()


def server(port: int, app: Any, **kwargs: Any) -> pywsgi.WSGIServer:
    """gevent's WSGI server for `python app.py` on 127.0.0.1:`port`: the turn handler (unless
    `handler_class` says otherwise, as a bench comparing them does) on `listener`'s socket."""
    kwargs.setdefault("handler_class", TurnHandler)
    return pywsgi.WSGIServer(listener(port), app, **kwargs)


class GunicornHandler(FairHandler, PyWSGIHandler):
    """gunicorn's pywsgi handler (its access log, its environ), fair between connections."""


class Worker(GeventPyWSGIWorker):
    """gunicorn's gevent worker on pywsgi, with the fair handler: `-k serving.Worker`.

    gunicorn's plain `-k gevent` worker has its own keep-alive loop with the same habit and
    no way to change it, so the several-process topology uses this one.
    """

    wsgi_handler = GunicornHandler
