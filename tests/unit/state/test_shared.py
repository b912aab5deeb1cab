"""What relay processes share through Redis, tested as several processes would use it (several
clients on one real redis-server): partitions, the rate budget, the identity map."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from hubspot_relay.errors import DailyLimitReached
from hubspot_relay.queue.partitions import Ownership, owner_of
from hubspot_relay.queue.protocol import Envelope
from hubspot_relay.queue.redis_streams import RedisQueue
from hubspot_relay.state.redis_identity import RedisIdentityMap
from hubspot_relay.state.shared_limiter import SharedLimiter
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


# ---- partitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("members", [["a"], ["a", "b"], ["a", "b", "c"], [f"m{i}" for i in range(7)]])
def test_rendezvous_gives_every_partition_one_owner_and_moves_little(members: list[str]) -> None:
    owners = [owner_of(p, members) for p in range(64)]
    assert set(owners) <= set(members)
    if len(members) > 1:  # one member leaves: only its partitions move
        rest = members[1:]
        for p in range(64):
            if owners[p] != members[0]:
                assert owner_of(p, rest) == owners[p]


async def _processes(
    url: str, prefix: str, names: list[str], clock: Any = time.time, ttl_s: float = 6.0
) -> list[Ownership]:
    out = []
    for name in names:
        q = RedisQueue(url, prefix=prefix, consumer=name, clock=clock)
        await q.open()
        out.append(Ownership(q, clock=clock, ttl_s=ttl_s))
    return out


async def test_partitions_are_shared_out_and_move_when_a_process_dies(
    redis_server: RedisServer, prefix: str
) -> None:
    a, b, c = await _processes(redis_server.url, prefix, ["a", "b", "c"], ttl_s=0.5)
    try:
        for _ in range(2):
            for o in (a, b, c):
                await o.beat()
        owned = [o.queue.owned or set() for o in (a, b, c)]
        assert set().union(*owned) == set(range(16))
        assert sum(len(x) for x in owned) == 16  # disjoint
        # c is killed -9: it stops beating; after the time to live its partitions are free
        for _ in range(2):
            await a.beat()
            await b.beat()
        await asyncio.sleep(0.6)
        for _ in range(2):
            for o in (a, b):
                await o.beat()
        assert (a.queue.owned or set()) | (b.queue.owned or set()) == set(range(16))
        assert not (a.queue.owned or set()) & (b.queue.owned or set())
    finally:
        for o in (a, b, c):
            await o.queue.close()


async def test_a_process_whose_connections_closed_is_replaced_within_two_beats(
    redis_server: RedisServer, prefix: str
) -> None:
    """kill -9 closes a process's sockets: the others take its partitions (and reclaim its leases)
    without waiting for the time to live."""
    a, b, c = await _processes(redis_server.url, prefix, ["a", "b", "c"], ttl_s=600)
    try:
        for _ in range(2):
            for o in (a, b, c):
                await o.beat()
        await c.queue.append(
            [Envelope("web", f"m{i}", "track", b"{}", 1.0, None, f"u{i}") for i in range(64)]
        )
        leased = await c.queue.lease(1000, 900)
        assert leased and {m.id % 64 for m in leased} <= (c.queue.owned or set())
        await a.beat()
        assert a.members == ["a", "b", "c"]  # alive: seen at every beat
        await c.queue.close()  # what the kernel does for a process killed with -9
        await a.beat()
        assert "c" in a.members  # not gone after one beat (it may be reconnecting)
        await a.beat()
        await b.beat()
        assert a.members == ["a", "b"]
        await a.beat()
        assert (a.queue.owned or set()) | (b.queue.owned or set()) == set(range(16))
        again = await a.queue.lease(1000, 900) + await b.queue.lease(1000, 900)
        assert {m.id for m in leased} <= {m.id for m in again}  # c's leases, visible again
    finally:
        for o in (a, b, c):
            await o.queue.close()


async def test_a_partition_is_handed_over_only_once_its_leases_are_settled(
    redis_server: RedisServer, prefix: str
) -> None:
    clock = Clock()
    (a,) = await _processes(redis_server.url, prefix, ["a"], clock)
    await a.beat()
    await a.queue.append([Envelope("web", f"m{i}", "track", b"{}", 1.0, None, f"user{i}") for i in range(64)])
    leased = await a.queue.lease(1000, 900)
    assert len(leased) == 64
    (b,) = await _processes(redis_server.url, prefix, ["b"], clock)
    try:
        await b.beat()  # b joins: some partitions should move to it
        await a.beat()  # a stops leasing them, but still holds what it leased there
        assert not b.queue.owned
        moving = set(range(16)) - (a.queue.owned or set())
        assert moving and all(p in a.held for p in moving)
        assert await a.queue.lease(1000, 900) == []
        await a.queue.ack([m.id for m in leased])  # settled: now they can go
        await a.beat()
        await b.beat()
        assert b.queue.owned == moving
        assert a.queue.owned == set(range(16)) - moving
    finally:
        await a.queue.close()
        await b.queue.close()


async def test_a_clean_stop_hands_everything_over_at_once(redis_server: RedisServer, prefix: str) -> None:
    clock = Clock()
    a, b = await _processes(redis_server.url, prefix, ["a", "b"], clock)
    try:
        for o in (a, b, a, b):
            await o.beat()
        await a.leave()
        await b.beat()
        await b.beat()
        assert b.queue.owned == set(range(16))
    finally:
        await a.queue.close()
        await b.queue.close()


# ---- the rate budget ----------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def limiter(client: aioredis.Redis, prefix: str, clock: Clock, **kw: Any) -> SharedLimiter:
    options: dict[str, Any] = {"per_10s": 10, "per_day": 1_000_000, **kw}
    return SharedLimiter(
        client,
        f"{prefix}:budget",
        options.pop("per_10s"),
        options.pop("per_day"),
        clock=clock,
        sleep=clock.sleep,
        **options,
    )


async def test_three_processes_share_one_window(redis_client: aioredis.Redis, prefix: str) -> None:
    clock = Clock()
    procs = [limiter(redis_client, prefix, clock) for _ in range(3)]
    for i in range(10):
        await procs[i % 3].acquire()
    assert clock.slept == []
    await procs[1].acquire()  # the 11th call, whichever process makes it, waits for the window
    assert clock.slept and clock.slept[0] == pytest.approx(10.5, abs=0.01)


async def test_a_429_pauses_every_process(redis_client: aioredis.Redis, prefix: str) -> None:
    clock = Clock()
    a, b = limiter(redis_client, prefix, clock), limiter(redis_client, prefix, clock)
    await a.after_429("TEN_SECONDLY_ROLLING", None)
    await b.acquire()
    assert clock.slept == [pytest.approx(10.0, abs=0.01)]


async def test_limits_learned_by_one_process_are_used_by_all(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    clock = Clock()
    a = limiter(redis_client, prefix, clock, per_10s=100, reserve=0.1, learn=True)
    b = limiter(redis_client, prefix, clock, per_10s=100, reserve=0.1, learn=True)
    await a.after_call({"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-remaining": "189"})
    assert a.per_10s == 171
    await b.acquire()
    assert b.per_10s == 171


async def test_other_apps_calls_fill_the_shared_window(redis_client: aioredis.Redis, prefix: str) -> None:
    clock = Clock()
    a, b = limiter(redis_client, prefix, clock), limiter(redis_client, prefix, clock)
    await a.acquire()
    await a.after_call({"x-hubspot-ratelimit-max": "10", "x-hubspot-ratelimit-remaining": "2"})
    for _ in range(2):
        await b.acquire()
    assert clock.slept == []
    await b.acquire()
    assert clock.slept


async def test_the_daily_limit_is_shared(redis_client: aioredis.Redis, prefix: str) -> None:
    clock = Clock()
    a, b = limiter(redis_client, prefix, clock, per_day=3), limiter(redis_client, prefix, clock, per_day=3)
    for lim in (a, b, a):
        await lim.acquire()
    with pytest.raises(DailyLimitReached):
        await b.acquire()
    assert a.usage()["calls_today"] == 3
    assert b.usage()["daily_limit_until"] is not None


# ---- the identity map ---------------------------------------------------------------------


@pytest.fixture
def maps(redis_server: RedisServer, prefix: str) -> Any:
    made = [RedisIdentityMap(redis_server.url, prefix=prefix) for _ in range(2)]
    yield made
    for m in made:
        m.close()


def test_a_tie_made_by_one_process_is_seen_by_another(maps: list[RedisIdentityMap]) -> None:
    a, b = maps
    assert b.email_for("web", ["u1"]) is None
    a.link("web", ["u1", "anon1"], "Ann@x.io")
    assert b.email_for("web", ["anon1"]) == "Ann@x.io"


def test_waiting_traits_are_never_left_behind(maps: list[RedisIdentityMap]) -> None:
    a, b = maps
    assert a.remember("web", ["anon1"], {"plan": "free", "n": 12345678901234567890}) is None
    assert a.remember("web", ["anon1"], {"plan": "pro"}) is None
    assert b.link("web", ["anon1"], "ann@x.io") == ("ann@x.io", {"plan": "pro", "n": 12345678901234567890})
    # the race: an email arrives in another process between the look-up and the remember
    assert a.remember("web", ["anon1"], {"plan": "team"}) == "ann@x.io"
    assert b.take_pending("web", ["anon1"]) == {}


def test_contacts_companies_problems_and_pauses_are_shared(maps: list[RedisIdentityMap]) -> None:
    a, b = maps
    a.save_contacts("acct", [("Ann@x.io", "101", None)])
    a.save_contacts("acct", [("ann@x.io", None, "lead")])
    assert b.contact("acct", "ANN@x.io") == ("101", "lead")
    a.save_company("acct", "g1", "900")
    assert b.company("acct", "g1") == "900"
    a.count_dropped("acct", "contacts", {("shoe_size", "not a property"): 1})
    a.count_dropped("acct", "contacts", {("shoe_size", "not a property"): 2})
    assert b.dropped("acct") == [("acct", "contacts", "shoe_size", "not a property", 3)]
    a.set_paused("acct", True)
    assert b.is_paused("acct")
    b.set_paused("acct", False)
    assert not a.is_paused("acct")
    a.set_problem("acct", "http_401", "token refused")
    assert [(p[0], p[1], p[2]) for p in b.problems()] == [("acct", "http_401", "token refused")]


def test_a_plans_ties_are_read_and_written_at_once_and_traits_left_meanwhile_are_taken(
    maps: list[RedisIdentityMap],
) -> None:
    a, b = maps
    b.link("web", ["u-known"], "known@x.io")
    known = a.snapshot({("web", "u-known"), ("web", "u-new"), ("web", "u-raced")})
    assert known[("web", "u-known")].email == "known@x.io" and known[("web", "u-new")].email is None
    assert a.email_for("web", ["u-known"]) == "known@x.io"
    assert a.email_for("web", ["u-new"]) is None  # known absent: no round trip
    assert a.link("web", ["u-new"], "new@x.io") == ("new@x.io", {})
    assert a.link("web", ["u-raced"], "raced@x.io") == ("raced@x.io", {})
    assert b.email_for("web", ["u-new"]) is None  # buffered until the plan ends
    # another process sees no tie yet and keeps traits for the id meanwhile
    assert b.remember("web", ["u-raced"], {"plan": "pro"}) is None
    assert a.flush() == {("web", "u-raced"): {"plan": "pro"}}
    assert b.email_for("web", ["u-new"]) == "new@x.io"
    assert b.take_pending("web", ["u-raced"]) == {}


async def test_a_catalog_is_read_once_for_every_process(redis_client: aioredis.Redis, prefix: str) -> None:
    from hubspot_relay.state.shared_cache import RedisCache

    reads = 0

    async def fetch() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.2)  # HubSpot's latency: the others arrive meanwhile
        return b'[{"name": "email"}]'

    caches = [RedisCache(redis_client, prefix) for _ in range(3)]
    got = await asyncio.gather(*(c.once("catalog:1:v3:contacts", 60, fetch) for c in caches))
    assert got == [b'[{"name": "email"}]'] * 3
    assert reads == 1


async def test_an_event_definition_is_created_once_for_every_process(
    redis_client: aioredis.Redis, prefix: str, tmp_path: Any
) -> None:
    from hubspot_relay.delivery.loop import Delivery
    from hubspot_relay.delivery.settlement import Settlement
    from hubspot_relay.queue.protocol import Leased
    from hubspot_relay.state.shared_cache import RedisCache
    from hubspot_relay.translate import Event, translate
    from tests.harness import make

    h = await make(tmp_path)
    h.sandbox.faults.configure({"rules": [{"latency_ms": 100}]})  # HubSpot's answers take time (real)
    try:
        message = {"type": "track", "userId": "u", "event": "Scaled Out", "properties": {"n": 1}}
        (op,) = [o for o in translate(message, h.delivery.options) if isinstance(o, Event)]
        events = [(Leased(1, "web", "m1", "track", b"{}", 0.0, None, 1), op, "u@x.com")]
        d = h.delivery
        processes = [
            Delivery(
                d.account,
                d.options,
                ["web"],
                h.queue,
                h.identity,
                d.client,
                cache=RedisCache(redis_client, prefix),
            )
            for _ in range(3)
        ]
        usable = await asyncio.gather(*(p.events.ensure_definitions(events, Settlement()) for p in processes))
        assert usable == [{"pe997086_scaled_out"}] * 3
        calls = h.calls()
        assert calls["POST /events/2026-09/event-definitions"] == 1  # not one each, two refused
        assert calls["GET /events/2026-09/event-definitions"] == 1
    finally:
        await h.queue.close()
        h.identity.close()
