"""At most so many HubSpot calls out at once for an account, whatever batch they belong to.

Batches are pipelined (`pipeline_depth`), so a limit per batch would let two batches put twice
`max_in_flight` calls out; and the limit changes while running (relay processes sharing a budget
share it, and they come and go), which `asyncio.Semaphore` cannot follow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from types import TracebackType


class CallGate:
    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit
        self.out = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        while self.out >= max(1, self.limit()):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the slot is someone else's
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.out += 1

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.out -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
