"""The connection cap's eviction order, on a real uvicorn server: at the cap a new connection
closes the one that has waited longest without a whole request (for headers, a body, or a next
request), never one whose request is being answered; with every connection busy, the new one is
refused. (Many addresses at once: tests/e2e/test_connection_flood.py.)"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hubspot_relay.connections import ConnectionLimits, uvicorn_options
from tests.helpers import free_port

PARTIAL = b"GET /ok HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
def server() -> Iterator[tuple[int, threading.Event]]:
    release = threading.Event()

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.to_thread(release.wait, 30)  # answered once the test lets it
        return PlainTextResponse("done")

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow), Route("/ok", ok)])
    port = free_port()
    limits = ConnectionLimits(header_timeout=30, max_connections=4, max_per_peer=100)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="warning", **uvicorn_options(limits)
    )  # log_config=None: the test process's logging is left as other tests set it
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield port, release
    release.set()
    srv.should_exit = True
    thread.join(10)


def connect(port: int, send: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(send)
    time.sleep(0.05)  # the server has seen it (and counted it) before the next one comes
    return s


def closed(s: socket.socket) -> bool:
    s.settimeout(0.3)
    try:
        return s.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_the_longest_waiting_is_closed_and_a_busy_one_never(server: tuple[int, threading.Event]) -> None:
    port, release = server
    a = connect(port, PARTIAL)
    b = connect(port, PARTIAL)
    busy = connect(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    d = connect(port, PARTIAL)
    e = connect(port, PARTIAL)  # the cap (4) is reached: a, the longest waiting, makes room
    assert closed(a) and not closed(b)
    f = connect(port, PARTIAL)
    assert closed(b)
    g = connect(port, PARTIAL)
    assert closed(d) and not closed(busy)  # the busy one is skipped
    # a whole request on a fresh connection is answered, closing the longest waiting (e)
    fresh = connect(port, PARTIAL + b"\r\n")
    assert fresh.recv(1024).startswith(b"HTTP/1.1 200")
    assert closed(e) and not closed(f) and not closed(g)
    release.set()
    assert busy.recv(1024).startswith(b"HTTP/1.1 200")
    for s in (a, b, busy, d, e, f, g, fresh):
        s.close()


def test_with_every_connection_busy_a_new_one_is_refused(server: tuple[int, threading.Event]) -> None:
    port, release = server
    busy = [connect(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(4)]
    late = connect(port, PARTIAL + b"\r\n")
    assert closed(late)
    release.set()
    for s in busy:
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        s.close()
    late.close()
