"""End-user consent in delivery: a source mapped to the Marketing category delivers what the user
allowed and what carries no consent, and skips the rest with the reason, nothing of it reaching
HubSpot; the debugger shows the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.activity import TRACE
from hubspot_relay.delivery.loop import Delivery
from tests.harness import make

pytestmark = pytest.mark.anyio


def identify(user: str, preferences: dict[str, Any] | None) -> dict[str, Any]:
    m: dict[str, Any] = {"type": "identify", "userId": user, "traits": {"email": f"{user}@x.com"}}
    if preferences is not None:
        m["context"] = {"consent": {"categoryPreferences": preferences}}
    return m


async def test_consent_filters_before_hubspot(tmp_path: Path) -> None:
    h = await make(tmp_path)
    d = h.delivery
    h.delivery = Delivery(
        d.account,
        d.options,
        ["web"],
        h.queue,
        h.identity,
        d.client,
        clock=h.clock,
        consent={"web": ("Marketing",)},
    )
    try:
        await h.send(
            identify("yes", {"Marketing": True}),
            identify("none", None),
            identify("no", {"Marketing": False}),
            identify("empty", {}),
            {**identify("track-no", {"Marketing": False}), "type": "track", "event": "Signed Up"},
        )
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.skipped, counts.dead) == (2, 3, 0)
        portal = h.sandbox.portals["997086"]
        emails = {r.properties.get("email") for r in portal.records["contacts"].values()}
        assert emails == {"yes@x.com", "none@x.com"} and portal.events == []
        reasons = {t.reason for t in TRACE._by_id.values() if t.outcome == "skipped"}
        assert "filtered by end-user consent" in reasons
    finally:
        await h.queue.close()
        h.identity.close()
