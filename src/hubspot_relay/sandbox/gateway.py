"""The gateway: ASGI middleware around the sandbox's API routes, doing what HubSpot does before
and after an endpoint: authenticate (Bearer token or the legacy `hapikey`), apply injected
faults, admit the call against the credential's budget (or answer HubSpot's 429), add the
`X-HubSpot-RateLimit-*` headers, and record the call. Refusals become HubSpot's error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .accounts import Accounts
from .errors import ApiError
from .http import error_response, json_response
from .legacy import TRACKING_PIXEL_PATH
from .limits import TokenLimiter
from .oauth import TOKEN_PATHS

log = structlog.get_logger("hubspot_relay.sandbox")


class Gateway:
    def __init__(self, app: ASGIApp, accounts: Accounts) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accounts = self.accounts
        method, path = scope["method"], scope["path"]
        state = scope.setdefault("state", {})
        state["clock"] = accounts.clock
        rate_headers: dict[str, str] = {}
        hub_id = ""
        try:
            if path in TOKEN_PATHS and method == "POST":  # OAuth: the client's secret is the credential
                body = (await Request(scope, receive).body()).decode(errors="replace")
                grant = accounts.oauth.grant(dict(parse_qsl(body, max_num_fields=20)))
                response = json_response(grant)
                accounts.dirty = True
                accounts.calls.append((accounts.clock(), label(method, path), 200, "", 0))
                await response(scope, receive, send)
                return
            if path == TRACKING_PIXEL_PATH:  # the tracking host: a public pixel, no credentials
                portal = accounts.portals.get(Request(scope).query_params.get("_a", ""))
                hub_id = portal.hub_id if portal else ""
            else:
                credential, portal = accounts.authenticate(Request(scope, receive))
                hub_id = portal.hub_id
                await self._admit(method, path, accounts.limiter(credential, portal), rate_headers)
            state["portal"] = portal
            response = await self._dispatch(scope, receive)
            if (method != "GET" or path == TRACKING_PIXEL_PATH) and response.status_code < 400:
                accounts.dirty = True
        except ApiError as err:
            response = error_response(err)
        except Exception:
            log.exception("sandbox handler failed", path=path)
            response = error_response(errors.server_error(500))
        for key, value in rate_headers.items():
            response.headers[key] = value
        accounts.calls.append(
            (accounts.clock(), label(method, path), response.status_code, hub_id, state.get("records", 0))
        )
        await response(scope, receive, send)

    async def _admit(
        self, method: str, path: str, limiter: TokenLimiter, rate_headers: dict[str, str]
    ) -> None:
        """Let a call in, or refuse it as HubSpot would: an injected fault, or the budget spent
        (429). The budget's headers (`rate_headers`) go on the answer, whatever it is."""
        decision = self.accounts.faults.decide(method, path)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.hang_s:
            await asyncio.sleep(decision.hang_s)
            raise errors.server_error(504)
        now = self.accounts.clock()
        if decision.storm_policy:
            rate_headers.update(limiter.headers(now))
            raise errors.rate_limited(decision.storm_policy)
        if decision.status:
            raise errors.server_error(decision.status)
        policy = limiter.admit(now, search=path.endswith("/search"))
        rate_headers.update(limiter.headers(now))
        if policy:
            raise errors.rate_limited(policy)

    async def _dispatch(self, scope: Scope, receive: Receive) -> Response:
        """Run the routes and capture their answer, so that headers can be added to it."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = start.get("status", 500)
        response = Response(body, status_code=status)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if status not in (204, 304):
            headers.append((b"content-length", str(len(body)).encode()))
        response.raw_headers = headers
        return response


def label(method: str, path: str) -> str:
    """`POST /crm/v3/objects/contacts/batch/upsert`, with ids and emails folded."""
    parts = []
    for seg in path.split("/"):
        if seg.isdigit():
            seg = "{id}"
        elif "@" in seg:
            seg = "{email}"
        parts.append(seg)
    return f"{method} {'/'.join(parts)}"


def peak(times: Sequence[float], span: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - span:
            start += 1
        best = max(best, end - start + 1)
    return best
