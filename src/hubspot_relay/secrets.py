"""A string wrapper that never shows its value, so tokens cannot leak into logs or errors."""

from __future__ import annotations

import re
from typing import Any

_MASK = "********"


class Secret:
    """Holds a credential; `str()` and `repr()` mask it, `reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# Keys whose values are credentials wherever they appear (log fields, query strings, headers).
_SENSITIVE_KEY = re.compile(
    r"(token|secret|password|api_?key|hapikey|authorization|write_?key|cookie)", re.IGNORECASE
)
_QUERY_SECRET = re.compile(
    r"(?i)\b(hapikey|access_token|refresh_token|client_secret|api_key|token)=([^&\s]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def scrub_text(text: str) -> str:
    """Mask credentials embedded in free text such as URLs and header dumps."""
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={_MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {_MASK}", text)


def scrub(value: Any, key: str = "") -> Any:
    """Return `value` with every credential masked, recursing into dicts and lists."""
    if isinstance(value, Secret):
        return _MASK
    if key and is_sensitive_key(key) and _may_hold_secret(value):
        return _MASK
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A log event's fields with every credential masked."""
    return {k: scrub(v, str(k)) for k, v in fields.items()}


def _may_hold_secret(value: Any) -> bool:
    """A value under a secret's name is masked unless it cannot be one: nothing, an empty
    string, a flag or a number (`refresh_token_rotated=True` says nothing a thief can use)."""
    return not (value is None or value == "" or isinstance(value, bool | int | float))


def redacted_url(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.partition(":")[0]
        rest = f"{user + ':' if user else ''}***@{host}"
    return f"{scheme}{sep}{rest}"
