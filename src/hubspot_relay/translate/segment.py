"""Segment message -> HubSpot operations. Pure: the same message always gives the same answer.

The rules are the seed's (identify, track, page; email from `traits.email` or an email
`userId`; `firstName`/`lastName`; lowercased keys with `_` for whitespace; contact properties on
track from `context.traits`) and the relay's own (group, alias, screen, integrations, bundled;
docs/architecture.md).
Whether a key is a property of the account, and its type, is decided later against the
account's property catalog (`translate.values.prepare`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlparse

import orjson

from ..options import DeliveryOptions
from .audiences import membership
from .names import ADDRESS, event_name, event_property_key, is_email, property_key
from .operations import (
    CompanyUpdate,
    ContactRef,
    ContactUpdate,
    Event,
    Link,
    Membership,
    Operation,
    Skip,
    Subscription,
)
from .subscriptions import change as subscription_change

EVENT_UUID_NAMESPACE = uuid.UUID("6f1c6b8e-5d0a-4a43-9a35-0c6f4d4f2b11")
MAX_EVENT_PROPERTIES = 50
MAX_EVENT_VALUE = 256
COMPANY_TRAITS = {
    "name": "name",
    "industry": "industry",
    "employees": "numberofemployees",
    "phone": "phone",
    "description": "description",
    "website": "website",
    "domain": "domain",
    "plan": "plan",
    "createdAt": "createdate",
}


def event_uuid(message_id: str) -> str:
    """The occurrence's uuid, derived from the messageId, so a retry or replay is one event."""
    return str(uuid.uuid5(EVENT_UUID_NAMESPACE, message_id))


def message_ids(msg: dict[str, Any]) -> tuple[str, ...]:
    """userId and anonymousId, the ones present (one namespace, as alias treats them)."""
    return tuple(str(msg[k]) for k in ("userId", "anonymousId") if msg.get(k) not in (None, ""))


def skip_reason(msg: dict[str, Any]) -> str | None:
    """Messages HubSpot must not get from us: switched off in `integrations`, or already
    delivered by the browser (`_metadata.bundled` lists HubSpot)."""
    integrations = msg.get("integrations") or {}
    if isinstance(integrations, dict):
        flags = {str(k).lower(): v for k, v in integrations.items()}
        hubspot = flags.get("hubspot")
        if hubspot is False:
            return "integrations.HubSpot is false"
        if flags.get("all") is False and not hubspot:
            return "integrations.All is false"
    bundled = ((msg.get("_metadata") or {}).get("bundled")) or []
    if isinstance(bundled, list) and any(str(b).lower() == "hubspot" for b in bundled):
        return "delivered by the browser (device mode): _metadata.bundled lists HubSpot"
    return None


def contact_properties(traits: dict[str, Any], null_clears: bool = False) -> dict[str, Any]:
    """Traits as contact properties: renamed, address and company lifted; a null clears the
    property with `null_clears` (it is sent as ""), else it is left out."""
    out: dict[str, Any] = {}
    for key, value in traits.items():
        if value is None:
            if null_clears and key not in ("address", "company"):
                out[property_key(key)] = ""
            continue
        if key == "address" and isinstance(value, dict):
            for part, v in value.items():
                if v is not None and part in ADDRESS:
                    out[ADDRESS[part]] = v
            continue
        if key == "company" and isinstance(value, dict):
            if value.get("name") is not None:
                out["company"] = value["name"]
            continue
        out[property_key(key)] = value
    return out


def mapped_event(names: dict[str, str], event: str) -> str | None:
    """The configured HubSpot event for a Segment event: the exact name first, else the same
    name whatever its case and surrounding spaces (`purchase`, `Purchase ` for `Purchase`)."""
    if event in names:
        return names[event]
    wanted = event.strip().casefold()
    return next((v for k, v in names.items() if k.strip().casefold() == wanted), None)


def email_of(traits: dict[str, Any], user_id: Any) -> str | None:
    email = traits.get("email")
    if is_email(email):
        return str(email).strip()
    if is_email(user_id):
        return str(user_id).strip()
    return None


def event_properties(props: dict[str, Any], *, drop: tuple[str, ...] = ("email",)) -> dict[str, str]:
    """Flattened (`a.b`), keys in HubSpot's form, values as strings within its limits."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    walk("", {k: v for k, v in props.items() if k not in drop})
    out: dict[str, str] = {}
    for key in sorted(flat):
        value = flat[key]
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value) if isinstance(value, float) else str(value)
        elif isinstance(value, list):
            text = _json_text(value)
        else:
            text = str(value)
        name = event_property_key(key)
        if name not in out and len(out) < MAX_EVENT_PROPERTIES:
            out[name] = text[:MAX_EVENT_VALUE]
    return out


def _domain(traits: dict[str, Any]) -> str | None:
    for key in ("domain", "website"):
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            host = urlparse(text if "//" in text else f"//{text}").hostname
            if host:
                return host.removeprefix("www.")
    return None


def _json_text(value: Any) -> str:
    """A list as JSON text; what orjson cannot write (an integer past 64 bits) as text."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str)


