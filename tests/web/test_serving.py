"""serving.py: the HTTP server of `python app.py` and of gunicorn's workers."""

from __future__ import annotations

import socket
import sys

import pytest

from tests.server import ROOT, _serving, free_port, running_app

# Counts what the server does when: run alone, with the cores to itself (`make test`).
pytestmark = pytest.mark.timing

# A WSGI app that numbers the requests its process answers, each taking a few milliseconds,
# for gunicorn with serving.Worker (docs/deploy.md).
NUMBERING_APP = """
import itertools, time
served = itertools.count(1)
def app(environ, start_response):
    number = next(served)
    busy_until = time.perf_counter() + 0.005
    while time.perf_counter() < busy_until:
        pass
    body = str(number).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def test_connections_are_accepted_with_nagle_off():
    # pywsgi writes headers and body separately: with Nagle on, each keep-alive response
    # would wait for the client's delayed ACK (serving.listener).
    from serving import listener

    port = free_port()
    server = listener(port)
    try:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        accepted.close()
        client.close()
    finally:
        server.close()


def _responses(sock: socket.socket, count: int, buffer: bytearray, head: bool = False,
               wait: bool = True) -> list[bytes]:
    """The bodies of the next `count` responses on a kept-alive connection (no bodies for
    HEAD requests); without `wait`, only of those already received, up to `count`."""
    bodies: list[bytes] = []
    while len(bodies) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            headers = bytes(buffer[:head_end]).decode("latin-1").lower()
            length = 0 if head else int(headers.split("content-length:")[1].split("\r\n")[0])
            end = head_end + 4 + length
            if len(buffer) >= end:
                bodies.append(bytes(buffer[head_end + 4:end]))
                del buffer[:end]
                continue
        if not wait:
            sock.setblocking(False)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                return bodies
            finally:
                sock.setblocking(True)
        else:
            chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    return bodies


def _numbers(sock: socket.socket, count: int, buffer: bytearray) -> list[int]:
    return [int(body) for body in _responses(sock, count, buffer)]


@pytest.mark.slow
def test_a_connection_with_queued_requests_lets_a_new_one_in(tmp_path):
    # A phone that sent several requests at once (or a busy client on a kept-alive
    # connection) used to be served to the end of its queue before the server accepted
    # anyone else: pywsgi read the next request without giving the event loop a turn.
    (tmp_path / "numbering.py").write_text(NUMBERING_APP)
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "serving.Worker", "-w", "1",
               "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path),
               "--pythonpath", str(ROOT), "numbering:app"]
    instance = tmp_path / "instance"
    instance.mkdir()
    queued = 100
    with _serving(command, instance, port, "numbering", {}, 5):
        busy = socket.create_connection(("127.0.0.1", port))
        busy_buffer = bytearray()
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * queued)
        first = _numbers(busy, 1, busy_buffer)[0]  # the server is now working the queue
        newcomer = socket.create_connection(("127.0.0.1", port))
        newcomer.sendall(b"GET /new HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        served_newcomer = _numbers(newcomer, 1, bytearray())[0]
        rest = _numbers(busy, queued - 1, busy_buffer)
        busy.close()
        newcomer.close()
    # Every queued request was answered, in order, on its connection...
    assert rest == sorted(rest) and len(rest) == queued - 1 and rest[0] > first
    # ...and the newcomer was served before the queue ran out, not after all of it.
    assert served_newcomer < rest[-1]


@pytest.mark.slow
def test_python_app_py_serves_a_newcomer_before_a_busy_connection_s_queue(tmp_path):
    # The same property through `python app.py` itself (it must build its server with
    # serving.server). HEAD requests keep the queued answers small enough to wait in the
    # socket buffers: a server blocked on a full buffer would yield and hide the bug.
    queued = 50
    with running_app(tmp_path / "instance") as base:
        port = int(base.rsplit(":", 1)[1])
        busy = socket.create_connection(("127.0.0.1", port))
        busy_buffer = bytearray()
        busy.sendall(b"HEAD /offline HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * queued)
        _responses(busy, 1, busy_buffer, head=True)  # the server is now working the queue
        newcomer = socket.create_connection(("127.0.0.1", port))
        newcomer.sendall(b"HEAD /offline HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _responses(newcomer, 1, bytearray(), head=True)
        # What of the queue had been answered when the newcomer got its answer.
        answered = len(_responses(busy, queued - 1, busy_buffer, head=True, wait=False))
        rest = len(_responses(busy, queued - 1 - answered, busy_buffer, head=True))
        busy.close()
        newcomer.close()
    assert answered + rest == queued - 1
    assert answered < queued - 1


def test_a_busy_web_side_leaves_the_loop_a_turn_every_few_requests():
    # `python app.py` runs the gatebridge in the same event loop as the web requests, and
    # the bridge must write a decision within 50 ms of reading an event (GATE_PROTOCOL.md).
    # Thirty busy connections (eight requests queued on each, 2 ms of work per request)
    # must not make a sleeping greenlet (the bridge waiting for a controller's answer)
    # wait behind one request of every connection: a turn of the loop starts requests only
    # for serving.TURN_BUDGET_S. The server is `python app.py`'s (serving.server): with
    # FairHandler alone 25-27 requests started between the sleeper's due time and its
    # waking; with pywsgi's stock handler, over 90.
    import bisect
    import time

    import gevent
    from gevent import socket as gsocket

    from serving import TURN_BUDGET_S, server

    started: list[float] = []

    def app(environ, start_response):
        started.append(time.perf_counter())
        busy_until = time.perf_counter() + 0.002
        while time.perf_counter() < busy_until:
            pass
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    port = free_port()
    web = server(port, app, log=None)
    web.start()
    running = True

    def client() -> None:
        sock = gsocket.create_connection(("127.0.0.1", port))
        buffer = bytearray()
        while running:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 8)
            _responses(sock, 8, buffer)
        sock.close()

    clients = [gevent.spawn(client) for _ in range(30)]
    try:
        gevent.sleep(0.2)
        overtaking = []
        for _ in range(40):
            due = time.perf_counter() + 0.01
            gevent.sleep(0.01)
            woke = time.perf_counter()
            overtaking.append(bisect.bisect(started, woke) - bisect.bisect(started, due))
    finally:
        running = False
        gevent.joinall(clients, timeout=10)
        web.stop()
    assert all(c.successful() for c in clients)
    # At most the turn's budget of requests, the one that began last, and the next
    # turn's share before the sleeper's timer: a handful, not one per connection.
    assert max(overtaking) <= 2 * (TURN_BUDGET_S / 0.002 + 1) + 1, overtaking


def test_gunicorn_s_workers_stay_without_turns():
    # The bridge runs inside `python app.py` only; gunicorn's workers are web-only, and a
    # queue per turn would cost them throughput for nothing (bench/README.md).
    from serving import FairHandler, GunicornHandler, TurnHandler

    assert issubclass(GunicornHandler, FairHandler)
    assert not issubclass(GunicornHandler, TurnHandler)
