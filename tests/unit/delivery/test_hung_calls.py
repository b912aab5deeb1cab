"""A hung HubSpot call holds up only what it carries: the other contacts of its batch, their
events, and the batches after it are delivered while it hangs; its place at the gate is given
up; its own contacts' later messages wait for it, and once it answers everything is delivered
with the newest values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import AUTH, Harness, make

pytestmark = pytest.mark.anyio

STUCK = "stuck@x.com"


class HangOnce(httpx.AsyncBaseTransport):
    """The first contacts upsert that carries STUCK hangs until `release` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.hanging = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (
            not self.hanging.is_set()
            and request.url.path.endswith("/contacts/batch/upsert")
            and STUCK in request.content.decode()
        ):
            self.hanging.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


def wave(users: list[str], name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for u in users:
        out.append({"type": "identify", "userId": u, "traits": {"email": u, "firstName": name}})
        out.append({"type": "track", "userId": u, "event": "Waved", "properties": {"email": u, "n": name}})
    return out


async def until(check: Callable[[], Any], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def delivered(h: Harness) -> int:
    return (await h.queue.counts())["web"].delivered


async def events_for(h: Harness, email: str) -> list[dict[str, Any]] | None:
    """The contact's custom events in the sandbox; None while HubSpot has no such contact (an
    event by email would have created it)."""
    r = await h.http.get(f"/crm/objects/2026-09/contacts/{email}?idProperty=email", headers=AUTH)
    if r.status_code == 404:
        return None
    contact_id = r.json()["id"]
    portal = next(iter(h.sandbox.portals.values()))
    return [e for e in portal.events if e["objectId"] == contact_id]


async def test_a_hung_call_holds_up_only_what_it_carries(tmp_path: Path) -> None:
    h = await make(tmp_path, hung_call_s=0.3, contact_batch=2, max_in_flight=2, flush_ms=20)
    hang = HangOnce(h.transport.inner)
    h.transport.inner = hang
    others = [f"u{i}@x.com" for i in range(9)]
    stop = asyncio.Event()
    loop = asyncio.create_task(h.delivery.run(stop))
    try:
        await h.send(*wave([STUCK, *others], "first"))
        await hang.hanging.wait()
        # Everyone else's contacts and events go while it hangs: the stuck call carries STUCK and
        # one other contact (contact_batch=2), whose identify and track wait with STUCK's.
        total_first = 2 * (1 + len(others))
        await until(lambda: _at_least(h, total_first - 4))
        assert await delivered(h) == total_first - 4
        assert h.delivery.ctx.gate.out == 0  # its place at the gate was given up
        assert h.delivery.lingering == 1  # and its batch no longer counts in pipeline_depth
        # A later batch goes too; STUCK's newer messages wait for the hung call.
        await h.send(*wave([STUCK, *others], "second"))
        await until(lambda: _at_least(h, 2 * (total_first - 4)))
        assert await delivered(h) == 2 * (total_first - 4)
        assert await events_for(h, STUCK) is None  # neither its upsert nor its events went
        hang.release.set()
        await until(lambda: _at_least(h, 2 * total_first))
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead, counts.in_flight, counts.queued) == (2 * total_first, 0, 0, 0)
        for u in [STUCK, *others]:
            assert (await h.contact(u, "firstname"))["firstname"] == "second", u
        stuck_events = await events_for(h, STUCK)
        assert stuck_events is not None
        assert sorted(e["properties"]["n"] for e in stuck_events) == ["first", "second"]
    finally:
        hang.release.set()
        stop.set()
        await asyncio.wait_for(loop, 30)
        await h.queue.close()
        h.identity.close()


async def _at_least(h: Harness, n: int) -> bool:
    return await delivered(h) >= n