def translate(msg: dict[str, Any], options: DeliveryOptions) -> list[Operation]:
    """The HubSpot operations one (stamped) Segment message asks for."""
    reason = skip_reason(msg)
    if reason:
        return [Skip(reason)]
    mtype = msg.get("type")
    context = msg.get("context") or {}
    ctx_traits = t if isinstance(t := context.get("traits"), dict) else {}
    ops = _translate(msg, mtype, context, ctx_traits, options)
    subscribe = subscription_change(msg, options.subscriptions)
    if subscribe is not None:
        ref = next((op.ref for op in ops if isinstance(op, ContactUpdate | Event | Membership)), None)
        if ref is None:
            ref = ContactRef(
                email_of(msg.get("traits") or {}, msg.get("userId")), message_ids(msg), _user_id(msg)
            )
        subs = options.subscriptions
        # a subscription change, not a custom event (as an audience's track is a membership)
        ops = [op for op in ops if not isinstance(op, Skip | Event)]
        ops.append(Subscription(ref, *subscribe, subs.legal_basis, subs.legal_basis_explanation))
    return ops


def _translate(
    msg: dict[str, Any],
    mtype: Any,
    context: dict[str, Any],
    ctx_traits: dict[str, Any],
    options: DeliveryOptions,
) -> list[Operation]:
    joined = membership(msg)
    if mtype == "identify":
        ops = _identify(msg, ctx_traits, options)
        if joined is not None:
            email = next((op.ref.email for op in ops if isinstance(op, ContactUpdate)), None)
            ops.append(Membership(ContactRef(email, message_ids(msg), _user_id(msg)), *joined))
        return ops
    if mtype == "track" and joined is not None:  # a membership, not a custom event
        ops = _activity(msg, "track", context, ctx_traits, options)
        (event,) = [op for op in ops if isinstance(op, Event)]
        return [*(op for op in ops if op is not event), Membership(event.ref, *joined)]
    if mtype == "alias":
        ids = tuple(str(msg[k]) for k in ("userId", "previousId") if msg.get(k) not in (None, ""))
        return [Link(ids, email_of({}, msg.get("userId")))]
    if mtype in ("track", "page", "screen"):
        return _activity(msg, str(mtype), context, ctx_traits, options)
    if mtype == "group":
        company = _group(msg, ctx_traits, options)
        if joined is None:
            return [company]
        return [company, Membership(company.member, *joined, group_id=company.group_id)]
    return [Skip(f"unknown message type {mtype!r}")]


def _user_id(msg: dict[str, Any]) -> str | None:
    return str(msg["userId"]) if msg.get("userId") not in (None, "") else None


def _identify(msg: dict[str, Any], ctx_traits: dict[str, Any], options: DeliveryOptions) -> list[Operation]:
    ids = message_ids(msg)
    # Some SDKs (RudderStack's, some mobile and server libraries) send traits in context only.
    traits = msg.get("traits") or ctx_traits
    email = email_of(traits, msg.get("userId"))
    ops: list[Operation] = [Link(ids, email)]
    props = contact_properties(traits, options.null_clears)
    if email:
        props["email"] = email
    if props:
        ops.append(ContactUpdate(ContactRef(email, ids, _user_id(msg)), props))
    return ops


def _activity(
    msg: dict[str, Any],
    mtype: str,
    context: dict[str, Any],
    ctx_traits: dict[str, Any],
    options: DeliveryOptions,
) -> list[Operation]:
    """track, page and screen: the contact's context traits, and the event (page and screen
    events when the account asks for them)."""
    ids = message_ids(msg)
    props = msg.get("properties") or {}
    email = (str(props["email"]).strip() if is_email(props.get("email")) else None) or email_of(
        ctx_traits, msg.get("userId")
    )
    ref = ContactRef(email, ids, _user_id(msg))
    ops: list[Operation] = []
    if email:
        ops.append(Link(ids, email))
    contact = contact_properties(ctx_traits, options.null_clears)
    if contact:
        ops.append(ContactUpdate(ref, contact))
    timestamp = str(msg.get("timestamp") or msg.get("receivedAt") or "")
    uuid_ = event_uuid(str(msg.get("messageId")))
    if mtype == "track":
        event = str(msg.get("event"))
        name = mapped_event(options.event_names, event) or event_name(event)
        ops.append(Event(ref, name, timestamp, uuid_, event_properties(props), event))
    elif mtype == "page" and options.page_events:
        page = {**(context.get("page") or {}), **props}
        fields = {k: page.get(k) for k in ("url", "path", "title", "referrer", "search")}
        fields["name"] = msg.get("name") or page.get("name")
        ops.append(Event(ref, "viewed_page", timestamp, uuid_, event_properties(fields), "Viewed Page"))
    elif mtype == "screen" and options.screen_events:
        fields = {**props, "name": msg.get("name") or props.get("name")}
        ops.append(Event(ref, "viewed_screen", timestamp, uuid_, event_properties(fields), "Viewed Screen"))
    return ops or [Skip(f"{mtype} events are switched off for this account")]


def _group(msg: dict[str, Any], ctx_traits: dict[str, Any], options: DeliveryOptions) -> CompanyUpdate:
    traits = msg.get("traits") or {}
    props: dict[str, Any] = {}
    for key, value in traits.items():
        if key == "address" or (value is None and not options.null_clears):
            continue
        props[COMPANY_TRAITS.get(key) or property_key(key)] = "" if value is None else value
    if isinstance(traits.get("address"), dict):
        props.update(contact_properties({"address": traits["address"]}))
    domain = _domain(traits)
    if domain:
        props["domain"] = domain
    email = email_of(ctx_traits, msg.get("userId"))
    return CompanyUpdate(str(msg.get("groupId")), props, ContactRef(email, message_ids(msg)), domain)
