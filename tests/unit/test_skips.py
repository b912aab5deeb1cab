"""Skips with their reasons where operators look: every message delivery skips says why, counted
per source and account in the identity map's account state, shown by status (and --json), the
operations API and the console, as `hubspot_relay_skipped_because` has them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hubspot_relay.admin import AdminState, status_report
from hubspot_relay.config import Source
from hubspot_relay.delivery.loop import Delivery
from hubspot_relay.delivery.planner import SOURCE_OFF
from hubspot_relay.secrets import Secret
from hubspot_relay.translate import consent
from tests.harness import make

pytestmark = pytest.mark.anyio

REFUSED = {"consent": {"categoryPreferences": {"Marketing": False}}}


async def test_status_says_why_messages_were_skipped(tmp_path: Path) -> None:
    h = await make(tmp_path)
    d = h.delivery
    h.delivery = Delivery(
        d.account,
        d.options,
        ["web", "app"],
        h.queue,
        h.identity,
        d.client,
        clock=h.clock,
        consent={"web": ("Marketing",)},
        disabled_sources=["app"],
    )
    try:
        email = {"email": "a@x.com"}
        await h.send(
            {"type": "identify", "userId": "u1", "traits": email, "context": REFUSED},
            {"type": "track", "userId": "u1", "event": "E", "properties": email, "context": REFUSED},
            {
                "type": "track",
                "userId": "u1",
                "event": "E",
                "properties": email,
                "integrations": {"HubSpot": False},
            },
            {"type": "page", "userId": "u1", "properties": email, "_metadata": {"bundled": ["HubSpot"]}},
            {"type": "identify", "userId": "u2", "traits": {"email": "b@x.com"}},
        )
        await h.send({"type": "identify", "userId": "u3", "traits": {"email": "c@x.com"}}, source="app")
        await h.drain()
        for _ in range(5):  # (the disabled source is leased alongside)
            await h.delivery.cycle()
        web, app = (await h.queue.counts())["web"], (await h.queue.counts())["app"]
        assert (web.delivered, web.skipped, app.skipped) == (1, 4, 1)
        account = d.account
        config: Any = SimpleNamespace(
            sources=[
                Source("web", Secret("wk"), account.name, True),
                Source("app", Secret("wk2"), account.name, False),
            ],
            accounts=[account],
        )
        state = AdminState()
        state.identity = h.identity
        report = await status_report(config, h.queue, state)
        assert report["sources"]["web"]["skipped_because"] == {
            consent.REASON: 2,
            "integrations.HubSpot is false": 1,
            "delivered by the browser (device mode): _metadata.bundled lists HubSpot": 1,
        }
        assert report["sources"]["app"]["skipped_because"] == {SOURCE_OFF: 1}
        by_account = report["accounts"][account.name]["skipped_because"]
        assert next(iter(by_account.items())) == (consent.REASON, 2) and sum(by_account.values()) == 5
    finally:
        await h.queue.close()
        h.identity.close()
