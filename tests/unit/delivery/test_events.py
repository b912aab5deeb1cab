"""Sending events: definitions made once, a portal without custom events reported once as the
account's problem (not per message), an event whose definition cannot be made dead-lettered
with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox import PortalSettings
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio

ANN = {"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}}


def tracks(n: int, event: str = "Signed Up") -> list[dict[str, object]]:
    return [{"type": "track", "userId": "u1", "event": event, "properties": {"n": i}} for i in range(n)]


async def test_a_definition_is_made_once_for_many_events(h: Harness) -> None:
    await h.send(ANN, *tracks(30), *tracks(20, "Upgraded"))
    await h.drain()
    calls = h.calls()
    assert calls["POST /events/2026-09/event-definitions"] == 2
    assert calls["POST /events/2026-09/send/batch"] == 1
    assert (await h.queue.counts())["web"].delivered == 51


async def test_a_portal_without_custom_events_is_the_accounts_problem_once(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=PortalSettings(tier="professional"))
    try:
        await h.send(ANN, *tracks(5))
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (1, 5)
        problems = [(kind, message) for _, kind, message, _ in h.identity.problems()]
        assert [kind for kind, _ in problems] == ["custom_events"]
        assert "Enterprise" in problems[0][1]
        assert h.calls().get("POST /events/2026-09/send/batch") is None
    finally:
        await h.queue.close()
        h.identity.close()


async def test_without_creating_definitions_an_unknown_event_is_dead(tmp_path: Path) -> None:
    h = await make(tmp_path, create_event_definitions=False)
    try:
        await h.send(ANN, *tracks(2))
        await h.drain()
        letters = await h.queue.dead_letters(10, ReplayFilter())
        assert {d.reason for d in letters} == {
            "HubSpot has no event definition pe997086_signed_up (create_event_definitions is off)"
        }
    finally:
        await h.queue.close()
        h.identity.close()
