"""The delivery harness: delivery against the sandbox in the same process (HTTP over an ASGI
transport), with one clock for the queue, the limiter, delivery and the sandbox, moved by the
tests. A helper module, not a test module: tests import it, never each other."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hubspot_relay.config import SANDBOX_API_KEY, RateLimits, sandbox_account
from hubspot_relay.credentials import OAuthApp
from hubspot_relay.delivery.loop import Delivery
from hubspot_relay.hubspot.client import HubSpotClient
from hubspot_relay.hubspot.endpoints import find
from hubspot_relay.hubspot.oauth import FileTokens
from hubspot_relay.hubspot.ratelimit import AccountLimiter
from hubspot_relay.options import DeliveryOptions
from hubspot_relay.queue.protocol import Envelope
from hubspot_relay.queue.sqlite import SQLiteQueue
from hubspot_relay.sandbox import PortalSettings, Sandbox, create_sandbox_app
from hubspot_relay.secrets import Secret
from hubspot_relay.state.identity import IdentityMap

AUTH = {"Authorization": "Bearer sandbox-token"}
START = 1_795_867_200.0  # 2026-11-28T12:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Swappable(httpx.AsyncBaseTransport):
    """The sandbox as delivery's client reaches it, through `inner` (which a test may replace)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


class Published(httpx.AsyncBaseTransport):
    """Delivery's calls, each held to the table of what HubSpot publishes (hubspot/endpoints.py)
    for the account's API version: a call to any other path is noted (`drain` fails on it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, version: str) -> None:
        self.inner = inner
        self.version = version
        self.unpublished: list[str] = []
        self.operations: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        row = find(request.method, request.url.path)
        if row is None or row.version not in (self.version, "legacy"):
            self.unpublished.append(f"{request.method} {request.url.path}")
        else:
            self.operations.add(row.operation)
        return await self.inner.handle_async_request(request)


@dataclass
class Harness:
    sandbox: Sandbox
    queue: SQLiteQueue
    identity: IdentityMap
    delivery: Delivery
    http: httpx.AsyncClient  # the tests' own client of the sandbox
    clock: Clock
    transport: Swappable  # delivery's: a test may put a slower or hanging one in its place
    published: Published  # every call delivery made, held to HubSpot's published paths

    async def send(self, *messages: dict[str, Any], source: str = "web") -> None:
        envelopes = []
        for m in messages:
            m = {"messageId": str(uuid.uuid4()), "timestamp": "2026-11-28T11:59:00.000Z", **m}
            user = str(m.get("userId") or m.get("anonymousId") or "")  # as ingest sets it (partitions)
            envelopes.append(
                Envelope(source, m["messageId"], m["type"], orjson.dumps(m), self.clock.now, None, user)
            )
        await self.queue.append(envelopes)

    async def drain(self, *, max_cycles: int = 50, step: float = 0.0) -> None:
        """Deliver until nothing is left to lease (moving the clock so that retries come due, and
        by a flush window after each cycle, as the delivery loop waits)."""
        for _ in range(max_cycles):
            handled = await self.delivery.cycle()
            self.clock.now += self.delivery.options.flush_ms / 1000 or 0.1
            counts = (await self.queue.counts()).get("web")
            unpublished = self.published.unpublished
            assert not unpublished, f"not a path HubSpot publishes: {unpublished}"
            if counts and counts.queued + counts.in_flight + counts.retrying == 0:
                return
            if not handled:
                self.clock.now += step or 3601.0

    async def get(self, path: str) -> Any:
        r = await self.http.get(path, headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()

    async def contact(self, email: str, *props: str) -> dict[str, Any]:
        body = await self.get(
            f"/crm/objects/2026-09/contacts/{email}?idProperty=email&properties={','.join(props)}"
        )
        return dict(body["properties"])

    def calls(self) -> dict[str, Any]:
        by: dict[str, int] = {}
        for _, label, *_ in self.sandbox.calls:
            by[label] = by.get(label, 0) + 1
        return by


async def make(
    tmp_path: Path,
    *,
    portal: PortalSettings | None = None,
    legacy: bool = False,
    limits: RateLimits | None = None,
    queue_factory: Callable[[Clock], Any] | None = None,
    api_version: str | None = None,
    oauth: OAuthApp | None = None,
    **options: Any,
) -> Harness:
    clock = Clock()
    sandbox = create_sandbox_app([portal or PortalSettings()], clock=clock)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox")
    account = replace(sandbox_account(), api_base="http://sandbox", track_base="http://sandbox")
    if legacy:  # the seed's dialect: API key, contacts v1, the events HTTP API, 10 calls a second
        account = replace(
            account,
            api_mode="legacy",
            access_token=None,
            api_key=Secret(SANDBOX_API_KEY),
            limits=RateLimits(100, 40_000, 10),
        )
    if limits is not None:
        account = replace(account, limits=limits)
    if api_version is not None:
        account = replace(account, api_version=api_version)
    if oauth is not None:  # an OAuth app instead of the private app token (its tokens in a file)
        account = replace(account, access_token=None, oauth=oauth)
    # The harness's clock stands still: a partial batch call would wait for more for ever (the
    # tests of that wait ask for it).
    options.setdefault("batch_wait_ms", 0)
    opts = DeliveryOptions(**options)
    limiter = AccountLimiter(
        account.limits.per_10s,
        account.limits.per_day,
        account.limits.per_second,
        clock=clock,
        sleep=clock.sleep,
    )
    transport = Swappable(httpx.ASGITransport(app=sandbox))
    published = Published(transport, account.api_version)
    tokens = FileTokens(tmp_path / "oauth.json") if oauth is not None else None
    client = HubSpotClient(account, limiter, transport=published, tokens=tokens, wall_clock=clock)
    if queue_factory is not None:
        queue = queue_factory(clock)
    else:
        queue = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock)
    await queue.open()
    identity = IdentityMap(tmp_path / "identity.sqlite3")
    delivery = Delivery(account, opts, ["web"], queue, identity, client, clock=clock)
    return Harness(sandbox, queue, identity, delivery, http, clock, transport, published)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make(tmp_path)
    yield harness
    await harness.queue.close()
    harness.identity.close()


