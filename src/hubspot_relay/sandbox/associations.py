"""Associations: the default and labelled kinds, one record's, and the labels between two object
types (v4, and the dated versions)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors
from .http import (
    ASSOCIATION_PREFIXES,
    CRM_BATCH_LIMIT,
    RECORD_ASSOCIATION_PREFIXES,
    batch_body,
    inputs_of,
    json_response,
    now_ms,
    read_json,
    route,
)
from .state import PortalState


def routes() -> list[Route]:
    out = []
    for assoc, objects in zip(ASSOCIATION_PREFIXES, RECORD_ASSOCIATION_PREFIXES, strict=True):
        out += [
            route(
                objects + "/{fromType}/{fromId}/associations/default/{toType}/{toId}",
                associate_default,
                ["PUT"],
            ),
            route(assoc + "/{fromType}/{toType}/batch/associate/default", associate_batch, ["POST"]),
            route(assoc + "/{fromType}/{toType}/batch/create", associate_labelled_batch, ["POST"]),
            route(assoc + "/{fromType}/{toType}/labels", association_labels, ["GET"]),
            route(objects + "/{fromType}/{fromId}/associations/{toType}", associations_list, ["GET"]),
        ]
    return out


def association(
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


async def associate_default(request: Request, portal: PortalState) -> Response:
    p = request.path_params
    started = now_ms(request)
    result = association(portal, p["fromType"], p["fromId"], p["toType"], p["toId"])
    return json_response(batch_body([result], started, now_ms(request)))


async def associate_batch(request: Request, portal: PortalState) -> Response:
    p = request.path_params
    started = now_ms(request)
    inputs = inputs_of(await read_json(request), CRM_BATCH_LIMIT)
    results = [
        association(
            portal,
            p["fromType"],
            str(i.get("from", {}).get("id", "")),
            p["toType"],
            str(i.get("to", {}).get("id", "")),
        )
        for i in inputs
    ]
    return json_response(batch_body(results, started, now_ms(request)))


async def associate_labelled_batch(request: Request, portal: PortalState) -> Response:
    """`POST .../associations/{from}/{to}/batch/create`: each input with its `types`."""
    p = request.path_params
    started = now_ms(request)
    results = []
    for i in inputs_of(await read_json(request), CRM_BATCH_LIMIT):
        types = i.get("types")
        if not isinstance(types, list) or not types:
            raise errors.invalid_input("Each input needs types: [{associationCategory, associationTypeId}]")
        for t in types:
            type_id = t.get("associationTypeId") if isinstance(t, dict) else None
            if not isinstance(type_id, int):
                raise errors.invalid_input("associationTypeId must be a number")
            results.append(
                association(
                    portal,
                    p["fromType"],
                    str(i.get("from", {}).get("id", "")),
                    p["toType"],
                    str(i.get("to", {}).get("id", "")),
                    type_id,
                )
            )
    return json_response(batch_body(results, started, now_ms(request)))


async def association_labels(request: Request, portal: PortalState) -> Response:
    p = request.path_params
    ft, tt = portal.object_type(p["fromType"]), portal.object_type(p["toType"])
    return json_response({"results": portal.types.labels(ft, tt)})


async def associations_list(request: Request, portal: PortalState) -> Response:
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
        # a string, as HubSpot's published schemas (v4 and dated) type it
        results.append({"toObjectId": str(to_id), "associationTypes": kinds})
    return json_response({"results": results})
