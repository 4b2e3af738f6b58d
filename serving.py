"""How Propusk's processes speak HTTP: gevent's WSGI server, made fair between connections.

`python app.py` serves with `server()`; several processes run gunicorn with `Worker`
(`gunicorn -k serving.Worker -w N wsgi:app`, docs/deploy.md). Both use gevent's pywsgi
with one change, `FairHandler`, and a listening socket with Nagle's algorithm off.

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
from typing import Any

import gevent
from gevent import pywsgi
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


def listener(port: int, host: str = "127.0.0.1") -> socket.socket:
    """The listening socket, with Nagle's algorithm off for every connection it accepts.

    gevent's server sends a response's headers and its body in two writes. With Nagle on,
    the body waits for the client's ACK of the headers, which the client delays (up to
    40 ms on Linux) while it waits for the rest of the response: every keep-alive
    request, a «Проверить» on the operator's phone too, paid that wait (bench/README.md).
    gunicorn sets the same option on its sockets.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class FairHandler(pywsgi.WSGIHandler):
    """pywsgi's handler, giving the event loop a turn between two requests of a connection."""

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if result is True:  # the connection stays open for its next request
            gevent.idle()
        return result


def server(port: int, app: Any, **kwargs: Any) -> pywsgi.WSGIServer:
    """gevent's WSGI server for one process on 127.0.0.1:`port`: the fair handler (unless
    `handler_class` says otherwise, as a bench comparing them does) on `listener`'s socket."""
    kwargs.setdefault("handler_class", FairHandler)
    return pywsgi.WSGIServer(listener(port), app, **kwargs)


class GunicornHandler(FairHandler, PyWSGIHandler):
    """gunicorn's pywsgi handler (its access log, its environ), fair between connections."""


class Worker(GeventPyWSGIWorker):
    """gunicorn's gevent worker on pywsgi, with the fair handler: `-k serving.Worker`.

    gunicorn's plain `-k gevent` worker has its own keep-alive loop with the same habit and
    no way to change it, so the several-process topology uses this one.
    """

    wsgi_handler = GunicornHandler
