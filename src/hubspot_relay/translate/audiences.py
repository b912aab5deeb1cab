"""Segment audiences (Engage, and the reverse-ETL tools that speak its shapes) as HubSpot list
memberships. An audience reaches a destination two ways, both with `context.personas` =
{computation_class: "audience", computation_key, ...}: an identify whose trait named after the
audience key is true or false, or a track `Audience Entered` / `Audience Exited` with
`properties.audience_key`. Either becomes the contact's membership of the MANUAL list named after
the audience key (or the name the account gives it in `list_names`). An account-level audience
comes as a group call with the trait: the company's membership of a company list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENTERED, EXITED = "Audience Entered", "Audience Exited"


def audience_key(msg: Mapping[str, Any]) -> str | None:
    """The audience a message is about (None: not an audience's message)."""
    context = msg.get("context")
    personas = context.get("personas") if isinstance(context, Mapping) else None
    if not isinstance(personas, Mapping) or personas.get("computation_class") != "audience":
        return None
    key = personas.get("computation_key")
    if msg.get("type") == "track":
        props = p if isinstance(p := msg.get("properties"), Mapping) else {}
        key = props.get("audience_key") or key
    return str(key).strip() if isinstance(key, str) and key.strip() else None


def membership(msg: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(audience key, whether the user is in it) for an audience's identify or track."""
    key = audience_key(msg)
    if key is None:
        return None
    if msg.get("type") == "track":
        event = msg.get("event")
        return (key, event == ENTERED) if event in (ENTERED, EXITED) else None
    if msg.get("type") in ("identify", "group"):  # a group's: the company in the audience
        traits = t if isinstance(t := msg.get("traits"), Mapping) else {}
        value = traits.get(key)
        return (key, value) if isinstance(value, bool) else None
    return None


def list_name(key: str, names: Mapping[str, str]) -> str:
    """The HubSpot list an audience fills: the account's name for it, else the audience key."""
    return names.get(key, key)
