"""The right to be forgotten through delivery (the harness and its sandbox): a DELETE_ONLY request
skips and deletes the person's messages received before it (queued, delivered, dead-lettered),
leaves newer ones to flow, and GDPR-deletes the contact; the request's status says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from hubspot_relay.delivery.loop import Delivery
from hubspot_relay.delivery.stages.deletions import Portal
from hubspot_relay.forgetting import Forgetter, ForgottenView
from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox.errors import missing_scopes
from hubspot_relay.state.regulations import Regulation, SQLiteRegulations
from tests.harness import AUTH, Harness, make

pytestmark = pytest.mark.anyio


async def test_delete_only_erases_the_past_and_lets_the_future_flow(tmp_path: Path) -> None:
    h = await make(tmp_path)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    view = ForgottenView(store, clock=lambda: 0.0)
    d = h.delivery
    h.delivery = Delivery(
        d.account, d.options, ["web"], h.queue, h.identity, d.client, clock=h.clock, forgotten=view.current
    )
    forgetter = Forgetter(store, view, h.queue, h.identity, [Portal(d.client)])
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
        forgetter = Forgetter(store, view, h.queue, h.identity, [Portal(h.delivery.client)])
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


# ---- HubSpot's deletions, judged like every other call -------------------------------------


class Refusing(httpx.AsyncBaseTransport):
    """HubSpot refusing GDPR deletes for good (a token without the scope), everything else served."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gdpr-delete"):
            error = missing_scopes("crm.objects.contacts.write")
            return httpx.Response(error.status, json=error.body)
        return await self.inner.handle_async_request(request)


async def _forgetter(h: Harness, store: SQLiteRegulations, portals: list[Portal] | None = None) -> Forgetter:
    view = ForgottenView(store, clock=lambda: 0.0)
    return Forgetter(store, view, h.queue, h.identity, portals or [Portal(h.delivery.client)], clock=h.clock)


async def _attempt_until_done(f: Forgetter, store: SQLiteRegulations, reg_id: str, h: Harness) -> list[str]:
    """Each attempt once its retry is due; the statuses seen along the way."""
    seen = []
    for _ in range(40):
        reg = store.get(reg_id)
        assert reg is not None
        seen.append(reg.status)
        if reg.status not in ("INITIALIZED", "RUNNING"):
            return seen
        h.clock.now = max(h.clock.now, reg.detail.get("retry_at", 0.0))
        await f.process(reg)
    return seen


async def test_hubspot_busy_never_fails_a_deletion(tmp_path: Path) -> None:
    """503s, then a 429 storm, on every GDPR delete: the requests stay RUNNING with HubSpot's
    words and a time to try again; once HubSpot answers, every one ends FINISHED, contacts gone."""
    h = await make(tmp_path)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    try:
        for n in range(3):
            await h.send({"type": "identify", "userId": f"u{n}", "traits": {"email": f"p{n}@x.com"}})
        await h.drain()
        fault = {"rules": [{"match": "POST */gdpr-delete", "error_rate": 1.0, "status": 503}]}
        assert (await h.http.post("/_sandbox/faults", json=fault)).status_code == 200
        f = await _forgetter(h, store)
        regs = [f.submit("SUPPRESS_WITH_DELETE", "USER_ID", [f"u{n}"]) for n in range(3)]
        for _ in range(3):  # three rounds of 503s
            for reg in regs:
                kept = store.get(reg.id)
                assert kept is not None
                h.clock.now = max(h.clock.now, kept.detail.get("retry_at", 0.0))
                await f.process(kept)
        for reg in regs:
            kept = store.get(reg.id)
            assert kept is not None and kept.status == "RUNNING"
            part = kept.detail["hubspot"]["sandbox"]
            assert part["status"] == "RETRYING" and "HubSpot 503" in part["reason"]
            assert kept.detail["attempts"] == 3 and kept.detail["retry_at"] > h.clock.now
        storm = {"rules": [{"match": "POST */gdpr-delete", "rate_limit_storm": 200}]}
        assert (await h.http.post("/_sandbox/faults", json=storm)).status_code == 200
        await f.process(store.get(regs[0].id))  # type: ignore[arg-type]
        kept = store.get(regs[0].id)
        assert kept is not None and kept.status == "RUNNING", kept
        assert kept.detail["hubspot"]["sandbox"]["status"] == "RETRYING"
        assert (await h.http.post("/_sandbox/faults", json={"rules": []})).status_code == 200
        for reg in regs:
            assert (await _attempt_until_done(f, store, reg.id, h))[-1] == "FINISHED"
        portal = h.sandbox.portals["997086"]
        assert {"p0@x.com", "p1@x.com", "p2@x.com"} <= portal.forgotten
        for n in range(3):
            r = await h.http.get(
                f"/crm/objects/2026-09/contacts/p{n}@x.com?idProperty=email", headers=AUTH
            )
            assert r.status_code == 404
        done = store.get(regs[0].id)
        assert done is not None and done.detail["failures"] == [] and "pending" not in str(done.detail)
        assert "p0@x.com" not in orjson.dumps(done.detail).decode()  # finished: digests only
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()


