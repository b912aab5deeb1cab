"""HubSpot's write validation enforcement: from API version 2026-09, the rules a portal's admins
set for records (a property required on the create form; a property required when another has a
value) apply to API writes too, and a write that breaks one is refused with a 400
`VALIDATION_ERROR` naming the property (HubSpot's developer changelog, "CRM API Write Validation
Enforcement Starting with the 2026-09 API Version"). Opt-in per portal (`required_properties`);
earlier versions' paths are not checked, as at HubSpot."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import errors
from .errors import ApiError

FIRST_ENFORCING = "2026-09"
_VERSION = re.compile(r"/(20\d\d-(?:03|09))(?:/|$)")


def enforced(path: str) -> bool:
    """Whether a write at `path` is held to the portal's rules (a dated version from 2026-09)."""
    found = _VERSION.search(path)
    return found is not None and found.group(1) >= FIRST_ENFORCING


def rule_problem(rule: Mapping[str, Any]) -> str | None:
    """What is wrong with a rule as a portal file gives it (None: nothing)."""
    if not isinstance(rule.get("name"), str) or not rule["name"]:
        return "each required property needs a name"
    when = rule.get("when")
    if when is not None and not (
        isinstance(when, Mapping) and all(isinstance(when.get(k), str) for k in ("property", "value"))
    ):
        return f"{rule['name']}: when = {{ property = ..., value = ... }}"
    return None


def check(
    rules: Sequence[Mapping[str, Any]],
    object_type: str,
    singular: str,
    current: Mapping[str, str] | None,
    values: Mapping[str, str],
) -> None:
    """Refuse a write (a create when `current` is None) that leaves a required property empty."""
    after = {**(current or {}), **values}
    for rule in rules:
        if rule.get("object_type", "contacts") != object_type or after.get(rule["name"]):
            continue
        when = rule.get("when")
        if when is None and current is None:
            raise _missing(rule["name"], f"it is required when a {singular} is created")
        if when is not None and after.get(when["property"]) == when["value"]:
            raise _missing(rule["name"], f"it is required when {when['property']} is {when['value']}")


def _missing(name: str, why: str) -> ApiError:
    message = f'Required property "{name}" is missing: {why} (a rule set in this portal)'
    return errors.error(
        400,
        "VALIDATION_ERROR",
        message,
        errors=[{"message": message, "code": "REQUIRED_PROPERTY", "context": {"propertyName": [name]}}],
    )
