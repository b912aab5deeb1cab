"""Email subscription changes from Segment calls, as an account's `[accounts.subscriptions]` says:
tracks named in `subscribe_events` / `unsubscribe_events` (matched whatever their case), or an
identify trait (`trait`: true subscribes, false unsubscribes), for the subscription type of the
event's `properties.subscription_id`, else the account's `subscription_id`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..options import Subscriptions


def change(msg: Mapping[str, Any], subs: Subscriptions) -> tuple[bool, int] | None:
    """(subscribed, subscription type id) a message asks for, or None."""
    if subs.subscription_id is None:
        return None
    if msg.get("type") == "track":
        event = str(msg.get("event") or "").strip().lower()
        props = p if isinstance(p := msg.get("properties"), Mapping) else {}
        chosen = _id(props.get("subscription_id"), subs.subscription_id)
        if event in {e.strip().lower() for e in subs.unsubscribe_events}:
            return False, chosen
        if event in {e.strip().lower() for e in subs.subscribe_events}:
            return True, chosen
    if msg.get("type") == "identify" and subs.trait:
        traits = t if isinstance(t := msg.get("traits"), Mapping) else {}
        value = traits.get(subs.trait)
        if isinstance(value, bool):
            return value, subs.subscription_id
    return None


def _id(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default
