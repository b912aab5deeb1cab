"""The HubSpot sandbox as an ASGI app: HubSpot's endpoints, auth, limits and faults, plus a
small inspection API under /_sandbox for tests and benchmarks.

Every API call goes through `Sandbox.__call__`: authenticate (Bearer token or legacy
`hapikey`), apply injected faults, admit it against the token's budget (or answer HubSpot's
429), dispatch to the endpoint, add the `X-HubSpot-RateLimit-*` headers, and record it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ..hubspot.paths import DATED_VERSIONS
from . import errors
from .catalog import custom_property, validate_properties
from .errors import ApiError
from .faults import Faults
from .limits import TokenLimiter
from .settings import PortalSettings
from .state import PortalState, Record, iso_ms

log = structlog.get_logger("hubspot_relay.sandbox")

CRM_BATCH_LIMIT = 100
EVENTS_BATCH_LIMIT = 500
LEGACY_BATCH_LIMIT = 1000
# HubSpot's dated path versions (hubspot/paths.py), served like the numbered family (v3, and
# v4 for associations): `/crm/objects/2026-09/contacts` is `/crm/v3/objects/contacts`.
CRM_PREFIXES = ("/crm/v3/objects", *(f"/crm/objects/{v}" for v in DATED_VERSIONS))
# A 1x1 transparent GIF, what HubSpot's tracking host answers.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

Handler = Callable[[Request, PortalState], Awaitable[Response]]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> Response:
    return json_response(err.body, err.status, {**err.headers, **(headers or {})})


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


def _label(method: str, path: str) -> str:
    """`POST /crm/v3/objects/contacts/batch/upsert`, with ids and emails folded."""
    parts = []
    for seg in path.split("/"):
        if seg.isdigit():
            seg = "{id}"
        elif "@" in seg:
            seg = "{email}"
        parts.append(seg)
    return f"{method} {'/'.join(parts)}"


def _peak(times: Sequence[float], span: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - span:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        parsed = orjson.loads(body) if body.strip() else None
        if isinstance(parsed, dict) and isinstance(parsed.get("inputs"), list):
            request.scope.setdefault("state", {})["records"] = len(parsed["inputs"])  # for the call log
        return parsed
    except orjson.JSONDecodeError as e:
        raise errors.error(
            400, "VALIDATION_ERROR", f"Invalid input JSON on line 1, column {e.pos + 1}: {e.msg}"
        ) from None


def _string_properties(raw: Any, where: str) -> dict[str, str]:
    """v3 property maps: HubSpot's SDKs send every value as a string (null clears)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise errors.invalid_input(f"Invalid input JSON: {where}.properties must be an object")
    out = {}
    for key, value in raw.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, str):
            out[key] = value
        else:
            raise errors.invalid_input(
                f"Invalid input JSON: {where}.properties.{key} must be a string, got {type(value).__name__} "
                f'(HubSpot property values are strings: "true", "9.5", "1700000000000")',
                **{key: ["Must be a string"]},
            )
    return out


