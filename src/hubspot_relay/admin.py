"""The operations API under `/admin/api/`: what an operator (or `hubspot-relay status`) reads and does.

- `GET  /admin/api/status`: per source and account: queued, in flight, retrying, delivered, skipped
  (nothing for HubSpot: the browser sent it, ...), waiting (for the user's email), dead,
  oldest queued age; per account: calls and budget used today, paused, problems; back-pressure.
- `GET  /admin/api/dead-letters?source=&reason=&limit=`: dead letters with their reasons.
- `POST /admin/api/replay` `{"source", "reason", "messageIds"}`: re-queue matching dead letters.
- `POST /admin/api/accounts/{name}/pause` and `/resume`: stop or restart delivery to an account
  (kept across restarts); ingest keeps accepting meanwhile.

Every route asks `Access.admin` first: the admin token as a Bearer, or loopback without one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .access import Access
from .activity import ACTIVITY, TRACE
from .config import Config
from .delivery.loop import Delivery
from .health import StoreHealth
from .hubspot.errors import HubSpotError
from .preview import PreviewError, preview
from .queue.protocol import Envelope, Queue, ReplayFilter, SourceCounts, State
from .segment.backpressure import Backpressure
from .state.identity import Identities

MAX_DEAD_LETTERS = 1000
_STATES = {int(st): st.name.lower() for st in State}


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _bad(message: str) -> Response:
    return _json({"success": False, "code": "invalid_request", "message": message}, 400)


class AdminState:
    """What the API reads; filled in by the server once the queue and delivery are running."""

    def __init__(self) -> None:
        self.process_name = socket.gethostname()  # which relay process answered (several share Redis)
        self.deliveries: Sequence[Delivery] = ()
        self.identity: Identities | None = None
        self.backpressure: Backpressure | None = None
        self.health: StoreHealth | None = None


def skipped_because(skipped: list[tuple[str, str, str, int]], account: str) -> dict[str, int]:
    """An account's skipped messages by why, most first (as `hubspot_relay_skipped_because`)."""
    out: dict[str, int] = {}
    for a, _, reason, n in skipped:
        if a == account:
            out[reason] = out.get(reason, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def status_report(
    config: Config, queue: Queue, state: AdminState, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    now = clock()
    health = state.health
    try:
        counts = await queue.counts()
    except Exception as e:  # the store is down: say so, with what is known without it
        if health is None or not health.failed(e):
            raise
        counts = {}
    sources = {}
    for src in config.sources:
        c = counts.get(src.name)
        row: dict[str, Any] = dict((c or SourceCounts()).as_dict())
        oldest = c.oldest_queued_at if c else None
        row["oldest_queued_age_s"] = round(now - oldest, 1) if oldest else None
        row["account"] = src.account
        row["enabled"] = src.enabled
        sources[src.name] = row
    problems: list[tuple[str, str, str, float]] = []
    skipped: list[tuple[str, str, str, int]] = []
    if state.identity is not None:
        try:  # off the event loop: on Redis each is a round trip
            problems = await asyncio.to_thread(state.identity.problems)
            skipped = await asyncio.to_thread(state.identity.skipped)
        except Exception as e:  # kept in the same store (Redis) as the queue
            if health is None or not health.failed(e):
                raise
    for _, source, reason, n in skipped:
        if source in sources:
            sources[source].setdefault("skipped_because", {})[reason] = n
    by_account = {d.account.name: d for d in state.deliveries}
    accounts = {}
    for acc in config.accounts:
        names = [s.name for s in config.sources if s.account == acc.name]
        totals = {
            k: sum(sources[n][k] for n in names)
            for k in ("queued", "in_flight", "retrying", "delivered", "skipped", "waiting", "dead")
        }
        ages = [
            sources[n]["oldest_queued_age_s"] for n in names if sources[n]["oldest_queued_age_s"] is not None
        ]
        d = by_account.get(acc.name)
        accounts[acc.name] = {
            "hub_id": acc.hub_id,
            "api_mode": acc.api_mode,
            "api_version": acc.api_version if acc.api_mode == "v3" else None,
            "auth": acc.auth,
            # which published spelling of its version's custom-event paths the portal serves
            "paths": d.client.events.report() if d and acc.api_mode == "v3" else None,
            "oauth": d.client.oauth.report() if d and d.client.oauth else None,
            "sandbox": acc.sandbox,
            **totals,
            "oldest_queued_age_s": max(ages) if ages else None,
            "paused": bool(d and d.operator_paused),
            "daily_limit_until": d.paused_until if d and d.paused_until > now else None,
            "delivering": d is not None,
            "budget": d.client.limiter.usage() if d else None,
            "problems": [{"kind": k, "message": m, "since": t} for a, k, m, t in problems if a == acc.name],
            "skipped_because": skipped_because(skipped, acc.name),
        }
    reasons = state.backpressure.reasons() if state.backpressure else []
    store = health.report() if health is not None else None
    return {
        "status": "unavailable" if store and not store["up"] else "degraded" if reasons else "ok",
        "store": store,
        "degraded": reasons,
        "sources": sources,
        "accounts": accounts,
    }


class AdminApi:
    """The operations API's endpoints; each is guarded by the admin token (or the console's
    session, or loopback when no token is set)."""

    def __init__(self, config: Config, queue: Queue, access: Access, state: AdminState) -> None:
        self.config = config
        self.queue = queue
        self.access = access
        self.state = state

    def routes(self) -> list[Route]:
        guarded = self.guarded
        return [
            Route("/admin/api/status", guarded(self.status), methods=["GET"]),
            Route("/admin/api/activity", guarded(self.activity), methods=["GET"]),
            Route("/admin/api/messages", guarded(self.messages), methods=["GET"]),
            Route("/admin/api/preview", guarded(self.preview_message), methods=["POST"]),
            Route("/admin/api/dead-letters", guarded(self.dead_letters), methods=["GET"]),
            Route("/admin/api/replay", guarded(self.replay), methods=["POST"]),
            Route("/admin/api/accounts/{name}/pause", guarded(self.pausing(True)), methods=["POST"]),
            Route("/admin/api/accounts/{name}/resume", guarded(self.pausing(False)), methods=["POST"]),
        ]

    def guarded(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapper(request: Request) -> Response:
            refusal = self.access.admin(request)
            if refusal is not None:
                return refusal
            return await endpoint(request)

        return wrapper

    async def status(self, request: Request) -> Response:
        return _json(await status_report(self.config, self.queue, self.state))

    async def dead_letters(self, request: Request) -> Response:
        q = request.query_params
        limit_text = q.get("limit", "100")
        if (
            not limit_text.isascii()
            or not limit_text.isdigit()
            or not 1 <= int(limit_text) <= MAX_DEAD_LETTERS
        ):
            return _bad(f"limit: a whole number from 1 to {MAX_DEAD_LETTERS}")
        found = await self.queue.dead_letters(
            int(limit_text),
            ReplayFilter(source=q.get("source") or None, reason_contains=q.get("reason") or None),
        )
        return _json(
            {
                "dead_letters": [
                    {
                        "source": d.source,
                        "messageId": d.message_id,
                        "type": d.type,
                        "reason": d.reason,
                        "attempts": d.attempts,
                        "failed_at": d.failed_at,
                        "message": _body(d.body),
                    }
                    for d in found
                ]
            }
        )

    async def replay(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return _bad("the body must be JSON: {} for every dead letter, or source, reason, messageIds")
        if not isinstance(body, dict):
            return _bad("the body must be a JSON object")
        source, reason, ids = body.get("source"), body.get("reason"), body.get("messageIds") or []
        if not (source is None or isinstance(source, str)) or not (reason is None or isinstance(reason, str)):
            return _bad("source and reason must be strings")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 10_000:
            return _bad("messageIds must be a list of at most 10,000 strings")
        n = await self.queue.replay(
            ReplayFilter(source=source or None, reason_contains=reason or None, message_ids=tuple(ids))
        )
        return _json({"success": True, "replayed": n})

    def pausing(self, paused: bool) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            delivery = next((d for d in self.state.deliveries if d.account.name == name), None)
            if delivery is None:
                return _json(
                    {"success": False, "code": "not_found", "message": "no account delivers under that name"},
                    404,
                )
            delivery.pause(paused)
            return _json({"success": True, "account": name, "paused": paused})

        return endpoint

    async def activity(self, request: Request) -> Response:
        """Counts per minute over the last hour (this process's), for the console's charts."""
        return _json({**ACTIVITY.series(), "process": self.state.process_name, "since": ACTIVITY.started})

    async def messages(self, request: Request) -> Response:
        """The latest messages with what became of each (the live debugger)."""
        limit_text = request.query_params.get("limit", "50")
        if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 200:
            return _bad("limit: a whole number from 1 to 200")
        traced = {t.message_id: t for t in TRACE.latest(TRACE.size)}
        rows = []
        for message_id, mtype, st, error, body in await self.queue.recent(int(limit_text)):
            t = traced.get(message_id)
            rows.append(
                {
                    "messageId": message_id,
                    "type": mtype,
                    "state": _STATES.get(st, str(st)),
                    "source": t.source if t else None,
                    "outcome": t.outcome if t else None,
                    "reason": (t.reason if t else None) or error,
                    "calls": t.steps if t else [],
                    "message": _body(body),
                }
            )
        return _json({"messages": rows, "process": self.state.process_name})

    async def preview_message(self, request: Request) -> Response:
        """A dry run of one pasted message: the HubSpot requests it would become; with
        `"send": true`, it is then queued as if a client had sent it."""
        raw = await request.body()
        if len(raw) > 64_000:
            return _bad("the body is limited to 64 KB")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _bad('the body must be JSON: {"source": ..., "message": {...}, "send": false}')
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            return _bad("'message' must be a Segment message (a JSON object)")
        source = body.get("source") or (self.config.sources[0].name if self.config.sources else "")
        if not isinstance(source, str):
            return _bad("'source' must be a source's name")
        delivery = next((d for d in self.state.deliveries if source in d.sources), None)
        try:
            result = await preview(
                self.config,
                source,
                orjson.dumps(body["message"]),
                delivery=delivery,
                identity=self.state.identity,
            )
        except PreviewError as e:
            return _json({"success": False, "code": "invalid_message", "message": str(e)}, 400)
        except HubSpotError as e:
            return _json({"success": False, "code": "hubspot", "message": e.describe()}, 502)
        out = {"success": True, **result.as_dict(), "sent": False}
        if body.get("send") is True:
            if self.state.backpressure is not None and (reasons := self.state.backpressure.reasons()):
                return _json({**out, "note": "not queued: " + "; ".join(reasons)}, 503)
            msg = result.message
            user = str(msg.get("userId") or msg.get("anonymousId") or "")
            stored = orjson.dumps(msg)
            added = await self.queue.append(
                [Envelope(source, str(msg["messageId"]), str(msg["type"]), stored, time.time(), None, user)]
            )
            out["sent"] = bool(added)
            ACTIVITY.add(f"received:{source}", added)
            if not added:
                out["note"] = "a message with this messageId was received already: not queued again"
        return _json(out)


def admin_routes(config: Config, queue: Queue, access: Access, state: AdminState) -> list[Route]:
    return AdminApi(config, queue, access, state).routes()


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:2000].decode("utf-8", "replace")
