"""Whether the queue's store takes writes: what `/health`, `/metrics`, `status` and the console say.

A relay that cannot store anything must not answer `/health` with 200: a load balancer would
keep sending it traffic that every ingest request then refuses. Ingest and delivery report what
they see as it happens (a failure of the store marks it down from that moment; a write that goes
through marks it up), and a probe writes one tiny value every few seconds, every second while the
store is down, so that the state recovers by itself when no traffic comes (a load balancer took
the relay out of rotation) and is noticed when none goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Gauge

from .errors import MACHINE_FAILURES

log = structlog.get_logger("hubspot_relay.health")

STORE_UP = Gauge("hubspot_relay_store_up", "1 while the queue's store takes writes, 0 while it does not")
STORE_DOWN_SECONDS = Gauge(
    "hubspot_relay_store_down_seconds", "How long the queue's store has not taken writes (0 while it does)"
)

PROBE_UP_S = 5.0
PROBE_DOWN_S = 1.0


class StoreHealth:
    def __init__(
        self,
        store: str,
        failures: tuple[type[BaseException], ...] = MACHINE_FAILURES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store  # as logs show it (a Redis URL without its password, a file's path)
        self.failures = failures
        self.clock = clock
        self.down_since: float | None = None
        self.error: str | None = None
        STORE_UP.set_function(lambda: 0.0 if self.down_since is not None else 1.0)
        STORE_DOWN_SECONDS.set_function(
            lambda: 0.0 if self.down_since is None else max(0.0, self.clock() - self.down_since)
        )

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, error: BaseException) -> bool:
        """Report what an operation on the store raised; True when it is the store's failure (not a
        message's or a bug's), which then marks the store down."""
        if not isinstance(error, self.failures):
            return False
        self.error = f"{type(error).__name__}: {error}"[:300]
        if self.down_since is None:
            self.down_since = self.clock()
            log.error("the queue's store cannot take writes", store=self.store, error=self.error)
        return True

    def answered(self) -> None:
        """A write went through: the store is up (again)."""
        if self.down_since is not None:
            log.warning(
                "the queue's store takes writes again",
                store=self.store,
                down_for_s=round(self.clock() - self.down_since, 1),
            )
            self.down_since = None
            self.error = None

    def report(self) -> dict[str, Any]:
        """For /health, the operations API and `status`."""
        if self.down_since is None:
            return {"name": self.store, "up": True}
        return {
            "name": self.store,
            "up": False,
            "since": datetime.fromtimestamp(self.down_since, UTC).isoformat().replace("+00:00", "Z"),
            "down_for_s": round(max(0.0, self.clock() - self.down_since), 1),
            "error": self.error,
        }

    async def probe(self, check: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(check(), timeout=PROBE_DOWN_S * 3)
        except TimeoutError:
            self.failed(ConnectionError(f"no answer in {PROBE_DOWN_S * 3:.0f} s"))
        except Exception as e:
            if not self.failed(e):
                log.warning("the store's probe failed", error=f"{type(e).__name__}: {e}"[:300])
        else:
            self.answered()

    async def watch(self, check: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """Probe the store until `stop`: every PROBE_UP_S, every PROBE_DOWN_S while it is down."""
        while not stop.is_set():
            await self.probe(check)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=PROBE_UP_S if self.up else PROBE_DOWN_S)
