"""The right to be forgotten through delivery (the harness and its sandbox): a DELETE_ONLY request
skips and deletes the person's messages received before it (queued, delivered, dead-lettered),
leaves newer ones to flow, and GDPR-deletes the contact; the request's status says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hubspot_relay.delivery.loop import Delivery
from hubspot_relay.forgetting import Forgetter, ForgottenView
from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.state.regulations import Regulation, SQLiteRegulations
from tests.harness import make

pytestmark = pytest.mark.anyio


async def test_delete_only_erases_the_past_and_lets_the_future_flow(tmp_path: Path) -> None:
    h = await make(tmp_path)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    view = ForgottenView(store, clock=lambda: 0.0)
    d = h.delivery
    h.delivery = Delivery(
        d.account, d.options, ["web"], h.queue, h.identity, d.client, clock=h.clock, forgotten=view.current
    )
    forgetter = Forgetter(store, view, h.queue, h.identity, [d.client])
    try:
        await h.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}})
        await h.send({"type": "identify", "userId": "u2", "traits": {"email": "bo@x.com"}})
        await h.drain()
        await h.send({"type": "track", "userId": "u1", "event": "Queued Before"})
        reg = forgetter.submit("DELETE_ONLY", "USER_ID", ["u1"])
        h.clock.now = max(h.clock.now, reg.created_at) + 1  # (the request's time is the wall clock's)
        await h.send(
            {"type": "track", "userId": "u1", "event": "Sent After", "properties": {"email": "ann@x.com"}}
        )
        await forgetter.process(reg)
        await h.drain()
        kept = store.get(reg.id)
        assert kept is not None and kept.status == "FINISHED", kept
        portal = h.sandbox.portals["997086"]
        assert "ann@x.com" in portal.forgotten
        names = [e["eventType"] for e in portal.events]
        assert names == []  # the event before the request skipped; the one after refused: the
        # email is blocked at HubSpot now (GDPR), so its contact cannot be made again
        letters = await h.queue.dead_letters(10, ReplayFilter())
        assert [(d.message_id is not None, "GDPR" in d.reason) for d in letters] == [(True, True)]
        counts = (await h.queue.counts())["web"]
        assert counts.queued == counts.retrying == 0
        assert h.identity.email_for("web", ["u2"]) == "bo@x.com"  # (u1 is tied again by the newer track)
        assert kept.detail["erased"] >= 1  # Ann's delivered identify, kept for dedupe, is gone
        bodies = [m.body.decode() for m in await h.queue.messages()]
        assert not [b for b in bodies if "Queued Before" in b or ('"identify"' in b and '"u1"' in b)]
        assert [b for b in bodies if '"userId":"u2"' in b]
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()


async def test_a_request_cut_off_midway_is_carried_out_by_the_next_run(tmp_path: Path) -> None:
    """As after a kill -9: the request is kept RUNNING; the next process's run finishes it."""
    h = await make(tmp_path)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    try:
        await h.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}})
        await h.drain()
        reg = Regulation.new("SUPPRESS_WITH_DELETE", "USER_ID", ["u1"])
        reg.status = "RUNNING"  # where a killed process left it
        store.save(reg)
        view = ForgottenView(store)
        forgetter = Forgetter(store, view, h.queue, h.identity, [h.delivery.client])
        stop = asyncio.Event()
        task = asyncio.create_task(forgetter.run(stop, every=0.05))
        for _ in range(100):
            kept = store.get(reg.id)
            if kept is not None and kept.status == "FINISHED":
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert kept is not None and kept.status == "FINISHED"
        assert "ann@x.com" in h.sandbox.portals["997086"].forgotten
        assert view.current().suppressed  # and the person is suppressed
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()