def _inputs(body: Any, limit: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise errors.invalid_input(
            "Invalid input JSON: expected an object with 'inputs', a list",
            inputs=["This property is required"],
        )
    inputs = body["inputs"]
    if len(inputs) > limit:
        raise errors.invalid_input(
            f"Batch input limit exceeded: at most {limit} inputs per call; got {len(inputs)}",
            inputs=[f"At most {limit}"],
        )
    return inputs


def _batch(results: list[dict[str, Any]], started: int, now_ms: int) -> dict[str, Any]:
    return {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(now_ms),
    }


class Sandbox:
    """The emulator: portals, credentials, limits, faults and the record of calls."""

    def __init__(
        self,
        portals: Sequence[PortalSettings] = (PortalSettings(),),
        *,
        clock: Callable[[], float] = time.time,
        state_path: Path | None = None,
    ) -> None:
        self.settings = list(portals)
        self.clock = clock
        self.state_path = state_path
        self.faults = Faults()
        self._dirty = False
        self.reset()
        self.router = Starlette(routes=self._routes())
        self.inspection = Starlette(
            routes=[
                Route("/_sandbox/calls", self._calls, methods=["GET"]),
                Route("/_sandbox/reset", self._reset, methods=["POST"]),
                Route("/_sandbox/faults", self._faults, methods=["GET", "POST"]),
                Route("/_sandbox/portals", self._portals, methods=["GET"]),
                Route("/_sandbox/portals/{hub_id}/legacy-events", self._legacy_events, methods=["GET"]),
            ]
        )

    # ---- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record, event and call: back to the configured portals."""
        self.portals = {p.hub_id: PortalState(p) for p in self.settings}
        self.tokens = {t: p.hub_id for p in self.settings for t in p.access_tokens}
        self.api_keys = {p.api_key.lower(): p.hub_id for p in self.settings if p.api_key}
        self.limiters: dict[str, TokenLimiter] = {}
        # (time, label, status, hub id, records in a batch call)
        self.calls: list[tuple[float, str, int, str, int]] = []
        self.faults = Faults()
        self._dirty = True

    def load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        with contextlib.closing(sqlite3.connect(self.state_path)) as db:
            for hub_id, blob in db.execute("SELECT hub_id, state FROM portals"):
                if hub_id in self.portals:
                    self.portals[hub_id].restore(orjson.loads(blob))
        self._dirty = False

    def save(self) -> None:
        if self.state_path is None or not self._dirty:
            return
        self._dirty = False
        rows = [(h, orjson.dumps(p.snapshot())) for h, p in self.portals.items()]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.state_path)) as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS portals (hub_id TEXT PRIMARY KEY, state BLOB NOT NULL)")
            db.executemany("INSERT OR REPLACE INTO portals (hub_id, state) VALUES (?, ?)", rows)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Load the state file, keep it written (at most a second behind), write it at the end."""
        self.load()

        async def flush() -> None:
            while True:
                await asyncio.sleep(1.0)
                self.save()

        task = asyncio.create_task(flush()) if self.state_path else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.save()

    # ---- the gateway ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_sandbox"):
            await self.inspection(scope, receive, send)
            return
        request = Request(scope, receive)
        method = scope["method"]
        label = _label(method, path)
        status = 500
        rate_headers: dict[str, str] = {}
        hub_id = ""
        try:
            if path == "/v1/event":  # the tracking host: a public pixel, no credentials
                portal = self.portals.get(request.query_params.get("_a", ""))
                hub_id = portal.hub_id if portal else ""
                response = await self._track(request, portal)
            else:
                credential, portal = self._authenticate(request)
                hub_id = portal.hub_id
                limiter = self._limiter(credential, portal)
                decision = self.faults.decide(method, path)
                if decision.latency_s:
                    await asyncio.sleep(decision.latency_s)
                if decision.hang_s:
                    await asyncio.sleep(decision.hang_s)
                    raise errors.server_error(504)
                now = self.clock()
                if decision.storm_policy:
                    rate_headers = limiter.headers(now)
                    raise errors.rate_limited(decision.storm_policy)
                if decision.status:
                    raise errors.server_error(decision.status)
                policy = limiter.admit(now, search=path.endswith("/search"))
                rate_headers = limiter.headers(now)
                if policy:
                    raise errors.rate_limited(policy)
                scope.setdefault("state", {})["portal"] = portal
                response = await self._dispatch(scope, receive)
                if method != "GET" and response.status_code < 400:
                    self._dirty = True
        except ApiError as err:
            response = error_response(err)
        except Exception:
            log.exception("sandbox handler failed", path=path)
            response = error_response(errors.server_error(500))
        for key, value in rate_headers.items():
            response.headers[key] = value
        status = response.status_code
        records = scope.get("state", {}).get("records", 0)
        self.calls.append((self.clock(), label, status, hub_id, records))
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        cm = self.lifespan()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await cm.__aenter__()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await cm.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authenticate(self, request: Request) -> tuple[str, PortalState]:
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            hub_id = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if hub_id is None:
                raise errors.invalid_token()
            return f"token:{token.strip()}", self.portals[hub_id]
        key = request.query_params.get("hapikey")
        if key:
            hub_id = self.api_keys.get(key.strip().lower())
            if hub_id is None:
                raise errors.invalid_api_key()
            return f"hapikey:{key.strip().lower()}", self.portals[hub_id]
        raise errors.missing_auth()

    def _limiter(self, credential: str, portal: PortalState) -> TokenLimiter:
        limiter = self.limiters.get(credential)
        if limiter is None:
            limiter = self.limiters[credential] = TokenLimiter(portal.settings.budget)
        return limiter

    async def _dispatch(self, scope: Scope, receive: Receive) -> Response:
        """Run the router and capture its response, so the gateway can add headers to it."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.router(scope, receive, capture)
        body = b"".join(chunks)
        status = start.get("status", 500)
        response = Response(body, status_code=status)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if status not in (204, 304):
            headers.append((b"content-length", str(len(body)).encode()))
        response.raw_headers = headers
        return response

    # ---- routes ---------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        def route(path: str, handler: Handler, methods: list[str]) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    return await handler(request, request.state.portal)
                except ApiError as err:
                    return error_response(err)

            return Route(path, endpoint, methods=methods)

        routes = []
        for p in CRM_PREFIXES:
            routes += [
                route(p + "/{objectType}/batch/{action}", self.crm_batch, ["POST"]),
                route(p + "/{objectType}/search", self.crm_search, ["POST"]),
                route(p + "/{objectType}", self.crm_list, ["GET"]),
                route(p + "/{objectType}", self.crm_create, ["POST"]),
                route(p + "/{objectType}/{objectId}", self.crm_get, ["GET"]),
                route(p + "/{objectType}/{objectId}", self.crm_update, ["PATCH"]),
                route(p + "/{objectType}/{objectId}", self.crm_archive, ["DELETE"]),
            ]
        # (numbered family, then each dated version: properties, associations, events)
        families = [("/crm/v3/properties", "/crm/v4/associations", "/crm/v4/objects", "/events/v3")] + [
            (f"/crm/properties/{v}", f"/crm/associations/{v}", f"/crm/objects/{v}", f"/events/{v}")
            for v in DATED_VERSIONS
        ]
        for props, assoc, objects, events in families:
            routes += [
                route(props + "/{objectType}", self.properties_list, ["GET"]),
                route(props + "/{objectType}", self.properties_create, ["POST"]),
                route(props + "/{objectType}/{name}", self.properties_get, ["GET"]),
                route(props + "/{objectType}/{name}", self.properties_update, ["PATCH"]),
                route(
                    objects + "/{fromType}/{fromId}/associations/default/{toType}/{toId}",
                    self.associate_default,
                    ["PUT"],
                ),
                route(assoc + "/{fromType}/{toType}/batch/associate/default", self.associate_batch, ["POST"]),
                route(assoc + "/{fromType}/{toType}/batch/create", self.associate_labelled_batch, ["POST"]),
                route(assoc + "/{fromType}/{toType}/labels", self.association_labels, ["GET"]),
                route(
                    objects + "/{fromType}/{fromId}/associations/{toType}", self.associations_list, ["GET"]
                ),
                route(events + "/send", self.events_send, ["POST"]),
                route(events + "/send/batch", self.events_send_batch, ["POST"]),
                route(events + "/event-definitions", self.definitions_list, ["GET"]),
                route(events + "/event-definitions", self.definitions_create, ["POST"]),
                route(events + "/event-definitions/{name}", self.definitions_get, ["GET"]),
                route(events + "/event-definitions/{name}/property", self.definitions_add_property, ["POST"]),
                route(events + "/events", self.events_list, ["GET"]),
                route(events + "/events/", self.events_list, ["GET"]),
            ]
        for schemas in (
            "/crm-object-schemas/v3/schemas",
            "/crm/v3/schemas",
            *(f"/crm-object-schemas/{v}/schemas" for v in DATED_VERSIONS),
        ):
            routes.append(route(schemas, self.schemas_list, ["GET"]))
        routes += [
            route(
                "/contacts/v1/contact/createOrUpdate/email/{email}/", self.legacy_create_or_update, ["POST"]
            ),
            route(
                "/contacts/v1/contact/createOrUpdate/email/{email}", self.legacy_create_or_update, ["POST"]
            ),
            route("/contacts/v1/contact/batch/", self.legacy_batch, ["POST"]),
            route("/contacts/v1/contact/batch", self.legacy_batch, ["POST"]),
            route("/contacts/v1/contact/email/{email}/profile", self.legacy_profile, ["GET"]),
            route("/properties/v1/contacts/properties", self.legacy_properties, ["GET"]),
        ]
        return routes

    # ---- CRM objects ----------------------------------------------------------------------

    def _wanted(self, request: Request) -> list[str] | None:
        raw = request.query_params.getlist("properties")
        names = [n for item in raw for n in item.split(",") if n]
        return names or None

    def _record(self, portal: PortalState, otype: str, object_id: str, id_property: str | None) -> Record:
        record = portal.find(otype, object_id, id_property)
        if record is None:
            raise errors.not_found("Object not found.  objectId are usually numeric.")
        return record

    def _validated(
        self, portal: PortalState, otype: str, values: dict[str, str]
    ) -> tuple[dict[str, str], list[Any]]:
        return validate_properties(portal.properties_of(otype), values)

    async def crm_list(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        limit = min(int(request.query_params.get("limit", "10")), 100)
        after = int(request.query_params.get("after", "0") or 0)
        records = sorted((r for r in portal.records[otype].values() if r.id > after), key=lambda r: r.id)
        page = records[:limit]
        body: dict[str, Any] = {"results": [portal.json(r, otype, self._wanted(request)) for r in page]}
        if len(records) > limit:
            body["paging"] = {"next": {"after": str(page[-1].id), "link": ""}}
        return json_response(body)

    async def crm_create(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        body = await _json(request) or {}
        values, failures = self._validated(portal, otype, _string_properties(body.get("properties"), "input"))
        if failures:
            raise errors.validation_failed(failures)
        record = portal.create(otype, values, _now_ms(self.clock))
        return json_response(portal.json(record, otype, list(values) or None), 201)

    async def crm_get(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        record = self._record(
            portal, otype, request.path_params["objectId"], request.query_params.get("idProperty")
        )
        return json_response(portal.json(record, otype, self._wanted(request)))

    async def crm_update(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        record = self._record(
            portal, otype, request.path_params["objectId"], request.query_params.get("idProperty")
        )
        body = await _json(request) or {}
        values, failures = self._validated(portal, otype, _string_properties(body.get("properties"), "input"))
        if failures:
            raise errors.validation_failed(failures)
        portal.update(otype, record, values, _now_ms(self.clock))
        return json_response(portal.json(record, otype, list(values) or None))

    async def crm_archive(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        record = portal.find(otype, request.path_params["objectId"])
        if record is not None:
            portal.remove(otype, record)
        return Response(status_code=204)

    async def crm_batch(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        action = request.path_params["action"]
        if action not in ("create", "read", "update", "upsert", "archive"):
            raise errors.not_found(f"Unknown batch action {action}")
        started = now_ms = _now_ms(self.clock)
        body = await _json(request)
        inputs = _inputs(body, CRM_BATCH_LIMIT)
        wanted = body.get("properties") or None
        if action == "read":
            return self._batch_read(portal, otype, inputs, body.get("idProperty"), wanted, started)
        if action == "archive":
            for item in inputs:
                record = portal.find(otype, str(item.get("id", "")))
                if record is not None:
                    portal.remove(otype, record)
            return Response(status_code=204)
        # Validate every input first: one bad input fails the whole batch, as at HubSpot.
        prepared: list[tuple[dict[str, Any], dict[str, str]]] = []
        failures: list[Any] = []
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise errors.invalid_input(f"Invalid input JSON: inputs[{i}] must be an object")
            props = _string_properties(item.get("properties"), f"inputs[{i}]")
            id_property = item.get("idProperty")
            if action == "upsert" and id_property and id_property != "hs_object_id":
                props.setdefault(id_property, str(item.get("id", "")))  # the key is a value too
            values, bad = self._validated(portal, otype, props)
            failures += bad
            prepared.append((item, values))
        if failures:
            raise errors.validation_failed(failures)
        if action in ("update", "upsert"):
            keys = [(str(item.get("id", "")).lower(), item.get("idProperty")) for item, _ in prepared]
            if len(set(keys)) != len(keys):
                raise errors.invalid_input("Duplicate IDs found in batch input: each record may appear once")
        results: list[dict[str, Any]] = []
        if action == "create":
            for _, values in prepared:
                portal._unique_conflicts(otype, values)
            records = [portal.create(otype, values, now_ms) for _, values in prepared]
            results = [
                portal.json(r, otype, list(v) or None) for r, (_, v) in zip(records, prepared, strict=True)
            ]
            return json_response(_batch(results, started, now_ms), 201)
        if action == "update":
            targets = []
            for item, values in prepared:
                record = portal.find(otype, str(item.get("id", "")), item.get("idProperty"))
                if record is None:
                    raise errors.error(
                        400,
                        "OBJECT_NOT_FOUND",
                        "Object not found.  objectId are usually numeric.",
                        context={"ids": [str(item.get("id"))]},
                    )
                targets.append((record, values))
            for record, values in targets:
                portal.update(otype, record, values, now_ms)
            results = [portal.json(r, otype, list(v) or None) for r, v in targets]
            return json_response(_batch(results, started, now_ms))
        # upsert: by a unique property; a missing record is created with that value
        for item, values in prepared:
            id_property = item.get("idProperty") or "hs_object_id"
            id_value = str(item.get("id", ""))
            if not id_value:
                raise errors.invalid_input("Each upsert input needs an id", id=["This property is required"])
            record = portal.find(otype, id_value, id_property)
            if record is None:
                if id_property == "hs_object_id":
                    raise errors.error(
                        400, "OBJECT_NOT_FOUND", f"No {portal.singular(otype)} with ID {id_value} exists"
                    )
                record = portal.create(otype, values, now_ms)
                results.append(portal.json(record, otype, list(values) or None, new=True))
            else:
                portal.update(otype, record, values, now_ms)
                results.append(portal.json(record, otype, list(values) or None, new=False))
        return json_response(_batch(results, started, now_ms))

    def _batch_read(
        self,
        portal: PortalState,
        otype: str,
        inputs: list[Any],
        id_property: str | None,
        wanted: list[str] | None,
        started: int,
    ) -> Response:
        found, missing = [], []
        for item in inputs:
            value = str(item.get("id", "")) if isinstance(item, dict) else ""
            record = portal.find(otype, value, id_property)
            if record is None:
                missing.append(value)
            else:
                found.append(portal.json(record, otype, wanted))
        body = _batch(found, started, _now_ms(self.clock))
        if missing:
            body["numErrors"] = 1
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {portal.singular(otype).upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
            return json_response(body, 207)
        return json_response(body)

    async def crm_search(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        body = await _json(request) or {}
        groups = body.get("filterGroups") or []
        query = str(body.get("query") or "").lower()
        limit = min(int(body.get("limit") or 10), 200)
        after = int(body.get("after") or 0)

        def matches(record: Record) -> bool:
            props = record.properties
            if query and not any(
                query in (props.get(k) or "").lower()
                for k in ("email", "firstname", "lastname", "phone", "company", "name", "domain")
            ):
                return False
            return not groups or any(all(_filter(props, f) for f in g.get("filters", [])) for g in groups)

        hits = sorted((r for r in portal.records[otype].values() if matches(r)), key=lambda r: r.id)
        page = hits[after : after + limit]
        out: dict[str, Any] = {
            "total": len(hits),
            "results": [portal.json(r, otype, body.get("properties") or None) for r in page],
        }
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(out)

    # ---- properties -----------------------------------------------------------------------

    async def properties_list(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        return json_response({"results": [p.as_json() for p in portal.properties_of(otype).values()]})

    async def properties_get(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        prop = portal.properties_of(otype).get(request.path_params["name"])
        if prop is None:
            raise errors.not_found(f"Unable to find property {request.path_params['name']} for {otype}")
        return json_response(prop.as_json())

    async def properties_create(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        body = await _json(request)
        if not isinstance(body, dict):
            raise errors.invalid_input("Invalid input JSON: a property is an object")
        try:
            prop = custom_property(body, otype)
        except ValueError as e:
            raise errors.invalid_input(str(e)) from None
        if prop.name in portal.properties_of(otype):
            raise errors.error(409, "OBJECT_ALREADY_EXISTS", f"Property {prop.name} already exists")
        portal.properties_of(otype)[prop.name] = prop
        return json_response(prop.as_json(), 201)

    async def properties_update(self, request: Request, portal: PortalState) -> Response:
        otype = portal.object_type(request.path_params["objectType"])
        current = portal.properties_of(otype).get(request.path_params["name"])
        if current is None:
            raise errors.not_found(f"Unable to find property {request.path_params['name']} for {otype}")
        if not current.custom:
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                f"{current.name} is a HubSpot-defined property; its definition is read-only",
            )
        body = await _json(request)
        if not isinstance(body, dict):
            raise errors.invalid_input("Invalid input JSON: a property update is an object")
        spec = {**current.as_json(), **body, "name": current.name}
        try:
            prop = custom_property(spec, otype)
        except ValueError as e:
            raise errors.invalid_input(str(e)) from None
        portal.properties_of(otype)[prop.name] = prop
        return json_response(prop.as_json())

    # ---- associations ---------------------------------------------------------------------

    def _association(
        self,
        portal: PortalState,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_id: int | None = None,
    ) -> dict[str, Any]:
        ft, tt = portal.object_type(from_type), portal.object_type(to_type)
        if not (from_id.isdigit() and to_id.isdigit()):
            raise errors.invalid_input("Object ids are numeric")
        chosen = portal.associate(ft, int(from_id), tt, int(to_id), type_id)
        category = portal.types.association_type(ft, tt, chosen)[2]
        return {
            "from": {"id": from_id},
            "to": {"id": to_id},
            "associationSpec": {"associationCategory": category, "associationTypeId": chosen},
        }

    async def associate_default(self, request: Request, portal: PortalState) -> Response:
        p = request.path_params
        started = _now_ms(self.clock)
        result = self._association(portal, p["fromType"], p["fromId"], p["toType"], p["toId"])
        return json_response(_batch([result], started, _now_ms(self.clock)))

    async def associate_batch(self, request: Request, portal: PortalState) -> Response:
        p = request.path_params
        started = _now_ms(self.clock)
        inputs = _inputs(await _json(request), CRM_BATCH_LIMIT)
        results = [
            self._association(
                portal,
                p["fromType"],
                str(i.get("from", {}).get("id", "")),
                p["toType"],
                str(i.get("to", {}).get("id", "")),
            )
            for i in inputs
        ]
        return json_response(_batch(results, started, _now_ms(self.clock)))

    async def associate_labelled_batch(self, request: Request, portal: PortalState) -> Response:
        """`POST .../associations/{from}/{to}/batch/create`: each input with its `types`."""
        p = request.path_params
        started = _now_ms(self.clock)
        results = []
        for i in _inputs(await _json(request), CRM_BATCH_LIMIT):
            types = i.get("types")
            if not isinstance(types, list) or not types:
                raise errors.invalid_input(
                    "Each input needs types: [{associationCategory, associationTypeId}]"
                )
            for t in types:
                type_id = t.get("associationTypeId") if isinstance(t, dict) else None
                if not isinstance(type_id, int):
                    raise errors.invalid_input("associationTypeId must be a number")
                results.append(
                    self._association(
                        portal,
                        p["fromType"],
                        str(i.get("from", {}).get("id", "")),
                        p["toType"],
                        str(i.get("to", {}).get("id", "")),
                        type_id,
                    )
                )
        return json_response(_batch(results, started, _now_ms(self.clock)))

    async def association_labels(self, request: Request, portal: PortalState) -> Response:
        p = request.path_params
        ft, tt = portal.object_type(p["fromType"]), portal.object_type(p["toType"])
        return json_response({"results": portal.types.labels(ft, tt)})

    async def associations_list(self, request: Request, portal: PortalState) -> Response:
        p = request.path_params
        ft, tt = portal.object_type(p["fromType"]), portal.object_type(p["toType"])
        if not p["fromId"].isdigit() or int(p["fromId"]) not in portal.records[ft]:
            raise errors.not_found(f"No {portal.singular(ft)} with ID {p['fromId']} exists")
        results = []
        for to_id, type_ids in portal.associated(ft, int(p["fromId"]), tt).items():
            kinds = []
            for type_id in type_ids:
                _, label, category = portal.types.association_type(ft, tt, type_id)
                kinds.append({"category": category, "typeId": type_id, "label": label})
            results.append({"toObjectId": to_id, "associationTypes": kinds})
        return json_response({"results": results})

    async def schemas_list(self, request: Request, portal: PortalState) -> Response:
        """The portal's custom object schemas (`GET /crm-object-schemas/.../schemas`)."""
        results = []
        for otype in portal.types.types.values():
            if not otype.custom:
                continue
            associations = [
                {
                    "fromObjectTypeId": otype.type_id,
                    "toObjectTypeId": portal.types.types[t].type_id,
                    "id": str(types[0][0]),
                    "name": f"{otype.singular}_to_{portal.singular(t)}",
                }
                for (f, t), types in portal.types.associations.items()
                if f == otype.name
            ]
            results.append(
                {
                    "id": otype.type_id.split("-", 1)[1],
                    "objectTypeId": otype.type_id,
                    "fullyQualifiedName": otype.name,
                    "name": otype.singular,
                    "labels": {"singular": otype.label, "plural": otype.label + "s"},
                    "primaryDisplayProperty": otype.primary_display,
                    "properties": [prop.as_json() for prop in portal.properties_of(otype.name).values()],
                    "associations": associations,
                    "archived": False,
                }
            )
        return json_response({"results": results})

    # ---- custom behavioral events -----------------------------------------------------------

    def _events_allowed(self, portal: PortalState) -> None:
        if not portal.settings.custom_events:
            raise errors.missing_scopes("analytics.behavioral_events.send")

    async def events_send(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        body = portal.check_event(await _json(request))
        portal.record_event(body, _now_ms(self.clock), str(uuid.uuid4()))
        return Response(status_code=204)

    async def events_send_batch(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        inputs = _inputs(await _json(request), EVENTS_BATCH_LIMIT)
        checked = [portal.check_event(item) for item in inputs]  # one bad input fails the batch
        now_ms = _now_ms(self.clock)
        for body in checked:
            portal.record_event(body, now_ms, str(uuid.uuid4()))
        return Response(status_code=204)

    async def definitions_list(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        return json_response({"total": len(portal.definitions), "results": list(portal.definitions.values())})

    async def definitions_create(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        body = await _json(request)
        if not isinstance(body, dict):
            raise errors.invalid_input("Invalid input JSON: an event definition is an object")
        return json_response(portal.define_event(body, _now_ms(self.clock)), 201)

    async def definitions_get(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        return json_response(portal.definition(request.path_params["name"]))

    async def definitions_add_property(self, request: Request, portal: PortalState) -> Response:
        self._events_allowed(portal)
        return json_response(
            portal.add_event_property(request.path_params["name"], await _json(request)), 201
        )

    async def events_list(self, request: Request, portal: PortalState) -> Response:
        q = request.query_params
        events = portal.events
        if q.get("eventType"):
            events = [e for e in events if e["eventType"] == q["eventType"]]
        if q.get("objectId"):
            events = [e for e in events if e["objectId"] == q["objectId"]]
        if q.get("objectType") and q["objectType"].lower() not in ("contact", "contacts", "0-1"):
            events = []
        limit = min(int(q.get("limit", "100")), 1000)
        after = int(q.get("after", "0") or 0)
        page = events[after : after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(events):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(body)

    # ---- legacy (seed era) ------------------------------------------------------------------

    @staticmethod
    def _legacy_values(raw: Any) -> dict[str, str]:
        if not isinstance(raw, list):
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                'Invalid input JSON: \'properties\' must be a list of {"property": name, "value": value}',
            )
        out = {}
        for item in raw:
            if not isinstance(item, dict) or "property" not in item:
                raise errors.error(400, "VALIDATION_ERROR", "Each property needs 'property' and 'value'")
            value = item.get("value")
            out[str(item["property"])] = (
                "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            )
        return out

    @staticmethod
    def _legacy_error(message: str, results: list[Any], **extra: Any) -> ApiError:
        return ApiError(
            400,
            {
                "status": "error",
                "message": message,
                "correlationId": errors.correlation_id(),
                "validationResults": results,
                "requestId": str(uuid.uuid4()),
                **extra,
            },
        )

    async def legacy_create_or_update(self, request: Request, portal: PortalState) -> Response:
        email = request.path_params["email"]
        body = await _json(request) or {}
        values, failures = validate_properties(
            portal.properties_of("contacts"),
            {"email": email, **self._legacy_values(body.get("properties", []))},
        )
        if failures:
            bad_email = any(f["error"] == "INVALID_EMAIL" for f in failures)
            raise self._legacy_error(
                "Invalid email address" if bad_email else "Property values were not valid", failures
            )
        now_ms = _now_ms(self.clock)
        record = portal.find("contacts", email, "email")
        if record is None:
            record = portal.create("contacts", values, now_ms)
            return json_response({"vid": record.id, "isNew": True})
        portal.update("contacts", record, values, now_ms)
        return json_response({"vid": record.id, "isNew": False})

    async def legacy_batch(self, request: Request, portal: PortalState) -> Response:
        body = await _json(request)
        if not isinstance(body, list):
            raise errors.error(400, "VALIDATION_ERROR", "Invalid input JSON: the body is a list of contacts")
        if len(body) > LEGACY_BATCH_LIMIT:
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                f"Batch size limit exceeded: at most {LEGACY_BATCH_LIMIT} contacts; got {len(body)}",
            )
        catalog = portal.properties_of("contacts")
        prepared, failures, invalid_emails = [], [], []
        for i, item in enumerate(body):
            if not isinstance(item, dict) or not (item.get("email") or item.get("vid")):
                raise errors.error(400, "VALIDATION_ERROR", f"Contact {i} needs an email or a vid")
            values = self._legacy_values(item.get("properties", []))
            if item.get("email"):
                values["email"] = str(item["email"])
            clean, bad = validate_properties(catalog, values)
            for f in bad:
                if f["error"] == "INVALID_EMAIL":
                    invalid_emails.append(values.get("email"))
                failures.append({"index": i, "propertyValidationResult": f})
            prepared.append((item, clean))
        if failures:
            raise ApiError(
                400,
                {
                    "status": "error",
                    "message": "Errors found processing batch update",
                    "correlationId": errors.correlation_id(),
                    "invalidEmails": invalid_emails,
                    "failureMessages": failures,
                },
            )
        now_ms = _now_ms(self.clock)
        for item, values in prepared:
            record = (
                portal.find("contacts", str(item["vid"]))
                if item.get("vid")
                else portal.find("contacts", values["email"], "email")
            )
            if record is None:
                portal.create("contacts", values, now_ms)
            else:
                portal.update("contacts", record, values, now_ms)
        return Response(status_code=202)

    async def legacy_profile(self, request: Request, portal: PortalState) -> Response:
        record = portal.find("contacts", request.path_params["email"], "email")
        if record is None:
            raise ApiError(
                404,
                {
                    "status": "error",
                    "message": "contact does not exist",
                    "correlationId": errors.correlation_id(),
                    "requestId": str(uuid.uuid4()),
                    "category": "OBJECT_NOT_FOUND",
                },
            )
        props = {
            k: {
                "value": v,
                "versions": [
                    {
                        "value": v,
                        "source-type": "API",
                        "source-id": None,
                        "timestamp": record.updated_ms,
                        "selected": False,
                    }
                ],
            }
            for k, v in record.properties.items()
        }
        return json_response(
            {
                "vid": record.id,
                "canonical-vid": record.id,
                "portal-id": int(portal.hub_id),
                "is-contact": True,
                "properties": props,
                "merged-vids": [],
                "form-submissions": [],
                "list-memberships": [],
                "identity-profiles": [
                    {
                        "vid": record.id,
                        "identities": [
                            {
                                "type": "EMAIL",
                                "value": record.properties.get("email"),
                                "timestamp": record.created_ms,
                            }
                        ],
                    }
                ],
            }
        )

    async def legacy_properties(self, request: Request, portal: PortalState) -> Response:
        return json_response([p.as_legacy_json() for p in portal.properties_of("contacts").values()])

    async def _track(self, request: Request, portal: PortalState | None) -> Response:
        """`GET /v1/event`: the events HTTP API. Always a pixel, as HubSpot answers."""
        q = request.query_params
        if portal is not None and q.get("_n"):
            now_ms = _now_ms(self.clock)
            email = q.get("email")
            catalog = portal.properties_of("contacts")
            extra = {k: v for k, v in q.items() if not k.startswith("_") and k != "email"}
            writable = {k: v for k, v in extra.items() if k in catalog and not catalog[k].read_only_value}
            values, _ = validate_properties(catalog, writable)
            contact_id = None
            if email:
                contact = portal.contact_for_email(email, now_ms)
                if values:
                    portal.update("contacts", contact, values, now_ms)
                contact_id = contact.id
            portal.legacy_events.append(
                {
                    "eventId": q["_n"],
                    "email": email,
                    "value": q.get("_m"),
                    "contactId": contact_id,
                    "occurredAt": iso_ms(now_ms),
                    "properties": extra,
                }
            )
            self._dirty = True
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-cache"})

    # ---- inspection -----------------------------------------------------------------------

    async def _calls(self, request: Request) -> Response:
        by_endpoint: dict[str, Counter[str]] = {}
        span: dict[str, list[float]] = {}
        for t, label, status, *_ in self.calls:
            by_endpoint.setdefault(label, Counter())[str(status)] += 1
            first_last = span.setdefault(label, [t, t])
            first_last[1] = t
        times = [t for t, *_ in self.calls]
        return json_response(
            {
                "total": len(self.calls),
                "by_endpoint": {k: dict(v) for k, v in sorted(by_endpoint.items())},
                "by_status": dict(Counter(str(s) for _, _, s, *_ in self.calls)),
                "peak_10s": _peak(times, 10.0),
                "peak_1s": _peak(times, 1.0),
                "first_last": span,
                "faults_injected": self.faults.injected,
                "events_dropped_as_duplicates": sum(p.duplicates_dropped for p in self.portals.values()),
                **(
                    {"timeline": [[t, label, status, n] for t, label, status, _, n in self.calls]}
                    if request.query_params.get("timeline")
                    else {}
                ),
            }
        )

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    async def _faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.faults.configure(orjson.loads(await request.body() or b"{}"))
            except (ValueError, orjson.JSONDecodeError) as e:
                return json_response({"status": "error", "message": f"invalid fault rules: {e}"}, 400)
        return json_response(self.faults.as_json())

    async def _portals(self, request: Request) -> Response:
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
                for p in self.portals.values()
            ]
        )

    async def _legacy_events(self, request: Request) -> Response:
        portal = self.portals.get(request.path_params["hub_id"])
        if portal is None:
            return json_response({"status": "error", "message": "no such portal"}, 404)
        return json_response({"results": portal.legacy_events})


_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


def _filter(props: dict[str, str], f: dict[str, Any]) -> bool:
    """One search filter, with HubSpot's operators."""
    name, op = f.get("propertyName", ""), f.get("operator", "EQ")
    have = props.get(name)
    value = f.get("value")
    if op == "HAS_PROPERTY":
        return have is not None
    if op == "NOT_HAS_PROPERTY":
        return have is None
    if op in ("IN", "NOT_IN"):
        values = [str(v).lower() for v in f.get("values", [])]
        inside = have is not None and have.lower() in values
        return inside if op == "IN" else not inside
    if have is None:
        return op == "NEQ"
    if op == "EQ":
        return have.lower() == str(value).lower()
    if op == "NEQ":
        return have.lower() != str(value).lower()
    if op == "CONTAINS_TOKEN":
        return str(value).lower().strip("*") in have.lower()
    if op in ("GT", "GTE", "LT", "LTE") and _NUMERIC.match(have) and _NUMERIC.match(str(value)):
        a, b = float(have), float(str(value))
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
    return False


def create_sandbox_app(
    portals: Sequence[PortalSettings] = (PortalSettings(),),
    *,
    clock: Callable[[], float] = time.time,
    state_path: Path | None = None,
) -> Sandbox:
    return Sandbox(portals, clock=clock, state_path=state_path)
