"""Sending companies: a refusal of a company call is settled by the one verdict table (a refused
token is the account's problem, a 5xx is retried, a 400 is the company's own), against the
in-process sandbox with HubSpot's answer replaced for company calls only."""

from __future__ import annotations

import httpx
import pytest

from hubspot_relay.queue.protocol import ReplayFilter
from tests.harness import Harness

pytestmark = pytest.mark.anyio


class RefuseCompanies(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, status: int) -> None:
        self.inner = inner
        self.status = status

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/companies" in request.url.path and request.method == "POST":
            body = {"status": "error", "message": "refused for the test", "category": "TEST"}
            return httpx.Response(self.status, json=body)
        return await self.inner.handle_async_request(request)


GROUP = {"type": "group", "userId": "ann@x.com", "groupId": "g1", "traits": {"name": "Initech"}}
ANN = {"type": "identify", "userId": "ann@x.com", "traits": {"email": "ann@x.com"}}


@pytest.mark.parametrize(
    ("status", "dead", "retrying", "problem"),
    [(401, 1, 0, "http_401"), (500, 0, 1, None), (400, 1, 0, None)],
)
async def test_a_refused_company_call(
    h: Harness, status: int, dead: int, retrying: int, problem: str | None
) -> None:
    h.transport.inner = RefuseCompanies(h.transport.inner, status)
    await h.send(ANN)
    await h.delivery.cycle()
    await h.send(GROUP)
    await h.delivery.cycle()
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.dead, counts.retrying) == (1, dead, retrying)
    kinds = [kind for _, kind, _, _ in h.identity.problems()]
    assert kinds == ([problem] if problem else [])
    if dead:
        (letter,) = await h.queue.dead_letters(10, ReplayFilter())
        assert letter.reason.startswith(f"HubSpot {status} TEST: refused for the test")
