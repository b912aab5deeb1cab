"""The queue's contract, held by both backends: the embedded SQLite file and Redis Streams.

Delivery and the operations API only know `Queue`; every promise they rely on is here, run
against each backend (Redis: a real redis-server with AOF, started for the session).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.queue.protocol import Envelope, Queue, ReplayFilter
from hubspot_relay.queue.redis_streams import RedisQueue
from hubspot_relay.queue.sqlite import SQLiteQueue
from tests.helpers import StillClock as Clock

pytestmark = pytest.mark.anyio


def env(mid: str, source: str = "web", user: str = "u1", received_at: float = 1.0) -> Envelope:
    return Envelope(source, mid, "track", f'{{"messageId":"{mid}"}}'.encode(), received_at, None, user)


Opener = Callable[..., Awaitable[Queue]]


@pytest.fixture(params=["sqlite", "redis"])
async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a queue of the backend under test; the same arguments reopen the same queue."""
    opened: list[Queue] = []
    prefix = f"t-{uuid.uuid4().hex[:10]}"

    async def open_queue(clock: Clock, *, appends: bool = True, **kw: Any) -> Queue:
        q: Queue
        if request.param == "sqlite":
            q = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock, **kw)
        else:
            server = request.getfixturevalue("redis_server")
            q = RedisQueue(server.url, prefix=prefix, clock=clock, **kw)
        await q.open(appends=appends)
        opened.append(q)
        return q

    yield open_queue
    for q in opened:
        await q.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def queue(make_queue: Opener, clock: Clock) -> Queue:
    return await make_queue(clock)


async def test_append_is_idempotent_per_source_and_message_id(queue: Queue) -> None:
    assert await queue.append([env("a"), env("b")]) == 2
    assert await queue.append([env("b"), env("c")]) == 1  # a client retry repeats "b"
    assert await queue.append([env("a", source="other")]) == 1  # same id, other source: distinct
    counts = await queue.counts()
    assert (counts["web"].queued, counts["other"].queued) == (3, 1)


async def test_one_users_messages_lease_in_order(queue: Queue) -> None:
    await queue.append([env(f"m{i}") for i in range(5)])
    first = await queue.lease(3, lease_seconds=30)
    assert [m.message_id for m in first] == ["m0", "m1", "m2"]
    assert all(m.attempts == 1 for m in first)
    second = await queue.lease(10, lease_seconds=30)
    assert [m.message_id for m in second] == ["m3", "m4"]  # leased ones stay hidden
    await queue.ack([m.id for m in first])
    counts = (await queue.counts())["web"]
    assert (counts.queued, counts.in_flight, counts.delivered) == (0, 2, 3)
    await queue.ack([m.id for m in first])  # acking twice counts once
    assert (await queue.counts())["web"].delivered == 3


async def test_many_users_are_all_leased_each_in_order(queue: Queue) -> None:
    await queue.append([env(f"m{i}", user=f"u{i % 7}") for i in range(70)])
    leased = []
    while batch := await queue.lease(9, 30):
        leased += batch
    assert sorted(m.message_id for m in leased) == sorted(f"m{i}" for i in range(70))
    for u in range(7):
        mine = [int(m.message_id[1:]) for m in leased if int(m.message_id[1:]) % 7 == u]
        assert mine == sorted(mine)


async def test_a_handed_back_message_keeps_its_place(queue: Queue) -> None:
    await queue.append([env(f"m{i}") for i in range(3)])
    leased = await queue.lease(2, 30)
    await queue.release([leased[0].id])  # m0 waits for a batch in flight; m1 is still leased
    await queue.ack([leased[1].id])
    await queue.append([env("m3")])
    assert [m.message_id for m in await queue.lease(10, 30)] == ["m0", "m2", "m3"]


async def test_release_hands_a_lease_back_without_counting_the_attempt(queue: Queue) -> None:
    await queue.append([env("a"), env("b")])
    leased = await queue.lease(10, 60)
    await queue.release([m.id for m in leased])
    again = await queue.lease(10, 60)
    assert [m.attempts for m in again] == [1, 1]
    assert (await queue.counts())["web"].in_flight == 2