async def test_a_permanent_refusal_fails_with_hubspots_words(tmp_path: Path) -> None:
    h = await make(tmp_path)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    try:
        await h.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}})
        await h.drain()
        h.transport.inner = Refusing(h.transport.inner)
        f = await _forgetter(h, store)
        reg = f.submit("DELETE_ONLY", "EMAIL", ["ann@x.com"])
        assert await _attempt_until_done(f, store, reg.id, h) == ["INITIALIZED", "FAILED"]
        kept = store.get(reg.id)
        assert kept is not None
        part = kept.detail["hubspot"]["sandbox"]
        assert part["status"] == "FAILED" and "HubSpot 403" in part["reason"] and "scopes" in part["reason"]
        assert kept.detail["failures"] == [f"sandbox: {part['reason']}"]
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()


async def test_a_contact_keyed_by_user_id_is_deleted(tmp_path: Path) -> None:
    """An account with `user_id_property`: a contact the relay only ever knew by userId (no
    email seen) is deleted through that property."""
    h = await make(tmp_path, user_id_property="segment_user_id")
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    try:
        await h.send({"type": "identify", "userId": "u-1", "traits": {"email": "one@x.com"}})
        await h.drain()  # (the relay makes the property, unique, on first use)
        made = await h.http.post(  # u-77's contact, made in HubSpot by someone else: no email the relay saw
            "/crm/v3/objects/contacts",
            json={"properties": {"email": "hidden@x.com", "segment_user_id": "u-77"}},
            headers=AUTH,
        )
        assert made.status_code == 201, made.text
        portal = h.sandbox.portals["997086"]
        assert portal.find("contacts", "u-77", "segment_user_id") is not None
        f = await _forgetter(h, store, [Portal(h.delivery.client, "segment_user_id")])
        reg = f.submit("DELETE_ONLY", "USER_ID", ["u-77"])
        assert (await _attempt_until_done(f, store, reg.id, h))[-1] == "FINISHED"
        assert portal.find("contacts", "u-77", "segment_user_id") is None
        kept = store.get(reg.id)
        assert kept is not None and kept.detail["hubspot"]["sandbox"]["deleted"] == 1
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()


async def test_a_legacy_account_says_why_it_cannot_delete(tmp_path: Path) -> None:
    h = await make(tmp_path, legacy=True)
    store = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    try:
        await h.send({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}})
        await h.drain()
        f = await _forgetter(h, store)
        reg = f.submit("SUPPRESS_WITH_DELETE", "USER_ID", ["u1"])
        assert (await _attempt_until_done(f, store, reg.id, h))[-1] == "NOT_SUPPORTED"
        kept = store.get(reg.id)
        assert kept is not None
        part = kept.detail["hubspot"]["sandbox"]
        assert part["status"] == "NOT_SUPPORTED" and "API key" in part["reason"] and part["owed"] == 1
        assert kept.detail["failures"] == [f"sandbox: {part['reason']}"]
        assert h.sandbox.calls and not [c for c in h.sandbox.calls if "gdpr" in str(c)]
    finally:
        store.close()
        await h.queue.close()
        h.identity.close()
