"""Connection limits for uvicorn: slow or greedy clients cannot exhaust the relay.

uvicorn bounds an idle keep-alive connection but not the time a client may take to send its
request headers, nor how many connections one peer may hold: 21,000 half-sent requests once held
their sockets for minutes and starved `/health` and ingest. This protocol (uvicorn's httptools
one, with checks added) closes a connection whose headers have not all arrived within
`header_timeout` seconds, and refuses connections beyond `max_per_peer` from one address (trusted
proxies are exempt: every client comes through them). Ingest bounds a body's arrival itself once
it has started (answering 408); a request whose body never starts is closed a second after
`body_timeout`.

At `max_connections` in all, a new connection is not refused: the connection that has waited
longest without completing a request (for its headers, its body, or a next request on a kept-alive
connection) is closed to make room. Many addresses together can then fill the cap but not keep a
client out: a client that sends its request promptly is never the one waiting longest, while an
attacker's connection lives only until the next connection arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .access import Network, in_networks


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 10_000
    max_per_peer: int = 256
    exempt: Sequence[Network] = ()


EVICTED = Counter(
    "hubspot_relay_connections_evicted_total",
    "Connections closed at the connection cap to make room (they had waited longest without a request)",
)
SWEEP_SECONDS = 0.25  # how often deadlines are checked: a timer per request cost a tenth of one


class Guard:
    """What the connections of one server share: counts per peer, the live set, the order in
    which they have been waiting, and the sweep of deadlines.

    Deadlines are plain numbers on each connection, checked by one sweep every SWEEP_SECONDS
    while connections are open, rather than a timer armed and cancelled for every request.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.per_peer: dict[str, int] = {}
        self.live: set[GuardedProtocol] = set()
        # Connections with no request in hand, longest waiting first (a dict keeps insertion
        # order): the first is closed when a new connection finds the cap reached.
        self.waiting: dict[GuardedProtocol, None] = {}
        self.sweeper: asyncio.TimerHandle | None = None

    def admit(self, conn: GuardedProtocol, peer: str) -> bool:
        limits = self.limits
        if self.per_peer.get(peer, 0) >= limits.max_per_peer and not in_networks(peer, limits.exempt):
            return False
        if len(self.live) >= limits.max_connections and not self.make_room():
            return False  # every connection is busy with a request: this one waits its turn
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
        self.live.add(conn)
        if self.sweeper is None:
            self.sweeper = conn.loop.call_later(SWEEP_SECONDS, self.sweep, conn.loop)
        return True

    def forget(self, conn: GuardedProtocol, peer: str) -> None:
        self.live.discard(conn)
        self.waiting.pop(conn, None)
        left = self.per_peer.get(peer, 1) - 1
        if left > 0:
            self.per_peer[peer] = left
        else:
            self.per_peer.pop(peer, None)

    def wait(self, conn: GuardedProtocol) -> None:
        """`conn` waits for its client from now: last in line to be closed for room."""
        self.waiting.pop(conn, None)
        self.waiting[conn] = None

    def busy(self, conn: GuardedProtocol) -> None:
        self.waiting.pop(conn, None)

    def make_room(self) -> bool:
        """Close the connection that has waited longest without a whole request; False when
        every connection has one in hand."""
        for conn in self.waiting:
            conn.evict()
            EVICTED.inc()
            return True
        return False

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sweeper = None
        now = loop.time()
        for conn in [c for c in self.live if c._deadline is not None and c._deadline <= now]:
            conn._expire()
        if self.live:
            self.sweeper = loop.call_later(SWEEP_SECONDS, self.sweep, loop)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the checks of `Guard` (see `guarded_protocol`)."""

    guard: Guard
    _peer: str | None = None
    _deadline: float | None = None
    _waiting_for: str = "headers"

    # uvicorn's protocol narrows asyncio's BaseTransport to Transport; so must we
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else ""
        if not self.guard.admit(self, peer):
            transport.abort()  # connection_lost follows; nothing was counted for this one
            return
        self._peer = peer
        self._expect("headers", self.guard.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def _forget(self) -> None:
        """No longer counted (closed, or being closed to make room)."""
        self._deadline = None
        if self._peer is not None:
            self.guard.forget(self, self._peer)
            self._peer = None

    def evict(self) -> None:
        self._forget()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._expect("headers", self.guard.limits.header_timeout)

    def on_headers_complete(self) -> None:
        # A backstop for a body that never starts: ingest times a body that is under way
        # itself (and answers 408); this closes a request that sends nothing after its headers.
        self._expect("body", self.guard.limits.body_timeout + 1.0)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline = None
        self.guard.busy(self)  # a whole request: never closed to make room
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._peer is not None and not self.transport.is_closing():
            self.guard.wait(self)  # kept alive, idle: waits for a next request from now

    def _expect(self, what: str, seconds: float) -> None:
        self._waiting_for = what
        self._deadline = self.loop.time() + seconds
        if self._peer is not None:
            self.guard.wait(self)

    def _expire(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body_never_came = self.cycle is not None and not self.cycle.response_started
        if self._waiting_for == "headers" or body_never_came:
            transport.abort()


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """An httptools protocol class for `uvicorn.run(http=...)` that enforces `limits`; each
    class has its own `Guard` (one per server)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"guard": Guard(limits)})


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn's settings for the relay. Its own proxy-header handling is off: it believes
    `X-Forwarded-*` from loopback by default, before the relay can check `trusted_proxies`
    (see `access.py`, which reads them from trusted proxies only)."""
    return {"http": guarded_protocol(limits), "timeout_keep_alive": 5, "proxy_headers": False}
