"""Write validation enforcement (HubSpot, from API version 2026-09): a record a portal's rules
refuse is dead-lettered alone with the property named; the rest of its batch is delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox import PortalSettings
from tests.harness import make

pytestmark = pytest.mark.anyio


async def test_a_contact_a_portals_write_rules_refuse_is_dead_lettered_alone(tmp_path: Path) -> None:
    """Write validation (2026-09): the portal requires a company on new contacts; the one
    identify without it is dead-lettered alone, naming the property; the others are delivered."""
    rules = ({"object_type": "contacts", "name": "company"},)
    h = await make(tmp_path, portal=PortalSettings(required_properties=rules))
    try:
        ok = [
            {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com", "company": "Acme"}}
            for i in range(20)
        ]
        lacking = {"type": "identify", "userId": "lone", "traits": {"email": "lone@x.com", "firstName": "Lo"}}
        await h.send(*ok[:7], lacking, *ok[7:])
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (20, 1)
        (letter,) = await h.queue.dead_letters(10, ReplayFilter())
        assert '"company"' in letter.reason and "VALIDATION_ERROR" in letter.reason
        assert (await h.contact("u3@x.com", "company"))["company"] == "Acme"
    finally:
        await h.queue.close()
        h.identity.close()
