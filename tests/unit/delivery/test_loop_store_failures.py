"""The queue's store failing in the middle of delivery: a real redis-server killed with -9 and
started again on the same files (before a lease, during HubSpot's calls, during settlement), and
SQLite's `disk I/O error` while a batch is settled. Each time: every message is delivered once,
none is dead-lettered, each contact ends with its newest value, nothing stays in flight, and no
restart of the relay is needed."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from hubspot_relay.errors import MACHINE_FAILURES
from tests.conftest import require_tool
from tests.harness import Harness, make
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

USERS = 30


def identifies(round_: int) -> list[dict[str, Any]]:
    """Two updates of each user's firstName per round (the later one must win)."""
    return [
        {"type": "identify", "userId": f"u{i}@x.com", "traits": {"firstName": f"r{round_}-{n}"}}
        for n in range(2)
        for i in range(USERS)
    ]


class KillOnce(httpx.AsyncBaseTransport):
    """Delivery's transport: runs `kill` once, as the first contacts upsert reaches HubSpot (which
    still answers it: HubSpot has those contacts, the queue does not know it yet)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, kill: Callable[[], None]) -> None:
        self.inner = inner
        self.kill: Callable[[], None] | None = kill

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.kill is not None and request.url.path.endswith("/batch/upsert"):
            self.kill, kill = None, self.kill
            kill()
        return await self.inner.handle_async_request(request)


def kill_before(queue: Any, method: str, kill: Callable[[], None], killed: list[str]) -> None:
    """`kill` runs once, as the queue's `method` is first called (then the call goes to Redis)."""
    real = getattr(queue, method)

    async def call(*a: Any, **kw: Any) -> Any:
        if not killed:
            kill()
        return await real(*a, **kw)

    setattr(queue, method, call)


async def cycles_until(h: Harness, done: Callable[[], bool], *, limit: int = 60) -> int:
    """Delivery cycles as the loop runs them, a failing store's errors seen (the loop waits them
    out); returns how many cycles failed on the store."""
    failed = 0
    for _ in range(limit):
        if done():
            return failed
        try:
            await h.delivery.cycle()
        except MACHINE_FAILURES:
            failed += 1
        h.clock.now += 2.0  # retries come due
    return failed


async def drain(h: Harness) -> None:
    for _ in range(80):
        await h.delivery.cycle()
        h.clock.now += 5.0
        counts = (await h.queue.counts()).get("web")
        if counts and counts.queued + counts.in_flight + counts.retrying == 0:
            return
    raise AssertionError(f"not drained: {await h.queue.counts()}")


async def check_everything_delivered_once(h: Harness, sent: int, newest: int) -> None:
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.dead, counts.in_flight, counts.queued, counts.retrying) == (
        sent,
        0,
        0,
        0,
        0,
    )
    assert h.delivery.stranded == set()
    for i in range(USERS):
        contact = await h.contact(f"u{i}@x.com", "firstname")
        assert contact["firstname"] == f"r{newest}-1", f"u{i}@x.com"


def lose_lease_reply(queue: Any, kill: Callable[[], None], killed: list[str]) -> None:
    """Redis runs the first lease, then dies before its reply reaches the relay: messages leased
    in Redis that this process never saw."""
    real = queue._scripts["LEASE"]

    async def lease(*a: Any, **kw: Any) -> Any:
        if killed:
            return await real(*a, **kw)
        await real(*a, **kw)
        kill()
        raise redis.ConnectionError("Connection closed by server.")

    queue._scripts["LEASE"] = lease


MOMENTS = ["never", "before a lease", "a lease's reply lost", "during calls", "during settlement"]


@pytest.mark.parametrize("moment", MOMENTS)
async def test_redis_killed_and_restarted_mid_delivery(tmp_path: Path, moment: str) -> None:
    from hubspot_relay.queue.redis_streams import RedisQueue

    server = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    h = await make(
        tmp_path,
        queue_factory=lambda clock: RedisQueue(server.url, prefix=prefix, clock=clock),
        lease_batch=40,
        max_in_flight=4,
    )
    killed = []

    def kill() -> None:
        server.kill()
        killed.append(moment)

    try:
        await h.send(*identifies(1))
        if moment == "before a lease":
            kill_before(h.queue, "lease", kill, killed)
        elif moment == "never":
            killed.append(moment)
        elif moment == "a lease's reply lost":
            lose_lease_reply(h.queue, kill, killed)
        elif moment == "during calls":
            h.transport.inner = KillOnce(h.transport.inner, kill)
        else:
            kill_before(h.queue, "ack", kill, killed)
        failed = await cycles_until(h, lambda: bool(killed), limit=5)
        assert killed == [moment]
        # Down for a few cycles: nothing is halved, dead-lettered or lost meanwhile.
        for _ in range(3):
            try:
                await h.delivery.cycle()
            except MACHINE_FAILURES:
                failed += 1
        assert (failed > 0) == (moment != "never")  # the outage reached delivery, and was waited out
        if moment != "never":
            server.start()  # the same files (AOF, appendfsync always)
        await h.send(*identifies(2))  # newer values for every contact, once Redis is back
        await drain(h)
        await check_everything_delivered_once(h, sent=4 * USERS, newest=2)
    finally:
        await h.queue.close()
        h.identity.close()
        server.stop()


async def test_sqlite_disk_io_error_during_settlement(tmp_path: Path) -> None:
    h = await make(tmp_path, lease_batch=40, max_in_flight=4)
    queue: Any = h.queue
    failures = {"left": 4}  # the next four writes of settlement fail, as a failing disk does

    def flaky(real: Callable[..., Any]) -> Callable[..., Any]:
        async def write(*a: Any, **kw: Any) -> Any:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise sqlite3.OperationalError("disk I/O error")
            return await real(*a, **kw)

        return write

    try:
        await h.send(*identifies(1))
        for name in ("ack", "retry", "release", "dead_letter"):
            setattr(queue, name, flaky(getattr(queue, name)))
        await cycles_until(h, lambda: failures["left"] == 0, limit=10)
        await h.send(*identifies(2))
        await drain(h)
        await check_everything_delivered_once(h, sent=4 * USERS, newest=2)
        assert failures["left"] == 0
    finally:
        await h.queue.close()
        h.identity.close()
