"""The sandbox's own API under /_sandbox, for tests and benchmarks: the calls it received (by
endpoint and status, with the peak in any rolling 10 s and 1 s), a reset, fault rules, its
portals, and the legacy events the tracking pixel recorded. Not HubSpot's: no credentials."""

from __future__ import annotations

from collections import Counter

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import Accounts
from .gateway import peak
from .http import json_response


class Inspection:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def routes(self) -> list[Route]:
        return [
            Route("/_sandbox/calls", self.calls, methods=["GET"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
            Route("/_sandbox/faults", self.faults, methods=["GET", "POST"]),
            Route("/_sandbox/portals", self.portals, methods=["GET"]),
            Route("/_sandbox/portals/{hub_id}/legacy-events", self.legacy_events, methods=["GET"]),
            Route("/_sandbox/oauth", self.oauth, methods=["GET"]),
            Route("/_sandbox/oauth/revoke", self.oauth_revoke, methods=["POST"]),
            Route("/_sandbox/oauth/expire", self.oauth_expire, methods=["POST"]),
        ]

    async def calls(self, request: Request) -> Response:
        by_endpoint: dict[str, Counter[str]] = {}
        span: dict[str, list[float]] = {}
        for t, label, status, *_ in self.accounts.calls:
            by_endpoint.setdefault(label, Counter())[str(status)] += 1
            first_last = span.setdefault(label, [t, t])
            first_last[1] = t
        times = [t for t, *_ in self.accounts.calls]
        return json_response(
            {
                "total": len(self.accounts.calls),
                "by_endpoint": {k: dict(v) for k, v in sorted(by_endpoint.items())},
                "by_status": dict(Counter(str(s) for _, _, s, *_ in self.accounts.calls)),
                "peak_10s": peak(times, 10.0),
                "peak_1s": peak(times, 1.0),
                "first_last": span,
                "faults_injected": self.accounts.faults.injected,
                "events_dropped_as_duplicates": sum(
                    p.duplicates_dropped for p in self.accounts.portals.values()
                ),
                **(
                    {"timeline": [[t, label, status, n] for t, label, status, _, n in self.accounts.calls]}
                    if request.query_params.get("timeline")
                    else {}
                ),
            }
        )

    async def reset(self, request: Request) -> Response:
        self.accounts.reset()
        return json_response({"reset": True})

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.accounts.faults.configure(orjson.loads(await request.body() or b"{}"))
            except (ValueError, orjson.JSONDecodeError) as e:
                return json_response({"status": "error", "message": f"invalid fault rules: {e}"}, 400)
        return json_response(self.accounts.faults.as_json())

    async def portals(self, request: Request) -> Response:
        return json_response(
            [
                {
                    "hub_id": p.hub_id,
                    "tier": p.settings.tier,
                    "contacts": len(p.records["contacts"]),
                    "companies": len(p.records["companies"]),
                    "event_definitions": len(p.definitions),
                    "events": len(p.events),
                    "legacy_events": len(p.legacy_events),
                    "limits": {
                        "per_10s": p.settings.budget.per_10s,
                        "per_day": p.settings.budget.per_day,
                        "per_second": p.settings.budget.per_second,
                    },
                }
                for p in self.accounts.portals.values()
            ]
        )

    async def legacy_events(self, request: Request) -> Response:
        portal = self.accounts.portals.get(request.path_params["hub_id"])
        if portal is None:
            return json_response({"status": "error", "message": "no such portal"}, 404)
        return json_response({"results": portal.legacy_events})

    async def oauth(self, request: Request) -> Response:
        """How many refreshes were granted, and how many access tokens are live now."""
        server, now = self.accounts.oauth, self.accounts.clock()
        live = sum(1 for _, _, expires_at in server.access_tokens.values() if expires_at > now)
        summary = {"refreshes": server.refreshes, "live_tokens": live, "revoked": len(server.revoked)}
        return json_response(summary)

    async def oauth_revoke(self, request: Request) -> Response:
        """An app uninstalled: `{"refresh_token": ...}` is refused from now on."""
        body = await request.json()
        token = str(body.get("refresh_token", "")) if isinstance(body, dict) else ""
        if not self.accounts.oauth.revoke(token):
            return json_response({"status": "error", "message": "no such refresh token"}, 404)
        return json_response({"revoked": True})

    async def oauth_expire(self, request: Request) -> Response:
        """Every access token issued runs out now."""
        return json_response({"expired": self.accounts.oauth.expire_all()})
