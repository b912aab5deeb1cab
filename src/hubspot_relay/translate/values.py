"""Segment values -> HubSpot property values, by the property's type in the account's catalog.

HubSpot wants strings: `"true"`/`"false"`, numbers as text, multi-select options joined with
`;`, `date` properties as midnight UTC in epoch milliseconds, `datetime` as epoch milliseconds.
Keys that are not properties of the account, or are read-only, are dropped with the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson


@dataclass(frozen=True)
class PropertyInfo:
    name: str
    type: str  # string, number, date, datetime, enumeration, bool
    field_type: str = "text"
    read_only: bool = False
    options: frozenset[str] = frozenset()

    @classmethod
    def from_hubspot(cls, p: dict[str, Any]) -> PropertyInfo:
        meta = p.get("modificationMetadata") or {}
        read_only = bool(meta.get("readOnlyValue", p.get("readOnlyValue", False)))
        return cls(
            str(p["name"]),
            str(p.get("type", "string")),
            str(p.get("fieldType", "text")),
            read_only,
            frozenset(str(o.get("value")) for o in p.get("options") or []),
        )


class Uncoercible(ValueError):
    """A value that cannot be given the property's type."""


# Numbers as HubSpot reads them: ASCII digits (float() would also take "²", "1_000", "nan", "inf").
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
# Epoch milliseconds HubSpot can store: years 1 to 9999.
_MIN_MS, _MAX_MS = -62135596800000, 253402300799999


def _number(value: Any) -> str:
    if isinstance(value, bool):
        raise Uncoercible("a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Uncoercible("not a finite number")
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text) or not math.isfinite(float(text)):
            raise Uncoercible(f"{text[:40]!r} is not a number")
        return text
    raise Uncoercible(f"a {type(value).__name__} is not a number")


def _epoch_ms(value: Any) -> int:
    ms = _to_epoch_ms(value)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise Uncoercible(f"{str(value)[:40]!r} is out of range for a date")
    return ms


def _to_epoch_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise Uncoercible("a boolean is not a date")
    if isinstance(value, float) and not math.isfinite(value):
        raise Uncoercible("not a finite number")
    if isinstance(value, int | float):
        # Seconds or milliseconds: anything before 1973 in milliseconds is taken as seconds.
        return int(value * 1000) if abs(value) < 1e11 else int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            if len(text) > 20:
                raise Uncoercible(f"{text[:40]!r} is out of range for a date")
            return _to_epoch_ms(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise Uncoercible(f"{text[:40]!r} is not a date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise Uncoercible(f"{text[:40]!r} is out of range for a date") from None
    raise Uncoercible(f"a {type(value).__name__} is not a date")


def _midnight_ms(value: Any) -> int:
    """A `date` property: the UTC calendar day of the value, at midnight UTC."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            d = date.fromisoformat(value.strip())
        except ValueError:
            raise Uncoercible(f"{value[:40]!r} is not a date") from None
        return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
    ms = _epoch_ms(value)
    return ms - ms % 86_400_000


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return ";".join(_text(v) for v in value if v is not None)
    if isinstance(value, dict):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as e:  # nested past orjson's limit
            raise Uncoercible(f"an object that cannot be written as text: {e}") from None
    return str(value)


def coerce(value: Any, prop: PropertyInfo) -> str:
    """The string HubSpot accepts for `value` in `prop`, or Uncoercible. `""` (or None) clears
    a property of any type: HubSpot empties a property given an empty string."""
    if value is None or (isinstance(value, str) and value == ""):
        return ""
    if prop.type == "number":
        return _number(value)
    if prop.type == "date":
        return str(_midnight_ms(value))
    if prop.type == "datetime":
        return str(_epoch_ms(value))
    if prop.type == "bool":
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return "true"
        if text in ("false", "no", "0"):
            return "false"
        raise Uncoercible(f"{str(value)[:40]!r} is not a boolean")
    return _text(value)


def prepare(raw: dict[str, Any], catalog: dict[str, PropertyInfo]) -> tuple[dict[str, str], dict[str, str]]:
    """(values to send, dropped key -> reason) for a contact or company property map."""
    clean: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for key, value in raw.items():
        prop = catalog.get(key)
        if prop is None:
            dropped[key] = "not a property in this HubSpot account"
            continue
        if prop.read_only:
            dropped[key] = "read-only in HubSpot"
            continue
        try:
            clean[key] = coerce(value, prop)
        except Uncoercible as e:
            dropped[key] = f"not a valid {prop.type}: {e}"
    return clean, dropped
