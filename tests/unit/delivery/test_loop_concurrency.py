"""Several HubSpot calls in flight per account, and what must not change because of it: every
contact ends with its last value, lifecycle stages move forward in order, event batches go out
full (issue 10)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Harness, make

pytestmark = pytest.mark.anyio


class JitterTransport(httpx.AsyncBaseTransport):
    """The in-process sandbox, answering each call after a random few milliseconds (real time), so
    that concurrent calls finish in any order; it also counts the calls in flight."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seed: int) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.in_flight = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.02))
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


async def concurrent(tmp_path: Path, **options: Any) -> tuple[Harness, JitterTransport]:
    h = await make(tmp_path, **options)
    jitter = JitterTransport(h.transport.inner, seed=7)
    h.transport.inner = jitter
    return h, jitter


@pytest.fixture
async def hj(tmp_path: Path) -> AsyncIterator[tuple[Harness, JitterTransport]]:
    h, jitter = await concurrent(tmp_path, lease_batch=40, contact_batch=5, max_in_flight=8, flush_ms=0)
    yield h, jitter
    await h.queue.close()
    h.identity.close()


async def test_a_contact_updated_50_times_ends_with_its_last_value(
    hj: tuple[Harness, JitterTransport],
) -> None:
    h, jitter = hj
    messages = []
    for v in range(50):
        messages.append({"type": "identify", "userId": "ann@x.com", "traits": {"firstName": f"v{v}"}})
        for i in range(9):  # company for Ann in every call, so that batches run side by side
            messages.append({"type": "identify", "userId": f"o{v}-{i}@x.com", "traits": {"firstName": "o"}})
    for start in range(0, len(messages), 37):  # arriving between cycles, as they do
        await h.send(*messages[start : start + 37])
        await h.delivery.cycle()
    await h.drain()
    assert jitter.peak > 1, "no two calls were ever in flight together"
    assert (await h.contact("ann@x.com", "firstname"))["firstname"] == "v49"
    assert (await h.contact("o49-8@x.com", "firstname"))["firstname"] == "o"


async def test_lifecycle_stages_move_forward_in_order(hj: tuple[Harness, JitterTransport]) -> None:
    h, _ = hj
    stages = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
    for n, stage in enumerate(stages):
        batch = [{"type": "identify", "userId": "bo@x.com", "traits": {"lifecyclestage": stage}}]
        batch += [
            {"type": "identify", "userId": f"f{n}-{i}@x.com", "traits": {"lifecyclestage": "lead"}}
            for i in range(20)
        ]
        await h.send(*batch)
        await h.delivery.cycle()
    await h.drain()
    assert (await h.contact("bo@x.com", "lifecyclestage"))["lifecyclestage"] == "customer"
    assert not await h.queue.dead_letters()


async def test_event_batches_that_are_not_full_wait_for_the_next_cycle(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, lease_batch=600, flush_ms=0)
    try:
        await h.send(
            *(
                {
                    "type": "track",
                    "userId": f"u{i % 40}",
                    "event": "Step",
                    "properties": {"email": f"u{i % 40}@x.com"},
                }
                for i in range(1200)
            )
        )
        await h.drain()
        sends = h.calls().get("POST /events/2026-09/send/batch", 0)
        assert sends == 3  # 1,200 events, 500 a call: without waiting, 500+100, 500+100, 200 = 5
        portal = h.sandbox.portals["997086"]
        assert len(portal.events) == 1200
    finally:
        await h.queue.close()
        h.identity.close()


