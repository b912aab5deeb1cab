"""The account's call gate: a limit over every batch in flight, one that may change while
running, and no slot lost to a cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from hubspot_relay.delivery.gate import CallGate

pytestmark = pytest.mark.anyio


async def test_never_more_than_the_limit_out_from_several_batches() -> None:
    gate = CallGate(lambda: 3)
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with gate:
            peak = max(peak, gate.out)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(call() for _ in range(20)), *(call() for _ in range(20)))  # two batches
    assert (peak, gate.out) == (3, 0)


async def test_a_lower_limit_is_followed_once_calls_come_back() -> None:
    limit = 4
    gate = CallGate(lambda: limit)
    seen: list[int] = []

    async def call() -> None:
        async with gate:
            seen.append(gate.out)
            await asyncio.sleep(0.01)

    first = [asyncio.create_task(call()) for _ in range(4)]
    await asyncio.sleep(0)
    limit = 1  # two processes joined the budget
    await asyncio.gather(*first, *(call() for _ in range(5)))
    assert max(seen[:4]) == 4 and max(seen[4:]) == 1


async def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    gate = CallGate(lambda: 1)
    release = asyncio.Event()

    async def call() -> None:
        async with gate:
            await release.wait()

    holder = asyncio.create_task(call())
    waiters = [asyncio.create_task(call()) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves and wakes the first waiter...
    waiters[0].cancel()  # ...which is cancelled before it runs: the slot goes to the next
    await asyncio.wait_for(asyncio.gather(holder, *waiters[1:]), 1)
    assert gate.out == 0
