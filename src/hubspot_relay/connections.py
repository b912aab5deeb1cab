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


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """An httptools protocol class for `uvicorn.run(http=...)` that enforces `limits`.

    Deadlines are plain numbers on each connection, checked by one sweep every SWEEP_SECONDS
    while connections are open, rather than a timer armed and cancelled for every request.
    """
    per_peer: dict[str, int] = {}
    live: set[GuardedProtocol] = set()
    # Connections with no request in hand, longest waiting first (a dict keeps insertion order):
    # the first is closed when a new connection finds the cap reached.
    waiting: dict[GuardedProtocol, None] = {}
    sweeper: list[asyncio.TimerHandle] = []

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        sweeper.clear()
        now = loop.time()
        for conn in [c for c in live if c._deadline is not None and c._deadline <= now]:
            conn._expire()
        if live:
            sweeper.append(loop.call_later(SWEEP_SECONDS, sweep, loop))

    class GuardedProtocol(HttpToolsProtocol):
        _peer: str | None = None
        _deadline: float | None = None
        _waiting_for: str = "headers"

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self.client[0] if self.client else ""
            if per_peer.get(peer, 0) >= limits.max_per_peer and not in_networks(peer, limits.exempt):
                transport.abort()  # connection_lost follows; nothing was counted for this one
                return
            if len(live) >= limits.max_connections and not _make_room():
                transport.abort()  # every connection is busy with a request: this one waits its turn
                return
            self._peer = peer
            per_peer[peer] = per_peer.get(peer, 0) + 1
            live.add(self)
            if not sweeper:
                sweeper.append(self.loop.call_later(SWEEP_SECONDS, sweep, self.loop))
            self._expect("headers", limits.header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        def _forget(self) -> None:
            """No longer counted (closed, or being closed to make room)."""
            self._deadline = None
            live.discard(self)
            waiting.pop(self, None)
            if self._peer is not None:
                left = per_peer.get(self._peer, 1) - 1
                if left > 0:
                    per_peer[self._peer] = left
                else:
                    per_peer.pop(self._peer, None)
                self._peer = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # the next request on a kept-alive connection
                self._expect("headers", limits.header_timeout)

        def on_headers_complete(self) -> None:
            # A backstop for a body that never starts: ingest times a body that is under way
            # itself (and answers 408); this closes a request that sends nothing after its headers.
            self._expect("body", limits.body_timeout + 1.0)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._deadline = None
            waiting.pop(self, None)  # a whole request: busy, never closed to make room
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._peer is not None and not self.transport.is_closing():
                waiting[self] = None  # kept alive, idle: waits for a next request from now

        def _expect(self, what: str, seconds: float) -> None:
            self._waiting_for = what
            self._deadline = self.loop.time() + seconds
            if self._peer is not None:
                waiting.pop(self, None)
                waiting[self] = None

        def _expire(self) -> None:
            self._deadline = None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            body_never_came = self.cycle is not None and not self.cycle.response_started
            if self._waiting_for == "headers" or body_never_came:
                transport.abort()

    def _make_room() -> bool:
        """Close the connection that has waited longest without a whole request; False when
        every connection has one in hand."""
        for conn in waiting:
            waiting.pop(conn)
            conn._forget()
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.abort()
            EVICTED.inc()
            return True
        return False

    return GuardedProtocol


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn's settings for the relay. Its own proxy-header handling is off: it believes
    `X-Forwarded-*` from loopback by default, before the relay can check `trusted_proxies`
    (see `access.py`, which reads them from trusted proxies only)."""
    return {"http": guarded_protocol(limits), "timeout_keep_alive": 5, "proxy_headers": False}
