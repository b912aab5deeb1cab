"""Names as HubSpot wants them: contact property keys (the seed's rules) and event names."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
_NOT_NAME = re.compile(r"[^a-z0-9_]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The seed converts these (and only these, in its words) to HubSpot's field names; issue 4
# adds the ones below them.
RENAMED = {
    "firstName": "firstname",
    "first_name": "firstname",
    "lastName": "lastname",
    "last_name": "lastname",
    "position": "jobtitle",
    "jobTitle": "jobtitle",
    "job_title": "jobtitle",
    "createdAt": "createdate",
    "created_at": "createdate",
    "created": "createdate",
}
ADDRESS = {
    "street": "address",
    "address": "address",
    "city": "city",
    "state": "state",
    "region": "state",
    "postalCode": "zip",
    "postal_code": "zip",
    "zip": "zip",
    "country": "country",
}


def is_email(value: object) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value.strip()))


def property_key(key: str) -> str:
    """A trait key as a HubSpot property name: lowercased, whitespace to `_` (the seed)."""
    return RENAMED.get(key) or _SPACES.sub("_", key.strip()).lower()


def event_name(event: str) -> str:
    """`Bought Item` -> `bought_item`: lowercased, spaces and dots (and anything else) to `_`."""
    name = _NOT_NAME.sub("_", event.strip().lower()).strip("_")
    return name[:100] or "event"


def event_property_key(key: str) -> str:
    """HubSpot's event property names: a letter, then lowercase letters, digits, `_`; 50 at most."""
    name = _NOT_NAME.sub("_", key.strip().lower()).strip("_")
    if not name or not name[0].isalpha():
        name = "p_" + name
    return name[:50]
