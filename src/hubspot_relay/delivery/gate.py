"""At most so many HubSpot calls out at once for an account, whatever batch they belong to.

Batches are pipelined (`pipeline_depth`), so a limit per batch would let two batches put twice
`max_in_flight` calls out; and the limit changes while running (relay processes sharing a budget
share it, and they come and go), which `asyncio.Semaphore` cannot follow.

A call that hangs gives its place up (`Slot.give_up`): it is not using HubSpot's capacity, and
with a few percent of calls hanging for the request timeout they would otherwise hold every
place and stop the account's delivery.
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

    def slot(self) -> Slot:
        """A place to be held with `async with`, that a hung call can give up before it ends."""
        return Slot(self)

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


class Slot:
    def __init__(self, gate: CallGate) -> None:
        self.gate = gate
        self.held = False

    async def __aenter__(self) -> Slot:
        await self.gate.__aenter__()
        self.held = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.give_up()

    def give_up(self) -> None:
        if self.held:
            self.held = False
            self.gate.out -= 1
            self.gate._wake()
