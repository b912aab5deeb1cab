"""Custom behavioral events: sending (one, or 500 a call), event definitions and their
properties, and reading the occurrences back. A portal without the scope is refused (403)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..hubspot.endpoints import ENDPOINTS
from . import errors
from .http import EVENT_PREFIXES, Handler, inputs_of, json_response, now_ms, read_json, route
from .state import PortalState

EVENTS_BATCH_LIMIT = 500


def routes() -> list[Route]:
    out = []
    # Every spelling HubSpot has published for each version; a portal serves one per version
    # (`PortalSettings.event_paths`), the others answer 404 as an unknown path does.
    for version, prefix in published_spellings():
        out += [
            route(prefix + "/send", served(version, prefix, events_send), ["POST"]),
            route(prefix + "/send/batch", served(version, prefix, events_send_batch), ["POST"]),
            route(prefix + "/event-definitions", served(version, prefix, definitions_list), ["GET"]),
            route(prefix + "/event-definitions", served(version, prefix, definitions_create), ["POST"]),
            route(prefix + "/event-definitions/{name}", served(version, prefix, definitions_get), ["GET"]),
            route(
                prefix + "/event-definitions/{name}/property",
                served(version, prefix, definitions_add_property),
                ["POST"],
            ),
        ]
    for events in EVENT_PREFIXES:  # reading occurrences back (the sandbox's, for tests)
        out += [
            route(events + "/events", events_list, ["GET"]),
            route(events + "/events/", events_list, ["GET"]),
        ]
    # ... and where HubSpot's 2026-03 files (and hubspot-sdk) read them
    out.append(route("/events/event-occurrences/2026-03", events_list, ["GET"]))
    return out


def published_spellings() -> list[tuple[str, str]]:
    """(version, prefix) of every published spelling of the custom-event endpoints."""
    return [(e.version, e.spelling) for e in ENDPOINTS if e.operation == "event_definitions.list"]


def served(version: str, prefix: str, handler: Handler) -> Handler:
    """`handler` where the portal serves this spelling of `version`'s paths; else HubSpot's 404
    for a path it does not serve."""

    async def endpoint(request: Request, portal: PortalState) -> Response:
        if not portal.settings.serves_events_at(version, prefix):
            raise HTTPException(404)
        return await handler(request, portal)

    return endpoint


def events_allowed(portal: PortalState) -> None:
    if not portal.settings.custom_events:
        raise errors.missing_scopes("analytics.behavioral_events.send")


async def events_send(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    body = portal.check_event(await read_json(request))
    portal.record_event(body, now_ms(request), str(uuid.uuid4()))
    return Response(status_code=204)


async def events_send_batch(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    inputs = inputs_of(await read_json(request), EVENTS_BATCH_LIMIT)
    checked = [portal.check_event(item) for item in inputs]  # one bad input fails the batch
    at = now_ms(request)
    for body in checked:
        portal.record_event(body, at, str(uuid.uuid4()))
    return Response(status_code=204)


async def definitions_list(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    return json_response({"total": len(portal.definitions), "results": list(portal.definitions.values())})


async def definitions_create(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.invalid_input("Invalid input JSON: an event definition is an object")
    return json_response(portal.define_event(body, now_ms(request)), 201)


async def definitions_get(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    return json_response(portal.definition(request.path_params["name"]))


async def definitions_add_property(request: Request, portal: PortalState) -> Response:
    events_allowed(portal)
    return json_response(
        portal.add_event_property(request.path_params["name"], await read_json(request)), 201
    )


async def events_list(request: Request, portal: PortalState) -> Response:
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
