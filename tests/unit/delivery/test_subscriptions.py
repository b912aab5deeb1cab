"""Email subscription changes through delivery and the sandbox's communication preferences:
tracks and an identify trait as the account's [accounts.subscriptions] says, many a call on an
Enterprise portal, one by one where the portal refuses batch writes, and a status a GDPR portal
refuses (no legal basis) dead-lettered alone with HubSpot's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubspot_relay.options import Subscriptions
from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox import PortalSettings
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio

SUBS = Subscriptions(
    unsubscribe_events=["Unsubscribed"],
    subscribe_events=["Subscribed"],
    trait="newsletter",
    subscription_id=1,
)


def messages() -> list[dict[str, Any]]:
    return [
        {"type": "identify", "userId": "a", "traits": {"email": "a@x.com", "newsletter": True}},
        {"type": "identify", "userId": "b", "traits": {"email": "b@x.com"}},
        {"type": "track", "userId": "b", "event": "unsubscribed", "properties": {"subscription_id": 2}},
        {"type": "track", "userId": "c", "event": "Subscribed", "properties": {"email": "c@x.com"}},
    ]


def statuses(h: Harness) -> dict[tuple[str, str], str]:
    subs = h.sandbox.portals["997086"].subscriptions
    return {(email, sid): s["status"] for email, by in subs.items() for sid, s in by.items()}


EXPECTED = {("a@x.com", "1"): "SUBSCRIBED", ("b@x.com", "2"): "UNSUBSCRIBED", ("c@x.com", "1"): "SUBSCRIBED"}


@pytest.mark.parametrize(
    ("tier", "batch_calls", "single_calls"), [("enterprise", 1, 0), ("professional", 1, 3)]
)
async def test_subscription_changes(tmp_path: Path, tier: str, batch_calls: int, single_calls: int) -> None:
    h = await make(tmp_path, portal=PortalSettings(tier=tier), subscriptions=SUBS, page_events=False)
    try:
        await h.send(*messages())
        await h.drain(step=5.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (4, 0)
        assert statuses(h) == EXPECTED
        calls = h.calls()
        assert calls.get("POST /communication-preferences/2026-09/statuses/batch/write", 0) == batch_calls
        assert calls.get("POST /communication-preferences/2026-09/statuses/{email}", 0) == single_calls
    finally:
        await h.queue.close()
        h.identity.close()


async def test_a_gdpr_portal_refuses_a_status_without_a_legal_basis(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=PortalSettings(gdpr=True), subscriptions=SUBS)
    try:
        await h.send(*messages())
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert counts.dead == 3 and counts.delivered == 1  # the identify of b changes nothing
        letters = await h.queue.dead_letters(10, ReplayFilter())
        assert all("legalBasis is required" in d.reason for d in letters)
    finally:
        await h.queue.close()
        h.identity.close()


async def test_with_the_accounts_legal_basis_a_gdpr_portal_takes_them(tmp_path: Path) -> None:
    subs = msgspec.structs.replace(
        SUBS, legal_basis="CONSENT_WITH_NOTICE", legal_basis_explanation="Opted in"
    )
    h = await make(tmp_path, portal=PortalSettings(gdpr=True), subscriptions=subs)
    try:
        await h.send(*messages())
        await h.drain()
        assert (await h.queue.counts())["web"].dead == 0
        assert statuses(h) == EXPECTED
        written = h.sandbox.portals["997086"].subscriptions["a@x.com"]["1"]
        assert (written["legalBasis"], written["legalBasisExplanation"]) == (
            "CONSENT_WITH_NOTICE",
            "Opted in",
        )
    finally:
        await h.queue.close()
        h.identity.close()
