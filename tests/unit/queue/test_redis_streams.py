"""What only the Redis queue has: partitions by user, hand-over of a partition's leases, Redis's
own durability (kill -9 of redis-server with AOF), and the warning when Redis may lose data."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from hubspot_relay.queue.protocol import Envelope
from hubspot_relay.queue.redis_streams import RedisQueue, partition_of
from hubspot_relay.secrets import redacted_url
from tests.conftest import require_tool
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


def env(mid: str, user: str = "u1", source: str = "web") -> Envelope:
    return Envelope(source, mid, "track", b"{}", 1.0, None, user)


async def opened(url: str, prefix: str, **kw: Any) -> RedisQueue:
    q = RedisQueue(url, prefix=prefix, **kw)
    await q.open()
    return q


@pytest.mark.parametrize(
    ("user", "message_id"),
    [("u1", "a"), ("u1", "b"), ("", "x"), ("ünïcode", "c")],
)
def test_a_user_always_goes_to_the_same_partition(user: str, message_id: str) -> None:
    p = partition_of(user, message_id, 16)
    assert 0 <= p < 16
    if user:
        assert partition_of(user, "another message", 16) == p


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@host:6379/1", "redis://***@host:6379/1"),
        ("rediss://user:s3cret@host/0", "rediss://user:***@host/0"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


async def test_an_id_tells_its_source_and_partition(redis_server: RedisServer) -> None:
    q = await opened(redis_server.url, f"t-{uuid.uuid4().hex}")
    try:
        await q.append([env("a", user="alice"), env("b", user="bob", source="app")])
        for m in await q.lease(10, 30):
            assert m.id % 64 == partition_of("alice" if m.message_id == "a" else "bob", "", 16)
            assert (m.id // 64) % 64 == await q.source_index(m.source)
    finally:
        await q.close()


async def test_only_owned_partitions_are_leased_and_a_takeover_reclaims_leases(
    redis_server: RedisServer,
) -> None:
    prefix = f"t-{uuid.uuid4().hex}"
    a = await opened(redis_server.url, prefix, consumer="a")
    b = await opened(redis_server.url, prefix, consumer="b")
    try:
        users = [f"user{i}" for i in range(40)]
        await a.append([env(f"m{i}", user=u) for i, u in enumerate(users)])
        part = partition_of("user0", "", 16)
        a.owned = {part}
        b.owned = set(range(16)) - {part}
        mine = await a.lease(100, 900)
        assert mine and all(m.id % 64 == part for m in mine)
        assert a.leased_here(part) == len(mine)
        others = await b.lease(100, 900)
        assert len(mine) + len(others) == 40
        # a dies holding its leases; b takes its partition over: visible at once, not in 15 minutes
        b.owned = set(range(16))
        assert await b.reclaim([part]) == len(mine)
        again = await b.lease(100, 900)
        assert sorted(m.id for m in again) == sorted(m.id for m in mine)
        assert all(m.attempts == 2 for m in again)
        counts = (await b.counts())["web"]
        assert (counts.queued, counts.in_flight) == (0, 40)
    finally:
        await a.close()
        await b.close()


async def test_a_lease_whose_reply_was_lost_is_leased_again_first(redis_server: RedisServer) -> None:
    """Redis ran the lease, the connection died before its reply: this process never saw those
    messages. The next lease makes them visible again first (not after the 900 s lease), and
    keeps what this process does hold."""
    q = await opened(redis_server.url, f"t-{uuid.uuid4().hex}", partitions=1)
    try:
        await q.append([env(f"m{i}") for i in range(30)])
        held = await q.lease(5, 900)
        real = q._scripts["LEASE"]

        async def lost(*a: Any, **kw: Any) -> Any:
            await real(*a, **kw)
            raise sync_redis.ConnectionError("Connection closed by server.")

        q._scripts["LEASE"] = lost
        with pytest.raises(sync_redis.ConnectionError):
            await q.lease(10, 900)
        assert q.unsure
        q._scripts["LEASE"] = real
        again = await q.lease(10, 900)
        assert [m.message_id for m in again] == [f"m{i}" for i in range(5, 15)]  # order kept
        assert not q.unsure
        assert q.leased_here(0) == 15
        counts = (await q.counts())["web"]
        assert (counts.queued, counts.in_flight) == (15, 15)
        await q.ack([m.id for m in held + again])
        assert q.leased_here(0) == 0
    finally:
        await q.close()


async def test_reclaim_keeps_what_this_process_holds(redis_server: RedisServer) -> None:
    q = await opened(redis_server.url, f"t-{uuid.uuid4().hex}", partitions=1)
    try:
        await q.append([env(f"m{i}") for i in range(10)])
        mine = await q.lease(4, 900)
        assert await q.reclaim([0]) == 0
        q._leased[0].discard(mine[0].id)  # as if its lease reply had been lost
        assert await q.reclaim([0]) == 1
        assert [m.message_id for m in await q.lease(1, 900)] == ["m0"]
    finally:
        await q.close()


async def test_what_redis_acknowledged_survives_kill_9_of_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    try:
        q = await opened(server.url, "crash")
        assert await q.append([env(f"m{i}") for i in range(500)]) == 500
        leased = await q.lease(100, 900)
        await q.ack([m.id for m in leased[:60]])
        await q.close()
        server.kill()
        server.start()
        q = await opened(server.url, "crash")
        counts = (await q.counts())["web"]
        assert (counts.delivered, counts.queued + counts.in_flight) == (60, 440)
        assert await q.append([env("m499")]) == 0  # the dedupe window came back too
        await q.close()
    finally:
        server.stop()


async def test_a_warning_when_redis_may_lose_what_it_acknowledged(redis_server: RedisServer) -> None:
    q = await opened(redis_server.url, "warn")
    admin = sync_redis.Redis(port=redis_server.port)
    try:
        assert await q.durability() is None  # AOF, appendfsync always
        admin.config_set("maxmemory-policy", "allkeys-lru")
        assert "deletes keys, queued messages among them" in (await q.durability() or "")
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("appendfsync", "everysec")
        assert "last second" in (await q.durability() or "")
        admin.config_set("appendonly", "no")
        assert "without AOF" in (await q.durability() or "")
    finally:
        admin.config_set("appendonly", "yes")
        admin.config_set("appendfsync", "always")
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
        await q.close()


async def test_an_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    from tests.helpers import free_port

    q = RedisQueue(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(RuntimeError, match=r"cannot reach Redis at redis://\*\*\*@127\.0\.0\.1") as info:
        await q.open()
    assert "hunter2" not in str(info.value)


async def test_back_pressure_watches_redis_memory_instead_of_the_disk(tmp_path: Path) -> None:
    from hubspot_relay.queue.redis_streams import free_memory
    from hubspot_relay.segment.backpressure import Backpressure

    server = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    admin = sync_redis.Redis(port=server.port)
    try:
        bp = Backpressure(1_000_000, 1, tmp_path, disk_free=free_memory(server.url), space="Redis's memory")

        async def none() -> dict[str, int]:
            return {}

        await bp.refresh(none)
        assert bp.refusal("web") is None  # no maxmemory: no limit to watch
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 512 * 1024)
        await bp.refresh(none)
        refusal = bp.refusal("web")
        assert refusal is not None and refusal.code == "disk_full"
        assert "Redis's memory has less than 1 MB free" in refusal.message
    finally:
        admin.close()
        server.stop()