async def test_a_lone_partial_event_batch_waits_for_more_until_batch_wait_ms(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, flush_ms=0, batch_wait_ms=1000)
    try:
        await h.send({"type": "identify", "userId": "u1", "traits": {"email": "u1@x.com"}})
        await h.drain()
        await h.send(*({"type": "track", "userId": "u1", "event": "Step"} for _ in range(10)))
        await h.delivery.cycle()  # 10 events, just arrived: they wait for more
        assert h.calls().get("POST /events/2026-09/send/batch", 0) == 0
        await h.send(*({"type": "track", "userId": "u1", "event": "Step"} for _ in range(5)))
        h.clock.now += 1.01  # the oldest has waited batch_wait_ms: all 15 go, in one call
        await h.delivery.cycle()
        assert h.calls().get("POST /events/2026-09/send/batch", 0) == 1
        assert len(h.sandbox.portals["997086"].events) == 15
    finally:
        await h.queue.close()
        h.identity.close()


def upserts(h: Harness) -> int:
    return h.calls().get("POST /crm/objects/2026-09/contacts/batch/upsert", 0)


async def test_contacts_arriving_over_several_cycles_go_in_full_upsert_calls(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, flush_ms=250, batch_wait_ms=1000)
    try:
        for burst in range(5):  # 250 new contacts, 50 a cycle, a flush window apart
            await h.send(
                *(
                    {
                        "type": "identify",
                        "userId": f"u{burst}-{i}",
                        "traits": {"email": f"u{burst}-{i}@x.com"},
                    }
                    for i in range(50)
                )
            )
            await h.delivery.cycle()
            h.clock.now += 0.25
        assert upserts(h) == 2  # 100 + 100; the last 50 are younger than batch_wait_ms
        await h.drain()  # once they have waited it, they go
        assert upserts(h) == 3  # without waiting: one call a cycle, 5
        assert len(h.sandbox.portals["997086"].records["contacts"]) == 250
        assert not await h.queue.dead_letters()
    finally:
        await h.queue.close()
        h.identity.close()


