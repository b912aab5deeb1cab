"""Communication preferences: a portal's subscription types (`definitions`) and each email's
status per type, read and written one at a time or many (`statuses/batch/write`, which HubSpot
keeps for Marketing Hub Enterprise: 403 on other tiers), on v4 and the dated family, as HubSpot's
files (Communication Preferences/Subscriptions/Rollouts/176901) and hubspot-sdk have them. A
GDPR-enabled portal refuses a write without a legal basis."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..hubspot.paths import DATED_VERSIONS
from ..options import LEGAL_BASES
from . import errors
from .http import json_response, now_ms, read_json, route
from .state import PortalState, iso_ms

PREFIXES = ("/communication-preferences/v4", *(f"/communication-preferences/{v}" for v in DATED_VERSIONS))
STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
BATCH_LIMIT = 100


def routes() -> list[Route]:
    out = []
    for p in PREFIXES:
        out += [
            route(p + "/definitions", definitions, ["GET"]),
            route(p + "/statuses/batch/write", write_batch, ["POST"]),
            route(p + "/statuses/{subscriber}", read_status, ["GET"]),
            route(p + "/statuses/{subscriber}", write_one, ["POST"]),
        ]
    return out


def _answer(results: list[dict[str, Any]], at: int) -> Response:
    return json_response(
        {"status": "COMPLETE", "results": results, "startedAt": iso_ms(at), "completedAt": iso_ms(at)}
    )


async def definitions(request: Request, portal: PortalState) -> Response:
    at = now_ms(request)
    results = [
        {
            "id": str(t["id"]),
            "name": t["name"],
            "description": t.get("description", ""),
            "isActive": True,
            "isDefault": t.get("id") == portal.settings.subscription_types[0]["id"],
            "isInternal": False,
            "createdAt": iso_ms(0),
            "updatedAt": iso_ms(0),
        }
        for t in portal.settings.subscription_types
    ]
    return _answer(results, at)


def _write(portal: PortalState, subscriber: str, body: Any, at: int, where: str) -> dict[str, Any]:
    """One status checked (everything first: a refused one fails a batch) -> what to store."""
    if not isinstance(body, dict):
        raise errors.invalid_input(f"Invalid input JSON: {where} is an object")
    email = subscriber.strip().lower()
    if "@" not in email:
        raise errors.invalid_input(f"{where}: subscriberIdString must be an email address")
    if body.get("channel") != "EMAIL":
        raise errors.invalid_input(f"{where}: channel must be EMAIL")
    if body.get("statusState") not in STATES:
        raise errors.invalid_input(f"{where}: statusState must be one of {', '.join(STATES)}")
    known = {int(t["id"]) for t in portal.settings.subscription_types}
    sub_id = body.get("subscriptionId")
    if not isinstance(sub_id, int) or sub_id not in known:
        raise errors.invalid_input(
            f"{where}: subscriptionId {sub_id} is not a subscription type of this portal"
        )
    basis = body.get("legalBasis")
    if basis is not None and basis not in LEGAL_BASES:
        raise errors.invalid_input(f"{where}: legalBasis must be one of {', '.join(LEGAL_BASES)}")
    if portal.settings.gdpr and basis is None:
        raise errors.invalid_input(f"{where}: this portal has GDPR enabled: legalBasis is required")
    return {
        "channel": "EMAIL",
        "source": "Public API",
        "status": body["statusState"],
        "subscriberIdString": email,
        "subscriptionId": sub_id,
        "timestamp": iso_ms(at),
        "legalBasis": basis,
        "legalBasisExplanation": body.get("legalBasisExplanation"),
    }


def _store(portal: PortalState, status: dict[str, Any]) -> None:
    portal.subscriptions.setdefault(status["subscriberIdString"], {})[str(status["subscriptionId"])] = status


async def write_one(request: Request, portal: PortalState) -> Response:
    at = now_ms(request)
    status = _write(portal, request.path_params["subscriber"], await read_json(request), at, "the body")
    _store(portal, status)
    return _answer([status], at)


async def write_batch(request: Request, portal: PortalState) -> Response:
    if portal.settings.tier != "enterprise":
        raise errors.missing_scopes("communication_preferences.statuses.batch.write")
    body = await read_json(request)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH_LIMIT:
        raise errors.invalid_input(f"inputs: 1 to {BATCH_LIMIT} statuses")
    at = now_ms(request)
    statuses = [
        _write(
            portal, str(x.get("subscriberIdString", "")) if isinstance(x, dict) else "", x, at, f"inputs[{i}]"
        )
        for i, x in enumerate(inputs)
    ]
    for status in statuses:
        _store(portal, status)
    return _answer(statuses, at)


async def read_status(request: Request, portal: PortalState) -> Response:
    email = request.path_params["subscriber"].strip().lower()
    return _answer(list(portal.subscriptions.get(email, {}).values()), now_ms(request))
