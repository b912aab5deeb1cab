"""CRM objects: list, create, read, update, archive, batch actions and search, for every object
type a portal has (HubSpot's standard objects and the portal's custom ones)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors, write_rules
from .catalog import validate_properties
from .http import (
    CRM_BATCH_LIMIT,
    CRM_PREFIXES,
    batch_body,
    inputs_of,
    json_response,
    now_ms,
    read_json,
    route,
    string_properties,
    wanted,
)
from .state import PortalState, Record


def routes() -> list[Route]:
    out = []
    for p in CRM_PREFIXES:
        out += [
            route(p + "/contacts/gdpr-delete", gdpr_delete, ["POST"]),
            route(p + "/{objectType}/batch/{action}", crm_batch, ["POST"]),
            route(p + "/{objectType}/search", crm_search, ["POST"]),
            route(p + "/{objectType}", crm_list, ["GET"]),
            route(p + "/{objectType}", crm_create, ["POST"]),
            route(p + "/{objectType}/{objectId}", crm_get, ["GET"]),
            route(p + "/{objectType}/{objectId}", crm_update, ["PATCH"]),
            route(p + "/{objectType}/{objectId}", crm_archive, ["DELETE"]),
        ]
    return out


async def crm_list(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    limit = min(int(request.query_params.get("limit", "10")), 100)
    after = int(request.query_params.get("after", "0") or 0)
    records = sorted((r for r in portal.records[otype].values() if r.id > after), key=lambda r: r.id)
    page = records[:limit]
    body: dict[str, Any] = {"results": [portal.json(r, otype, wanted(request)) for r in page]}
    if len(records) > limit:
        body["paging"] = {"next": {"after": str(page[-1].id), "link": ""}}
    return json_response(body)


async def crm_create(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    body = await read_json(request) or {}
    values, failures = validated(portal, otype, string_properties(body.get("properties"), "input"))
    if failures:
        raise errors.validation_failed(failures)
    held_to_rules(request, portal, otype, [(None, values)])
    record = portal.create(otype, values, now_ms(request))
    return json_response(portal.json(record, otype, list(values) or None), 201)


async def crm_get(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    record = record_of(portal, otype, request.path_params["objectId"], request.query_params.get("idProperty"))
    return json_response(portal.json(record, otype, wanted(request)))


async def crm_update(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    record = record_of(portal, otype, request.path_params["objectId"], request.query_params.get("idProperty"))
    body = await read_json(request) or {}
    values, failures = validated(portal, otype, string_properties(body.get("properties"), "input"))
    if failures:
        raise errors.validation_failed(failures)
    held_to_rules(request, portal, otype, [(record, values)])
    portal.update(otype, record, values, now_ms(request))
    return json_response(portal.json(record, otype, list(values) or None))


async def gdpr_delete(request: Request, portal: PortalState) -> Response:
    """A contact deleted for good (`{objectId, idProperty}`), its email blocked from coming back,
    its subscription statuses and list memberships gone with it."""
    body = await read_json(request)
    if not isinstance(body, dict) or not str(body.get("objectId") or "").strip():
        raise errors.invalid_input("objectId is required", objectId=["This property is required"])
    record = portal.find("contacts", str(body["objectId"]).strip(), body.get("idProperty"))
    if record is None:
        raise errors.not_found("Object not found.  objectId are usually numeric.")
    email = record.properties.get("email", "").strip().lower()
    portal.remove("contacts", record)
    portal.associations = {a for a in portal.associations if record.id not in (a[1], a[3])}
    for members in portal.lists.members.values():
        members.pop(record.id, None)
    if email:
        portal.forgotten.add(email)
        portal.subscriptions.pop(email, None)
    return Response(status_code=204)


async def crm_archive(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    record = portal.find(otype, request.path_params["objectId"])
    if record is not None:
        portal.remove(otype, record)
    return Response(status_code=204)


def batch_read(
    request: Request,
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
    body = batch_body(found, started, now_ms(request))
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


async def crm_search(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    body = await read_json(request) or {}
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


def record_of(portal: PortalState, otype: str, object_id: str, id_property: str | None) -> Record:
    record = portal.find(otype, object_id, id_property)
    if record is None:
        raise errors.not_found("Object not found.  objectId are usually numeric.")
    return record


def validated(portal: PortalState, otype: str, values: dict[str, str]) -> tuple[dict[str, str], list[Any]]:
    return validate_properties(portal.properties_of(otype), values)


def held_to_rules(
    request: Request, portal: PortalState, otype: str, writes: list[tuple[Record | None, dict[str, str]]]
) -> None:
    """The portal's write rules, from API version 2026-09 (`write_rules.py`): checked for every
    record before any is written, so that one refused record fails the batch, as at HubSpot."""
    rules = portal.settings.required_properties
    if not rules or not write_rules.enforced(request.url.path):
        return
    for record, values in writes:
        current = record.properties if record is not None else None
        write_rules.check(rules, otype, portal.singular(otype), current, values)


# ---- batch actions: one function each, chosen from a table ----------------------------------

Prepared = list[tuple[dict[str, Any], dict[str, str]]]


def prepared_inputs(portal: PortalState, otype: str, inputs: list[Any], action: str) -> Prepared:
    """Every input checked first: one bad input fails the whole batch, as at HubSpot."""
    prepared: Prepared = []
    failures: list[Any] = []
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise errors.invalid_input(f"Invalid input JSON: inputs[{i}] must be an object")
        props = string_properties(item.get("properties"), f"inputs[{i}]")
        id_property = item.get("idProperty")
        if action == "upsert" and id_property and id_property != "hs_object_id":
            props.setdefault(id_property, str(item.get("id", "")))  # the key is a value too
        values, bad = validated(portal, otype, props)
        failures += bad
        prepared.append((item, values))
    if failures:
        raise errors.validation_failed(failures)
    if action in ("update", "upsert"):
        keys = [(str(item.get("id", "")).lower(), item.get("idProperty")) for item, _ in prepared]
        if len(set(keys)) != len(keys):
            raise errors.invalid_input("Duplicate IDs found in batch input: each record may appear once")
    return prepared


async def batch_create(
    request: Request, portal: PortalState, otype: str, body: dict[str, Any], started: int
) -> Response:
    prepared = prepared_inputs(portal, otype, inputs_of(body, CRM_BATCH_LIMIT), "create")
    for _, values in prepared:
        portal.check_unique(otype, values)
    held_to_rules(request, portal, otype, [(None, values) for _, values in prepared])
    at = now_ms(request)
    records = [portal.create(otype, values, at) for _, values in prepared]
    results = [portal.json(r, otype, list(v) or None) for r, (_, v) in zip(records, prepared, strict=True)]
    return json_response(batch_body(results, started, at), 201)


async def batch_update(
    request: Request, portal: PortalState, otype: str, body: dict[str, Any], started: int
) -> Response:
    targets = []
    for item, values in prepared_inputs(portal, otype, inputs_of(body, CRM_BATCH_LIMIT), "update"):
        record = portal.find(otype, str(item.get("id", "")), item.get("idProperty"))
        if record is None:
            raise errors.error(
                400,
                "OBJECT_NOT_FOUND",
                "Object not found.  objectId are usually numeric.",
                context={"ids": [str(item.get("id"))]},
            )
        targets.append((record, values))
    held_to_rules(request, portal, otype, list(targets))
    at = now_ms(request)
    for record, values in targets:
        portal.update(otype, record, values, at)
    results = [portal.json(r, otype, list(v) or None) for r, v in targets]
    return json_response(batch_body(results, started, at))


async def batch_upsert(
    request: Request, portal: PortalState, otype: str, body: dict[str, Any], started: int
) -> Response:
    """By a unique property; a missing record is created with that value. Every input is found
    and checked before any is written."""
    writes: list[tuple[Record | None, dict[str, str]]] = []
    for item, values in prepared_inputs(portal, otype, inputs_of(body, CRM_BATCH_LIMIT), "upsert"):
        id_property = item.get("idProperty") or "hs_object_id"
        id_value = str(item.get("id", ""))
        if not id_value:
            raise errors.invalid_input("Each upsert input needs an id", id=["This property is required"])
        record = portal.find(otype, id_value, id_property)
        if record is None and id_property == "hs_object_id":
            missing = f"No {portal.singular(otype)} with ID {id_value} exists"
            raise errors.error(400, "OBJECT_NOT_FOUND", missing)
        writes.append((record, values))
    held_to_rules(request, portal, otype, writes)
    results = []
    at = now_ms(request)
    for record, values in writes:
        if record is None:
            created = portal.create(otype, values, at)
            results.append(portal.json(created, otype, list(values) or None, new=True))
        else:
            portal.update(otype, record, values, at)
            results.append(portal.json(record, otype, list(values) or None, new=False))
    return json_response(batch_body(results, started, at))


async def batch_archive(
    request: Request, portal: PortalState, otype: str, body: dict[str, Any], started: int
) -> Response:
    for item in inputs_of(body, CRM_BATCH_LIMIT):
        record = portal.find(otype, str(item.get("id", "")))
        if record is not None:
            portal.remove(otype, record)
    return Response(status_code=204)


async def batch_read_action(
    request: Request, portal: PortalState, otype: str, body: dict[str, Any], started: int
) -> Response:
    inputs = inputs_of(body, CRM_BATCH_LIMIT)
    return batch_read(
        request, portal, otype, inputs, body.get("idProperty"), body.get("properties") or None, started
    )


BatchAction = Callable[[Request, PortalState, str, dict[str, Any], int], Awaitable[Response]]
BATCH_ACTIONS: dict[str, BatchAction] = {
    "create": batch_create,
    "read": batch_read_action,
    "update": batch_update,
    "upsert": batch_upsert,
    "archive": batch_archive,
}


async def crm_batch(request: Request, portal: PortalState) -> Response:
    otype = portal.object_type(request.path_params["objectType"])
    action = BATCH_ACTIONS.get(request.path_params["action"])
    if action is None:
        raise errors.not_found(f"Unknown batch action {request.path_params['action']}")
    started = now_ms(request)
    body = await read_json(request)
    return await action(request, portal, otype, body if isinstance(body, dict) else {}, started)


_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


def _filter(props: dict[str, str], f: dict[str, Any]) -> bool:
    """One search filter, with HubSpot's operators."""
    name, op = str(f.get("propertyName", "")), str(f.get("operator", "EQ"))
    have: str | None = props.get(name)
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
