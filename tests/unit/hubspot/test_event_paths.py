"""Which published spelling of the custom-event paths a portal serves: asked of the portal, newest
first, never guessed; nothing is sent to a path the portal has not answered."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from hubspot_relay.hubspot.client import HubSpotClient
from hubspot_relay.hubspot.errors import HubSpotError, Kind
from tests.unit.hubspot.test_client import client_with

pytestmark = pytest.mark.anyio

DEFINITIONS = {"results": [{"fullyQualifiedName": "pe1_signed_up", "properties": []}]}


def portal_serving(prefix: str | None, *, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    """A portal that serves custom events under `prefix` only (None: under none)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if prefix is None or not request.url.path.startswith(prefix + "/"):
            return httpx.Response(404, text="Not Found")
        if status != 200:
            return httpx.Response(status, json={"category": "MISSING_SCOPES", "message": "no scope"})
        if request.url.path.endswith("/event-definitions"):
            return httpx.Response(200, json=DEFINITIONS)
        return httpx.Response(204)

    return answer


def paths(seen: list[httpx.Request]) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in seen]


@pytest.mark.parametrize(
    ("version", "served", "asked"),
    [
        ("2026-09", "/events/2026-09", ["/events/2026-09"]),
        ("2026-09", "/events/custom/2026-09", ["/events/2026-09", "/events/custom/2026-09"]),
        (
            "2026-09",
            "/events/v3/2026-09",
            ["/events/2026-09", "/events/custom/2026-09", "/events/v3/2026-09"],
        ),
        ("2026-03", "/events/2026-03", ["/events/2026-03"]),
        (
            "2026-03",
            "/events/custom/2026-03",
            ["/events/2026-03", "/events/v3/2026-03", "/events/custom/2026-03"],
        ),
    ],
)
async def test_the_portal_is_asked_and_its_spelling_kept(version: str, served: str, asked: list[str]) -> None:
    client, seen, _ = client_with(portal_serving(served), api_version=version)
    await client.send_events([{"eventName": "pe1_signed_up", "properties": {}}])
    await client.send_events([{"eventName": "pe1_signed_up", "properties": {}}])
    expected = [f"GET {p}/event-definitions" for p in asked] + [f"POST {served}/send/batch"] * 2
    assert paths(seen) == expected
    assert client.events.report()["custom_events"] == served
    await client.aclose()


async def test_the_numbered_family_has_one_spelling_and_asks_nothing() -> None:
    client, seen, _ = client_with(portal_serving("/events/v3"), api_version="v3")
    assert client.events.spelling == "/events/v3"
    await client.send_events([])
    assert paths(seen) == ["POST /events/v3/send/batch"]
    await client.aclose()


async def test_a_portal_serving_none_is_the_accounts_problem_and_nothing_is_sent() -> None:
    client, seen, _ = client_with(portal_serving(None), api_version="2026-09")
    with pytest.raises(HubSpotError) as caught:
        await client.send_events([{"eventName": "pe1_signed_up", "properties": {}}])
    assert caught.value.kind is Kind.UNSERVED
    assert "api_version" in caught.value.describe() and "/events/custom/2026-09" in caught.value.describe()
    assert [p for p in paths(seen) if p.startswith("POST")] == []
    # Asked again only after a while: each ask costs a read per spelling.
    asked = len(seen)
    with pytest.raises(HubSpotError):
        await client.event_definitions()
    assert len(seen) == asked
    client.events.clock = lambda: 1e12
    with pytest.raises(HubSpotError):
        await client.event_definitions()
    assert len(seen) == 2 * asked
    await client.aclose()


async def test_a_scope_refusal_at_a_spelling_means_that_spelling_is_served() -> None:
    client, _, _ = client_with(portal_serving("/events/2026-09", status=403), api_version="2026-09")
    with pytest.raises(HubSpotError) as caught:
        await client.event_definitions()
    assert caught.value.kind is Kind.PERMANENT
    assert client.events.spelling == "/events/2026-09"
    await client.aclose()


async def test_a_server_error_while_asking_chooses_nothing() -> None:
    answers = iter([httpx.Response(503, json={"message": "down"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or portal_serving("/events/custom/2026-09")(request)

    client, _, _ = client_with(answer, api_version="2026-09")
    with pytest.raises(HubSpotError) as caught:
        await client.event_definitions()
    assert caught.value.kind is Kind.RETRYABLE and client.events.spelling is None
    assert await client.event_definitions() == DEFINITIONS["results"]
    assert client.events.spelling == "/events/custom/2026-09"
    await client.aclose()


async def test_a_404_where_the_portal_answered_before_asks_it_again() -> None:
    served = ["/events/2026-09"]
    client, seen, _ = client_with(lambda r: portal_serving(served[0])(r), api_version="2026-09")
    await client.send_events([])
    served[0] = "/events/custom/2026-09"  # the portal moved
    with pytest.raises(HubSpotError) as caught:
        await client.send_events([])
    assert caught.value.kind is Kind.UNSERVED and "served before" in caught.value.describe()
    await client.send_events([])
    assert paths(seen)[-1] == "POST /events/custom/2026-09/send/batch"
    await client.aclose()


async def test_a_404_adding_a_property_is_the_definitions_not_the_paths() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/property"):
            return httpx.Response(404, json={"category": "OBJECT_NOT_FOUND", "message": "no such event"})
        return portal_serving("/events/2026-09")(request)

    client: HubSpotClient
    client, _, _ = client_with(answer, api_version="2026-09")
    with pytest.raises(HubSpotError) as caught:
        await client.add_event_property("pe1_gone", {"name": "plan"})
    assert caught.value.kind is Kind.NOT_FOUND and client.events.spelling == "/events/2026-09"
    await client.aclose()
