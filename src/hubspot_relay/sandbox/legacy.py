"""The legacy dialect of Segment's HubSpot integration (API key era): contacts v1 create-or-update
and batch, a contact's profile, the properties v1 catalog, and the events HTTP API's tracking
pixel (`GET /v1/event`, which needs no credentials)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors
from .catalog import validate_properties
from .errors import ApiError
from .http import json_response, now_ms, read_json, route
from .state import PortalState, iso_ms

LEGACY_BATCH_LIMIT = 1000
TRACKING_PIXEL_PATH = "/v1/event"
# A 1x1 transparent GIF, what HubSpot's tracking host answers.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


def routes() -> list[Route]:
    return [
        route("/contacts/v1/contact/createOrUpdate/email/{email}/", legacy_create_or_update, ["POST"]),
        route("/contacts/v1/contact/createOrUpdate/email/{email}", legacy_create_or_update, ["POST"]),
        route("/contacts/v1/contact/batch/", legacy_batch, ["POST"]),
        route("/contacts/v1/contact/batch", legacy_batch, ["POST"]),
        route("/contacts/v1/contact/email/{email}/profile", legacy_profile, ["GET"]),
        route("/properties/v1/contacts/properties", legacy_properties, ["GET"]),
        route(TRACKING_PIXEL_PATH, track, ["GET"]),
    ]


def legacy_values(raw: Any) -> dict[str, str]:
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


def legacy_error(message: str, results: list[Any], **extra: Any) -> ApiError:
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


async def legacy_create_or_update(request: Request, portal: PortalState) -> Response:
    email = request.path_params["email"]
    body = await read_json(request) or {}
    values, failures = validate_properties(
        portal.properties_of("contacts"),
        {"email": email, **legacy_values(body.get("properties", []))},
    )
    if failures:
        bad_email = any(f["error"] == "INVALID_EMAIL" for f in failures)
        raise legacy_error(
            "Invalid email address" if bad_email else "Property values were not valid", failures
        )
    at = now_ms(request)
    record = portal.find("contacts", email, "email")
    if record is None:
        record = portal.create("contacts", values, at)
        return json_response({"vid": record.id, "isNew": True})
    portal.update("contacts", record, values, at)
    return json_response({"vid": record.id, "isNew": False})


async def legacy_batch(request: Request, portal: PortalState) -> Response:
    body = await read_json(request)
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
        values = legacy_values(item.get("properties", []))
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
    at = now_ms(request)
    for item, values in prepared:
        record = (
            portal.find("contacts", str(item["vid"]))
            if item.get("vid")
            else portal.find("contacts", values["email"], "email")
        )
        if record is None:
            portal.create("contacts", values, at)
        else:
            portal.update("contacts", record, values, at)
    return Response(status_code=202)


async def legacy_profile(request: Request, portal: PortalState) -> Response:
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


async def legacy_properties(request: Request, portal: PortalState) -> Response:
    return json_response([p.as_legacy_json() for p in portal.properties_of("contacts").values()])


async def track(request: Request, portal: PortalState | None) -> Response:
    """`GET /v1/event`: the events HTTP API. Always a pixel, as HubSpot answers."""
    q = request.query_params
    if portal is not None and q.get("_n"):
        at = now_ms(request)
        email = q.get("email")
        catalog = portal.properties_of("contacts")
        extra = {k: v for k, v in q.items() if not k.startswith("_") and k != "email"}
        writable = {k: v for k, v in extra.items() if k in catalog and not catalog[k].read_only_value}
        values, _ = validate_properties(catalog, writable)
        contact_id = None
        if email:
            contact = portal.contact_for_email(email, at)
            if values:
                portal.update("contacts", contact, values, at)
            contact_id = contact.id
        portal.legacy_events.append(
            {
                "eventId": q["_n"],
                "email": email,
                "value": q.get("_m"),
                "contactId": contact_id,
                "occurredAt": iso_ms(at),
                "properties": extra,
            }
        )
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-cache"})