async def test_a_contact_in_a_waiting_tail_keeps_its_order(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, flush_ms=250, batch_wait_ms=1000, contact_batch=5)
    try:
        first = [
            {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com"}} for i in range(4)
        ]
        first.append(
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@x.com", "firstName": "v1"}}
        )
        later = [  # Ann again, in the partial call that waits, then her event
            {"type": "identify", "userId": "bo", "traits": {"email": "bo@x.com"}},
            {"type": "identify", "userId": "ann", "traits": {"firstName": "v2"}},
            {"type": "track", "userId": "ann", "event": "Step"},
        ]
        await h.send(*first, *later)
        await h.delivery.cycle()
        assert upserts(h) == 1
        assert (await h.contact("ann@x.com", "firstname"))["firstname"] == "v1"
        await h.drain()
        assert (await h.contact("ann@x.com", "firstname"))["firstname"] == "v2"
        assert len(h.sandbox.portals["997086"].events) == 1
        counts = (await h.queue.counts())["web"]
        assert counts.delivered == 8 and counts.dead == 0
    finally:
        await h.queue.close()
        h.identity.close()


async def test_events_held_back_wait_with_the_young_contacts_behind_them(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, flush_ms=250, batch_wait_ms=1000, contact_batch=5)
    try:

        def identify(i: int) -> dict[str, Any]:
            return {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com"}}

        def track(i: int) -> dict[str, Any]:
            return {
                "type": "track",
                "userId": f"u{i}",
                "event": "Step",
                "properties": {"email": f"u{i}@x.com"},
            }

        await h.send(*(identify(i) for i in range(5)), *(track(i % 5) for i in range(10)))
        h.clock.now += 2  # those events are old now (they waited behind their contacts' calls)
        await h.send(identify(5), identify(6), track(5), track(6))  # young: a partial upsert call
        await h.delivery.cycle()
        assert upserts(h) == 1  # u0-u4; u5 and u6 wait for more
        assert h.calls().get("POST /events/2026-09/send/batch", 0) == 0  # the old events wait with them
        h.clock.now += 1.01
        await h.drain()
        assert h.calls().get("POST /events/2026-09/send/batch", 0) == 1  # all 12 in one call, not two
        assert len(h.sandbox.portals["997086"].events) == 12
    finally:
        await h.queue.close()
        h.identity.close()


async def test_a_backlog_leaves_its_partial_upsert_call_to_the_next_lease(tmp_path: Path) -> None:
    h, _ = await concurrent(tmp_path, lease_batch=120, batch_wait_ms=0)
    try:
        await h.send(
            *({"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com"}} for i in range(300))
        )
        await h.delivery.cycle()  # 120 leased (full: more is queued): 100 go, 20 lead the next lease
        assert upserts(h) == 1
        await h.drain()
        assert upserts(h) == 3  # 100 a call; cut at each lease's end, 5
        assert len(h.sandbox.portals["997086"].records["contacts"]) == 300
    finally:
        await h.queue.close()
        h.identity.close()


class HangingTransport(httpx.AsyncBaseTransport):
    """The in-process sandbox, except that a call carrying `needle` hangs until `release` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, needle: bytes) -> None:
        self.inner = inner
        self.needle = needle
        self.release = asyncio.Event()
        self.hanging = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if self.needle in body and not self.release.is_set():
            self.hanging.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


async def test_a_hung_call_delays_only_the_contacts_it_carries(tmp_path: Path) -> None:
    h = await make(tmp_path, lease_batch=5, contact_batch=1, flush_ms=20, pipeline_depth=2)
    hang = HangingTransport(h.transport.inner, b"stuck@x.com")
    h.transport.inner = hang
    stop = asyncio.Event()
    runner = asyncio.create_task(h.delivery.run(stop))
    try:
        await h.send({"type": "identify", "userId": "stuck@x.com", "traits": {"firstName": "first"}})
        await asyncio.wait_for(hang.hanging.wait(), 5)
        # While that call hangs: others' messages flow, and stuck@'s next ones wait their turn.
        await h.send({"type": "identify", "userId": "stuck@x.com", "traits": {"firstName": "second"}})
        for i in range(12):
            await h.send({"type": "identify", "userId": f"free{i}@x.com", "traits": {"firstName": f"f{i}"}})
        for _ in range(200):
            await asyncio.sleep(0.02)
            delivered = {
                mid for (mid,) in h.queue._db.execute("SELECT message_id FROM messages WHERE state = 3")
            }
            if len(delivered) >= 12:
                break
        assert (await h.contact("free11@x.com", "firstname"))["firstname"] == "f11"
        assert len(delivered) == 12, "the others waited for the hung call"
        hang.release.set()  # HubSpot answers at last
        for _ in range(200):
            await asyncio.sleep(0.02)
            counts = (await h.queue.counts())["web"]
            if counts.delivered == 14:
                break
        assert counts.delivered == 14 and counts.dead == 0
        assert (await h.contact("stuck@x.com", "firstname"))["firstname"] == "second"  # in order
    finally:
        hang.release.set()
        stop.set()
        await asyncio.wait_for(runner, 10)
        await h.queue.close()
        h.identity.close()


async def test_overlapping_batches_keep_each_contacts_order(tmp_path: Path) -> None:
    h, jitter = await concurrent(
        tmp_path, lease_batch=30, contact_batch=3, max_in_flight=8, flush_ms=5, pipeline_depth=3
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(h.delivery.run(stop))
    try:
        for v in range(50):
            await h.send(
                {"type": "identify", "userId": "ann@x.com", "traits": {"firstName": f"v{v}"}},
                *(
                    {"type": "identify", "userId": f"p{v}-{i}@x.com", "traits": {"firstName": "p"}}
                    for i in range(7)
                ),
            )
            await asyncio.sleep(0.003)
        for _ in range(500):
            await asyncio.sleep(0.02)
            if (await h.queue.counts())["web"].delivered == 400:
                break
        assert (await h.queue.counts())["web"].delivered == 400
        assert (await h.contact("ann@x.com", "firstname"))["firstname"] == "v49"
        assert jitter.peak > 1
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        await h.queue.close()
        h.identity.close()


async def test_pipelined_batches_share_the_accounts_calls_in_flight(tmp_path: Path) -> None:
    h, jitter = await concurrent(
        tmp_path, lease_batch=500, contact_batch=10, max_in_flight=3, pipeline_depth=2, flush_ms=5
    )
    stop = asyncio.Event()
    try:
        await h.send(
            *(
                {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com"}}
                for i in range(2000)
            )
        )
        runner = asyncio.create_task(h.delivery.run(stop))
        for _ in range(400):
            counts = (await h.queue.counts())["web"]
            if counts.delivered == 2000:
                break
            await asyncio.sleep(0.05)
        assert counts.delivered == 2000
        assert jitter.peak == 3  # two batches out at once, three calls between them (six before)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        await h.queue.close()
        h.identity.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_pipelined_backlog_about_the_same_contacts_keeps_moving(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Every batch touches the same 20 contacts: the batch leased after one that hands messages
    back must not hand everything back in turn (a livelock once seen on the Redis queue)."""
    factory = None
    if backend == "redis":
        from hubspot_relay.queue.redis_streams import RedisQueue

        url = request.getfixturevalue("redis_server").url
        prefix = f"t-{uuid.uuid4().hex[:10]}"
        factory = lambda clock: RedisQueue(url, prefix=prefix, clock=clock)  # noqa: E731
    h, _ = await concurrent(
        tmp_path,
        lease_batch=300,
        max_in_flight=8,
        flush_ms=5,
        pipeline_depth=2,
        batch_wait_ms=0,  # the harness's clock stands still
        queue_factory=factory,
    )
    stop = asyncio.Event()
    try:
        await h.send(
            *({"type": "identify", "userId": f"c{i}@x.com", "traits": {"firstName": "A"}} for i in range(20))
        )
        await h.send(
            *(
                {
                    "type": "track",
                    "userId": f"c{i % 20}",
                    "event": "Step",
                    "properties": {"email": f"c{i % 20}@x.com"},
                }
                for i in range(3000)
            )
        )
        runner = asyncio.create_task(h.delivery.run(stop))
        for _ in range(1500):
            await asyncio.sleep(0.02)
            if (await h.queue.counts())["web"].delivered == 3020:
                break
        assert (await h.queue.counts())["web"].delivered == 3020
        assert len(h.sandbox.portals["997086"].events) == 3000
        stop.set()
        await asyncio.wait_for(runner, 10)
    finally:
        stop.set()
        await h.queue.close()
        h.identity.close()


async def test_a_message_is_acked_as_soon_as_its_call_goes_through(tmp_path: Path) -> None:
    """Not when its whole batch is settled: a crash then redoes only what HubSpot did not get."""
    h = await make(tmp_path, contact_batch=1, flush_ms=5)
    hang = HangingTransport(h.transport.inner, b"slow@x.com")
    h.transport.inner = hang
    await h.send(
        {"type": "identify", "userId": "slow@x.com", "traits": {"firstName": "S"}, "messageId": "slow"},
        {"type": "identify", "userId": "quick@x.com", "traits": {"firstName": "Q"}, "messageId": "quick"},
    )
    cycle = asyncio.create_task(h.delivery.cycle())
    try:
        await asyncio.wait_for(hang.hanging.wait(), 5)
        for _ in range(200):
            states = dict(h.queue._db.execute("SELECT message_id, state FROM messages").fetchall())
            if states["quick"] == 3:
                break
            await asyncio.sleep(0.01)
        assert states == {"quick": 3, "slow": 1}  # the batch is still in flight
        hang.release.set()
        await asyncio.wait_for(cycle, 10)
        assert (await h.queue.counts())["web"].delivered == 2
    finally:
        hang.release.set()
        await h.queue.close()
        h.identity.close()
