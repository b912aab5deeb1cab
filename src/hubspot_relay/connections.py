"""Connection limits for uvicorn: slow or greedy clients cannot exhaust the relay.

uvicorn bounds an idle keep-alive connection but not the time a client may take to send its
request headers, nor how many connections one peer may hold: 21,000 half-sent requests once held
their sockets for minutes and starved `/health` and ingest. This protocol (uvicorn's httptools
one, with three checks added) closes a connection whose headers have not all arrived within
`header_timeout` seconds, and refuses connections beyond `max_connections` in all or
`max_per_peer` from one address (trusted proxies are exempt: every client comes through them).
Ingest bounds a body's arrival itself once it has started (answering 408); a request whose body
never starts is closed a second after `body_timeout`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger("hubspot_relay.connections")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 10_000
    max_per_peer: int = 256
    exempt: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """An httptools protocol class for `uvicorn.run(http=...)` that enforces `limits`."""
    per_peer: dict[str, int] = {}

    def exempt(peer: str) -> bool:
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in limits.exempt)

    class GuardedProtocol(HttpToolsProtocol):
        _peer: str | None = None
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self.client[0] if self.client else ""
            if len(self.connections) > limits.max_connections or (
                per_peer.get(peer, 0) >= limits.max_per_peer and not exempt(peer)
            ):
                transport.abort()  # connection_lost follows; nothing was counted for this one
                return
            self._peer = peer
            per_peer[peer] = per_peer.get(peer, 0) + 1
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._peer is not None:
                left = per_peer.get(self._peer, 1) - 1
                if left > 0:
                    per_peer[self._peer] = left
                else:
                    per_peer.pop(self._peer, None)
                self._peer = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # the next request on a kept-alive connection
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            # A backstop for a body that never starts: ingest times a body that is under way
            # itself (and answers 408); this closes a request that sends nothing after its headers.
            self._header_timer = self.loop.call_later(limits.body_timeout + 1.0, self._body_too_slow)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _body_too_slow(self) -> None:
            self._header_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_started and self.transport is not None:
                self.transport.abort()

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport is not None and not self.transport.is_closing():
                self.transport.abort()

    return GuardedProtocol


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    return {"http": guarded_protocol(limits), "timeout_keep_alive": 5}
