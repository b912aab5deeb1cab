"""Sending events: definitions made once, a portal without custom events reported once as the
account's problem (not per message), an event whose definition cannot be made dead-lettered
with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox import PortalSettings
from hubspot_relay.sandbox.settings import default_event_paths
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


def portal_serving(**event_paths: str) -> PortalSettings:
    return PortalSettings(event_paths=default_event_paths(**event_paths))


@pytest.mark.parametrize("served", ["/events/2026-09", "/events/custom/2026-09", "/events/v3/2026-09"])
async def test_events_go_where_the_portal_serves_them(tmp_path: Path, served: str) -> None:
    h = await make(tmp_path, portal=portal_serving(**{"2026-09": served}))
    try:
        await h.send(ANN, *tracks(3))
        await h.drain()
        assert (await h.queue.counts())["web"].delivered == 4
        assert h.calls()[f"POST {served}/send/batch"] == 1
        assert len(h.sandbox.portals["997086"].events) == 3
        assert h.delivery.client.events.report()["custom_events"] == served
    finally:
        await h.queue.close()
        h.identity.close()


async def test_events_wait_while_the_portal_serves_no_published_path(tmp_path: Path) -> None:
    """Nothing dead-lettered, nothing sent; contacts flow; the problem names the setting; once
    the portal serves a spelling (an upgrade, or the account's api_version changed), they go."""
    h = await make(tmp_path, portal=portal_serving(**{"2026-09": ""}))
    try:
        await h.send(ANN, *tracks(3))
        await h.drain(max_cycles=6, step=120.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead, counts.retrying) == (1, 0, 3)
        problems = {kind: message for _, kind, message, _ in h.identity.problems()}
        assert list(problems) == ["unserved_path"] and "api_version" in problems["unserved_path"]
        assert not any("send/batch" in label for label in h.calls())
        portal = h.sandbox.portals["997086"]
        portal.settings = portal_serving(**{"2026-09": "/events/custom/2026-09"})
        h.clock.now += 4000  # the retries come due, and the portal is asked again
        await h.drain(step=3601.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (4, 0)
        assert h.identity.problems() == []
        assert len(portal.events) == 3
    finally:
        await h.queue.close()
        h.identity.close()


async def test_a_portal_that_stops_serving_its_path_keeps_the_events(tmp_path: Path) -> None:
    h = await make(tmp_path)
    try:
        await h.send(ANN, *tracks(2))
        await h.drain()
        portal = h.sandbox.portals["997086"]
        portal.settings = portal_serving(**{"2026-09": "/events/v3/2026-09"})
        await h.send(*tracks(2, "Upgraded"))
        await h.drain(step=3601.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (5, 0)
        assert h.calls()["POST /events/v3/2026-09/send/batch"] == 1
        assert len(portal.events) == 4
    finally:
        await h.queue.close()
        h.identity.close()
