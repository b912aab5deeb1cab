"""Properties: a portal's catalog per object type, read, created and changed (HubSpot's own
properties are read-only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors
from .catalog import custom_property
from .http import PROPERTY_PREFIXES, json_response, read_json, route
from .state import PortalState


def routes() -> list[Route]:
    out = []
    for props in PROPERTY_PREFIXES:
        out += [
            route(props + "/{objectType}", properties_list, ["GET"]),
            route(props + "/{objectType}", properties_create, ["POST"]),
            route(props + "/{objectType}/{name}", properties_get, ["GET"]),
            route(props + "/{objectType}/{name}", properties_update, ["PATCH"]),
        ]
    return out


async def properties_list(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    return json_response({"results": [p.as_json() for p in portal.properties_of(otype).values()]})


async def properties_get(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    prop = portal.properties_of(otype).get(request.path_params["name"])
    if prop is None:
        raise errors.not_found(f"Unable to find property {request.path_params['name']} for {otype}")
    return json_response(prop.as_json())


async def properties_create(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    body = await read_json(request)
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


async def properties_update(request: Request, portal: PortalState) -> Response:
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
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.invalid_input("Invalid input JSON: a property update is an object")
    spec = {**current.as_json(), **body, "name": current.name}
    try:
        prop = custom_property(spec, otype)
    except ValueError as e:
        raise errors.invalid_input(str(e)) from None
    portal.properties_of(otype)[prop.name] = prop
    return json_response(prop.as_json())
