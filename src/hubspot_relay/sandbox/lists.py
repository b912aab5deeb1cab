"""Lists (HubSpot's "segments"): create one, find it by name, add and remove its members, read
them back; on v3 (`/crm/v3/lists`) and the dated families (`/crm/lists/2026-03`, `-09`), as
HubSpot's lists files (CRM/Lists/Rollouts/144891) and hubspot-sdk have them. Only MANUAL and
SNAPSHOT lists take members; list names are unique whatever their case
(`ILS.DUPLICATE_LIST_NAMES`); a membership answer names what was added (`recordsIdsAdded`, as the
reference and the SDKs spell it), removed and missing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..hubspot.paths import DATED_VERSIONS
from . import errors
from .http import json_response, now_ms, read_json, route
from .state import PortalState, iso_ms

LIST_PREFIXES = ("/crm/v3/lists", *(f"/crm/lists/{v}" for v in DATED_VERSIONS))
PROCESSING_TYPES = ("MANUAL", "SNAPSHOT", "DYNAMIC")
TAKE_MEMBERS = ("MANUAL", "SNAPSHOT")
MEMBERSHIP_LIMIT = 100_000


def routes() -> list[Route]:
    out = []
    for p in LIST_PREFIXES:
        out += [
            route(p, create, ["POST"]),
            route(p + "/", create, ["POST"]),  # hubspot-api-client's spelling of the same call
            route(p + "/object-type-id/{objectTypeId}/name/{listName}", get_by_name, ["GET"]),
            route(p + "/{listId}", get_by_id, ["GET"]),
            route(p + "/{listId}/memberships/add-and-remove", add_and_remove, ["PUT"]),
            route(p + "/{listId}/memberships/add", add, ["PUT"]),
            route(p + "/{listId}/memberships/remove", remove, ["PUT"]),
            route(p + "/{listId}/memberships", memberships, ["GET"]),
        ]
    return out


def _type_id(portal: PortalState, raw: Any) -> str:
    otype = portal.object_type(str(raw or ""))
    return portal.types.types[otype].type_id


async def create(request: Request, portal: PortalState) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not str(body.get("name") or "").strip():
        raise errors.invalid_input("A list needs a name", name=["This property is required"])
    processing = str(body.get("processingType") or "")
    if processing not in PROCESSING_TYPES:
        raise errors.invalid_input(f"processingType must be one of {', '.join(PROCESSING_TYPES)}")
    type_id = _type_id(portal, body.get("objectTypeId"))
    name = str(body["name"]).strip()
    if any(x["name"].lower() == name.lower() for x in portal.lists.lists.values()):
        raise errors.error(
            400,
            "VALIDATION_ERROR",
            f"A list named {name} already exists",
            subCategory="ILS.DUPLICATE_LIST_NAMES",
        )
    at = now_ms(request)
    list_id = str(portal.lists.next_id)
    portal.lists.next_id += 1
    made = {
        "listId": list_id,
        "listVersion": 1,
        "name": name,
        "objectTypeId": type_id,
        "processingType": processing,
        "processingStatus": "COMPLETE",
        "createdAt": _iso(at),
        "updatedAt": _iso(at),
        "size": 0,
    }
    portal.lists.lists[list_id] = made
    portal.lists.members[list_id] = {}
    return json_response({"list": made})


def _iso(ms: int) -> str:
    return iso_ms(ms)


def _list(portal: PortalState, list_id: str) -> dict[str, Any]:
    found = portal.lists.lists.get(list_id)
    if found is None:
        raise errors.not_found(f"List {list_id} does not exist")
    return {**found, "size": len(portal.lists.members.get(list_id, {}))}


async def get_by_name(request: Request, portal: PortalState) -> Response:
    type_id = _type_id(portal, request.path_params["objectTypeId"])
    found = portal.lists.by_name(type_id, request.path_params["listName"])
    if found is None:
        raise errors.not_found(f"List with name {request.path_params['listName']} does not exist")
    return json_response({"list": _list(portal, found["listId"])})


async def get_by_id(request: Request, portal: PortalState) -> Response:
    return json_response({"list": _list(portal, request.path_params["listId"])})


def _ids(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(i, str | int) for i in raw):
        raise errors.invalid_input(f"{where} must be a list of record ids")
    if len(raw) > MEMBERSHIP_LIMIT:
        raise errors.invalid_input(f"{where}: at most {MEMBERSHIP_LIMIT} record ids a call")
    return [str(i) for i in raw]


def _change(request: Request, portal: PortalState, add: list[str], drop: list[str]) -> Response:
    list_id = request.path_params["listId"]
    found = _list(portal, list_id)
    if found["processingType"] not in TAKE_MEMBERS:
        raise errors.error(
            400,
            "VALIDATION_ERROR",
            f"List {list_id} is a {found['processingType']} list: only MANUAL and SNAPSHOT lists "
            "take members",
            subCategory="ILS.LIST_PROCESSING_TYPE_NOT_MANUAL",
        )
    otype = portal.object_type(found["objectTypeId"])
    members = portal.lists.members.setdefault(list_id, {})
    added, removed, missing = [], [], []
    at = now_ms(request)
    for rid in add:
        if not rid.isdigit() or int(rid) not in portal.records[otype]:
            missing.append(rid)
        elif int(rid) not in members:
            members[int(rid)] = at
            added.append(rid)
    for rid in drop:
        if not rid.isdigit() or int(rid) not in portal.records[otype]:
            missing.append(rid)
        elif members.pop(int(rid), None) is not None:
            removed.append(rid)
    return json_response({"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing})


async def add_and_remove(request: Request, portal: PortalState) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.invalid_input("Invalid input JSON: {recordIdsToAdd, recordIdsToRemove}")
    add = _ids(body.get("recordIdsToAdd"), "recordIdsToAdd")
    drop = _ids(body.get("recordIdsToRemove"), "recordIdsToRemove")
    return _change(request, portal, add, drop)


async def add(request: Request, portal: PortalState) -> Response:
    return _change(request, portal, _ids(await read_json(request), "the body"), [])


async def remove(request: Request, portal: PortalState) -> Response:
    return _change(request, portal, [], _ids(await read_json(request), "the body"))


async def memberships(request: Request, portal: PortalState) -> Response:
    list_id = request.path_params["listId"]
    _list(portal, list_id)
    members = portal.lists.members.get(list_id, {})
    results = [{"recordId": str(r), "membershipTimestamp": _iso(t)} for r, t in members.items()]
    return json_response({"results": results, "total": len(results)})
