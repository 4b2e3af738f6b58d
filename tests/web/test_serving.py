"""serving.py: the HTTP server of `python app.py` and of gunicorn's workers."""

from __future__ import annotations

import socket
import sys

import pytest

from tests.server import ROOT, _serving, free_port

# A WSGI app that numbers the requests its process answers, each taking a few milliseconds:
# served by serving.server in one process (as `python app.py` does), or by gunicorn with
# serving.Worker (docs/deploy.md).
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
ONE_PROCESS = """
from gevent import monkey; monkey.patch_all()
import os, sys
sys.path[:0] = [os.environ["APP_DIR"], os.environ["ROOT"]]
import serving
from numbering import app
serving.server(int(os.environ["PORT"]), app, log=None).serve_forever()
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


def _responses(sock: socket.socket, count: int, buffer: bytearray) -> list[int]:
    """Read `count` responses of the numbering app from a kept-alive connection."""
    numbers = []
    while len(numbers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(buffer[:head_end]).decode("latin-1").lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            end = head_end + 4 + length
            if len(buffer) >= end:
                numbers.append(int(buffer[head_end + 4:end]))
                del buffer[:end]
                continue
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    return numbers


@pytest.mark.slow
@pytest.mark.parametrize("topology", ["one process", "gunicorn"])
def test_a_connection_with_queued_requests_lets_a_new_one_in(tmp_path, topology):
    # A phone that sent several requests at once (or a busy client on a kept-alive
    # connection) used to be served to the end of its queue before the server accepted
    # anyone else: pywsgi read the next request without giving the event loop a turn.
    (tmp_path / "numbering.py").write_text(NUMBERING_APP)
    (tmp_path / "one_process.py").write_text(ONE_PROCESS)
    port = free_port()
    if topology == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "-k", "serving.Worker", "-w", "1",
                   "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path),
                   "--pythonpath", str(ROOT), "numbering:app"]
    else:
        command = [sys.executable, str(tmp_path / "one_process.py")]
    instance = tmp_path / "instance"
    instance.mkdir()
    queued = 100
    with _serving(command, instance, port, "numbering", {"APP_DIR": str(tmp_path), "ROOT": str(ROOT), "PORT": str(port)}, 5):
        busy = socket.create_connection(("127.0.0.1", port))
        busy_buffer = bytearray()
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: t\r\n\r\n" * queued)
        first = _responses(busy, 1, busy_buffer)[0]  # the server is now working the queue
        newcomer = socket.create_connection(("127.0.0.1", port))
        newcomer.sendall(b"GET /new HTTP/1.1\r\nHost: t\r\n\r\n")
        served_newcomer = _responses(newcomer, 1, bytearray())[0]
        rest = _responses(busy, queued - 1, busy_buffer)
        busy.close()
        newcomer.close()
    # Every queued request was answered, in order, on its connection...
    assert rest == sorted(rest) and len(rest) == queued - 1 and rest[0] > first
    # ...and the newcomer was served before the queue ran out, not after all of it.
    assert served_newcomer < rest[-1]