async def test_expired_lease_is_visible_again(queue: Queue, clock: Clock) -> None:
    await queue.append([env("m")])
    (leased,) = await queue.lease(1, lease_seconds=30)
    assert await queue.lease(1, lease_seconds=30) == []
    clock.now += 31  # the worker hung without acking
    (again,) = await queue.lease(1, lease_seconds=30)
    assert (again.id, again.attempts) == (leased.id, 2)


async def test_retry_waits_then_returns(queue: Queue, clock: Clock) -> None:
    await queue.append([env("m")])
    (leased,) = await queue.lease(1, 30)
    await queue.retry([leased.id], delay_seconds=60, error="HubSpot 502")
    counts = (await queue.counts())["web"]
    assert (counts.retrying, counts.in_flight) == (1, 0)
    assert await queue.lease(1, 30) == []
    clock.now += 61
    (again,) = await queue.lease(1, 30)
    assert (again.message_id, again.attempts) == ("m", 2)
    assert (await queue.counts())["web"].retrying == 0


async def test_lease_filters_by_source(queue: Queue) -> None:
    await queue.append([env("a", "web"), env("b", "server"), env("c", "web")])
    assert [m.message_id for m in await queue.lease(10, 30, sources=["server"])] == ["b"]


async def test_dead_letters_and_replay(queue: Queue) -> None:
    await queue.append([env("a"), env("b"), env("c", source="server")])
    leased = await queue.lease(10, 30)
    by_id = {m.message_id: m.id for m in leased}
    await queue.dead_letter([by_id["a"]], "PROPERTY_DOESNT_EXIST: favorite_color")
    await queue.dead_letter([by_id["b"], by_id["c"]], "403 custom events need Enterprise")
    assert (await queue.counts())["web"].dead == 2
    dead = await queue.dead_letters(filter=ReplayFilter(reason_contains="property_doesnt"))
    assert [d.message_id for d in dead] == ["a"]
    assert dead[0].reason.startswith("PROPERTY_DOESNT_EXIST")
    assert dead[0].attempts == 1 and dead[0].body == b'{"messageId":"a"}'
    assert await queue.replay(ReplayFilter(source="server")) == 1
    assert await queue.replay(ReplayFilter(message_ids=["a"])) == 1
    again = await queue.lease(10, 30)
    assert sorted(m.message_id for m in again) == ["a", "c"]
    assert all(m.attempts == 1 for m in again)
    assert await queue.replay() == 1  # "b" is the last dead letter
    assert (await queue.counts())["web"].dead == 0


async def test_concurrent_appends_all_stored_once(queue: Queue) -> None:
    results = await asyncio.gather(*(queue.append([env(f"m{i}"), env("same")]) for i in range(100)))
    assert sum(results) == 101
    assert (await queue.counts())["web"].queued == 101


async def test_survives_reopen(make_queue: Opener, clock: Clock) -> None:
    q = await make_queue(clock)
    await q.append([env("a"), env("b")])
    await q.close()
    q2 = await make_queue(clock)
    assert [m.message_id for m in await q2.lease(10, 30)] == ["a", "b"]


async def test_dedupe_is_bounded(make_queue: Opener, clock: Clock) -> None:
    q = await make_queue(clock, dedupe_window=3)
    await q.append([env(f"m{i}") for i in range(5)])
    assert await q.append([env("m4"), env("m2")]) == 0  # the newest three are remembered
    assert await q.append([env("m0")]) == 1  # past the window: stored again


async def test_pending_counts_and_oldest_queued(queue: Queue) -> None:
    await queue.append([env("a", received_at=5.0), env("b", received_at=7.0), env("c", source="app")])
    (m, *_) = await queue.lease(1, 60, sources=["web"])  # "a": one user's messages come in order
    await queue.ack([m.id])
    assert await queue.pending_counts() == {"web": 1, "app": 1}
    counts = await queue.counts()
    assert counts["web"].oldest_queued_at == 7.0


