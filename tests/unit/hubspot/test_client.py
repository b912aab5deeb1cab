"""The HubSpot client over a transport it is given (httpx's `MockTransport`): credentials on
every call, 429s waited out and retried in place, refusals sorted, the limiter told HubSpot's
headers. No network, no sandbox: each test's transport answers as HubSpot would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from hubspot_relay.config import sandbox_account
from hubspot_relay.errors import DailyLimitReached
from hubspot_relay.hubspot.client import HubSpotClient
from hubspot_relay.hubspot.errors import HubSpotError, Kind
from hubspot_relay.hubspot.ratelimit import AccountLimiter
from hubspot_relay.secrets import Secret
from tests.helpers import StillClock

pytestmark = pytest.mark.anyio


def client_with(
    answer: Callable[[httpx.Request], httpx.Response], *, legacy: bool = False, api_version: str = "2026-09"
) -> tuple[HubSpotClient, list[httpx.Request], AccountLimiter]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    account = replace(sandbox_account(), api_base="https://api.example", api_version=api_version)
    if legacy:
        account = replace(account, access_token=None, api_key=Secret("k-123"), api_mode="legacy")
    clock = StillClock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    limiter = AccountLimiter(100, 1000, clock=clock, sleep=sleep)
    return HubSpotClient(account, limiter, transport=httpx.MockTransport(handler)), seen, limiter


async def test_a_token_goes_as_bearer_and_the_answer_is_decoded() -> None:
    client, seen, _ = client_with(lambda r: httpx.Response(200, json={"results": [{"name": "email"}]}))
    assert await client.properties("contacts") == [{"name": "email"}]
    assert seen[0].headers["authorization"] == "Bearer sandbox-token"
    assert "hapikey" not in str(seen[0].url)
    await client.aclose()


async def test_an_api_key_goes_as_hapikey_on_api_calls() -> None:
    client, seen, _ = client_with(lambda r: httpx.Response(202), legacy=True)
    await client.legacy_batch([{"email": "a@x.com", "properties": []}])
    assert seen[0].url.params["hapikey"] == "k-123"
    assert "authorization" not in seen[0].headers
    await client.aclose()


async def test_a_429_is_waited_out_then_the_same_call_made_again() -> None:
    answers = iter(
        [
            httpx.Response(429, json={"policyName": "TEN_SECONDLY_ROLLING", "message": "slow down"}),
            httpx.Response(200, json={"results": []}),
        ]
    )
    client, seen, limiter = client_with(lambda r: next(answers))
    before = limiter.clock()
    assert await client.batch("contacts", "upsert", [{"id": "a@x.com"}]) == {"results": []}
    assert len(seen) == 2 and seen[0].content == seen[1].content
    assert limiter.clock() - before >= 10.0  # the rolling window's pause, on the limiter's clock
    await client.aclose()


async def test_a_daily_429_stops_until_the_reset() -> None:
    client, _, _ = client_with(lambda r: httpx.Response(429, json={"policyName": "DAILY"}))
    with pytest.raises(DailyLimitReached):
        await client.batch("contacts", "upsert", [{"id": "a@x.com"}])
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "kind"), [(400, Kind.VALIDATION), (401, Kind.PERMANENT), (503, Kind.RETRYABLE)]
)
async def test_a_refusal_is_raised_with_its_kind(status: int, kind: Kind) -> None:
    client, _, _ = client_with(lambda r: httpx.Response(status, json={"message": "no"}))
    with pytest.raises(HubSpotError) as caught:
        await client.send_events([{"eventName": "pe1_x"}])
    assert caught.value.kind is kind
    await client.aclose()


async def test_a_connection_error_is_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _, _ = client_with(refuse)
    with pytest.raises(HubSpotError) as caught:
        await client.schemas()
    assert caught.value.kind is Kind.RETRYABLE
    await client.aclose()


async def test_hubspots_headers_reach_the_limiter() -> None:
    headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    client, _, limiter = client_with(lambda r: httpx.Response(204, headers=headers))
    limiter.learn = True
    await client.send_events([])
    assert limiter.budget["window"] == 190
    await client.aclose()


async def test_paths_follow_the_accounts_api_version() -> None:
    client, seen, _ = client_with(lambda r: httpx.Response(204), api_version="v3")
    await client.send_events([])
    assert seen[0].url.path == "/events/v3/send/batch"
    await client.aclose()
