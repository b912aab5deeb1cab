"""What the sandbox's API modules share: HubSpot's paths per version family, JSON in and out
in HubSpot's shapes, and a route whose handler gets the portal the gateway authenticated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..hubspot.paths import DATED_VERSIONS
from . import errors
from .errors import ApiError
from .state import PortalState, iso_ms

CRM_BATCH_LIMIT = 100
# HubSpot's dated path versions (hubspot/paths.py), served like the numbered family (v3, and
# v4 for associations): `/crm/objects/2026-09/contacts` is `/crm/v3/objects/contacts`.
CRM_PREFIXES = ("/crm/v3/objects", *(f"/crm/objects/{v}" for v in DATED_VERSIONS))
PROPERTY_PREFIXES = ("/crm/v3/properties", *(f"/crm/properties/{v}" for v in DATED_VERSIONS))
ASSOCIATION_PREFIXES = ("/crm/v4/associations", *(f"/crm/associations/{v}" for v in DATED_VERSIONS))
# Associations of one record live under the objects path (v4, or dated).
RECORD_ASSOCIATION_PREFIXES = ("/crm/v4/objects", *(f"/crm/objects/{v}" for v in DATED_VERSIONS))
EVENT_PREFIXES = ("/events/v3", *(f"/events/{v}" for v in DATED_VERSIONS))
SCHEMA_PREFIXES = (
    "/crm-object-schemas/v3/schemas",
    "/crm/v3/schemas",
    *(f"/crm-object-schemas/{v}/schemas" for v in DATED_VERSIONS),
)

Handler = Callable[[Request, PortalState], Awaitable[Response]]


def route(path: str, handler: Handler, methods: list[str]) -> Route:
    """A route to `handler(request, portal)`: the portal is the one the gateway authenticated."""

    async def endpoint(request: Request) -> Response:
        return await handler(request, request.state.portal)

    return Route(path, endpoint, methods=methods)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> Response:
    """The one place a refusal becomes HubSpot's error body."""
    return json_response(err.body, err.status, {**err.headers, **(headers or {})})


def now_ms(request: Request) -> int:
    """The sandbox's clock (the gateway hands it to every handler), in epoch milliseconds."""
    return int(request.state.clock() * 1000)


def wanted(request: Request) -> list[str] | None:
    """The `properties` a read asks for (repeated, or comma-separated), None for the defaults."""
    raw = request.query_params.getlist("properties")
    names = [n for item in raw for n in item.split(",") if n]
    return names or None


async def read_json(request: Request) -> Any:
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


def string_properties(raw: Any, where: str) -> dict[str, str]:
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


def inputs_of(body: Any, limit: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise errors.invalid_input(
            "Invalid input JSON: expected an object with 'inputs', a list",
            inputs=["This property is required"],
        )
    inputs: list[Any] = body["inputs"]
    if len(inputs) > limit:
        raise errors.invalid_input(
            f"Batch input limit exceeded: at most {limit} inputs per call; got {len(inputs)}",
            inputs=[f"At most {limit}"],
        )
    return inputs


def batch_body(results: list[dict[str, Any]], started: int, now_ms: int) -> dict[str, Any]:
    return {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(now_ms),
    }