async def test_recent_shows_the_newest_with_their_state(queue: Queue) -> None:
    await queue.append([env("a"), env("b"), env("c")])
    leased = await queue.lease(2, 60)
    await queue.dead_letter([leased[0].id], "refused")
    await queue.retry([leased[1].id], 60, "HubSpot 503")
    rows = await queue.recent(10)
    assert [(r[0], r[2], r[3]) for r in rows[:3]] == [
        ("c", 0, None),
        ("b", 2, "HubSpot 503"),
        ("a", 4, "refused"),
    ]


async def test_acks_are_counted_by_outcome_and_survive_reopen(make_queue: Opener, clock: Clock) -> None:
    q = await make_queue(clock)
    await q.append([env(f"m{i}", user=f"u{i}") for i in range(6)])
    leased = await q.lease(10, 60)
    ids = [m.id for m in leased]
    await q.ack(ids[:3])
    await q.ack(ids[3:5], outcome="skipped")
    await q.ack(ids[5:], outcome="waiting")
    with pytest.raises(ValueError):
        await q.ack(ids, outcome="lost")
    counts = (await q.counts())["web"]
    assert (counts.delivered, counts.skipped, counts.waiting, counts.queued) == (3, 2, 1, 0)
    await q.close()
    again = await make_queue(clock)
    counts = (await again.counts())["web"]
    assert (counts.delivered, counts.skipped, counts.waiting) == (3, 2, 1)
    assert await again.append([env("m0", user="u0")]) == 0  # still a duplicate, whatever its outcome


async def test_prune_forgets_only_old_delivered_messages(queue: Queue, clock: Clock) -> None:
    await queue.append([env("a", user="u1"), env("b", user="u2"), env("c", user="u3"), env("d", user="u4")])
    leased = {m.message_id: m for m in await queue.lease(10, lease_seconds=60)}
    await queue.ack([leased["a"].id, leased["b"].id])
    await queue.dead_letter([leased["c"].id], "refused")
    await queue.release([leased["d"].id])
    assert await queue.prune_delivered(3600) == 0  # nothing delivered that long ago
    clock.now += 7200
    assert 0 <= await queue.prune_delivered(3600) <= 2  # (Redis forgets a message as it is acked)
    counts = (await queue.counts())["web"]
    assert (counts.delivered, counts.dead, counts.queued) == (2, 1, 1)
    assert [m.message_id for m in await queue.lease(10, lease_seconds=60)] == ["d"]
    assert [d.message_id for d in await queue.dead_letters()] == ["c"]


async def test_a_reader_opens_without_appending(make_queue: Opener, clock: Clock) -> None:
    """What the CLI does with no relay running: read and replay, no writer started."""
    writer = await make_queue(clock)
    await writer.append([env("a")])
    (m,) = await writer.lease(10, lease_seconds=60)
    await writer.dead_letter([m.id], "refused")
    await writer.close()
    reader = await make_queue(clock, appends=False)
    assert (await reader.counts())["web"].dead == 1
    assert await reader.replay() == 1
    assert await reader.pending_counts() == {"web": 1}


async def test_erase_deletes_settled_messages_for_good(queue: Queue) -> None:
    """The right to be forgotten: a dead letter whose body matches is gone, counts with it; a
    queued or leased one is left to delivery (which skips a forgotten person's messages)."""
    await queue.append([env("a"), env("b"), env("c")])
    leased = {m.message_id: m.id for m in await queue.lease(2, 30)}  # a, b
    await queue.dead_letter([leased["a"]], "refused")
    await queue.ack([leased["b"]])
    erased = await queue.erase(lambda body: b'"a"' in body or b'"b"' in body or b'"c"' in body)
    assert sorted(erased)[0] == ("web", "a")
    assert ("web", "c") not in erased  # still queued: delivery's to settle
    assert (await queue.counts())["web"].dead == 0
    assert await queue.dead_letters() == []
    assert [m.message_id for m in await queue.lease(10, 30)] == ["c"]
