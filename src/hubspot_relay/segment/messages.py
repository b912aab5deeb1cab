"""Segment Tracking API messages: what a valid one is, and how it is stamped on arrival.

Pure functions over decoded JSON: no I/O and no clock (the arrival time is passed in), so the
rules are tested as tables of input -> outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})

# Path segment under /v1/ -> message type; analytics-next uses the one-letter forms.
SINGLE_PATHS: dict[str, str] = {
    **{t: t for t in MESSAGE_TYPES},
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
BATCH_PATHS = frozenset({"batch", "b", "import"})

# Segment's HTTP Tracking API limits.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024

# Fields that, when present, must be JSON objects.
_OBJECT_FIELDS = ("traits", "properties", "context", "integrations")


class InvalidMessage(ValueError):
    """A message that cannot be accepted; the text says why, for the client's developer."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A validated message, stamped and serialized, ready for the queue."""

    message_id: str
    type: str
    body: bytes


def _has_id(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int | float) and not isinstance(value, bool)


@lru_cache(maxsize=512)
def _parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidMessage(f"'{field}' must be an ISO-8601 string")
    parsed = _parse_iso(value)
    if parsed is None:
        raise InvalidMessage(f"'{field}' is not an ISO-8601 date-time: {value[:40]!r}")
    return parsed


def check(msg: Any, forced_type: str | None = None) -> str:
    """Validate one message as Segment's spec requires; returns its type or raises InvalidMessage."""
    if not isinstance(msg, dict):
        raise InvalidMessage("a message must be a JSON object")
    mtype = forced_type or msg.get("type")
    if mtype not in MESSAGE_TYPES:
        if mtype is None:
            raise InvalidMessage("'type' is missing")
        raise InvalidMessage(
            f"unknown type {str(mtype)[:40]!r}; expected one of {', '.join(sorted(MESSAGE_TYPES))}"
        )
    if mtype == "alias":
        if not _has_id(msg.get("previousId")):
            raise InvalidMessage("alias requires 'previousId'")
        if not _has_id(msg.get("userId")):
            raise InvalidMessage("alias requires 'userId'")
    elif not (_has_id(msg.get("userId")) or _has_id(msg.get("anonymousId"))):
        raise InvalidMessage(f"{mtype} requires 'userId' or 'anonymousId'")
    if mtype == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessage("track requires 'event', a non-empty string")
    if mtype == "group" and not _has_id(msg.get("groupId")):
        raise InvalidMessage("group requires 'groupId'")
    for name in _OBJECT_FIELDS:
        value = msg.get(name)
        if value is not None and not isinstance(value, dict):
            raise InvalidMessage(f"'{name}' must be an object")
    message_id = msg.get("messageId")
    if message_id is not None and not _has_id(message_id):
        raise InvalidMessage("'messageId' must be a non-empty string")
    return mtype


# Stamps add at most this much to a message, so a stamped body this far under the limit was
# certainly under it as sent; only bodies near the limit are measured as sent.
_STAMP_MARGIN = 512
_DUMPS_OPTIONS = orjson.OPT_UTC_Z


def accept(
    msg: Any,
    received_at: datetime,
    *,
    forced_type: str | None = None,
    sent_at: Any = None,
    defaults: dict[str, Any] | None = None,
) -> Accepted:
    """Validate and stamp one message the way Segment's API does.

    - `type` comes from the path for single-message endpoints;
    - `messageId` is generated when missing;
    - `receivedAt` is the arrival time; the client's `timestamp` is kept as `originalTimestamp`
      and `timestamp` is corrected for the client's clock skew with `sentAt`;
    - batch-level `context` / `integrations` fill in what a message lacks;
    - the write key is never stored.
    """
    mtype = check(msg, forced_type)
    out = dict(msg)
    out.pop("writeKey", None)
    out["type"] = mtype
    if defaults:
        for key, value in defaults.items():
            if out.get(key) is None:
                out[key] = value
    message_id = out.get("messageId")
    message_id = f"relay-{uuid.uuid4()}" if message_id is None else str(message_id)
    out["messageId"] = message_id

    msg_sent_at = out.get("sentAt", sent_at)
    timestamp = out.get("timestamp")
    corrected = received_at
    if timestamp is not None:
        ts = _parse_time(timestamp, "timestamp")
        out["originalTimestamp"] = timestamp
        corrected = ts
        if msg_sent_at is not None:
            corrected = received_at - (_parse_time(msg_sent_at, "sentAt") - ts)
    elif msg_sent_at is not None:
        _parse_time(msg_sent_at, "sentAt")
    if msg_sent_at is not None:
        out["sentAt"] = msg_sent_at
    out["timestamp"] = corrected.astimezone(UTC) if corrected.utcoffset() else corrected
    out["receivedAt"] = received_at
    body = orjson.dumps(out, option=_DUMPS_OPTIONS)
    if len(body) > MAX_MESSAGE_BYTES - _STAMP_MARGIN:
        raw_size = len(orjson.dumps(msg))
        if raw_size > MAX_MESSAGE_BYTES:
            raise InvalidMessage(f"message is {raw_size} bytes; the limit is {MAX_MESSAGE_BYTES} (32 KB)")
    return Accepted(message_id=message_id, type=mtype, body=body)
