"""Segment Tracking API messages: what a valid one is, what is stored, and how it is stamped.

Ingest stores each message as the client sent it (its JSON bytes) with the arrival time and
the request's `sentAt` beside it; `stamped()` derives Segment's server-side fields from those
when the message is read. Validation reads only the fields it checks (msgspec, in C), so a
message is never parsed into Python objects on the hot path. Pure functions: no I/O and no
clock (the arrival time is passed in).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
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
# Ours: JSON nested deeper than this is refused at ingest (HubSpot takes flat property values, and
# a parser's recursion is not a thing to hand to strangers). The message object itself is level 1.
MAX_DEPTH = 64
# Timestamps HubSpot can be given, after clock-skew correction: from 1970 to the year 9999.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)

_EMPTY = msgspec.Raw()


class InvalidMessage(ValueError):
    """A message that cannot be accepted; the text says why, for the client's developer."""


class Fields(msgspec.Struct):
    """The fields validation looks at; everything else in a message is carried untouched."""

    type: Any = None
    userId: Any = None
    anonymousId: Any = None
    event: Any = None
    groupId: Any = None
    previousId: Any = None
    messageId: Any = None
    writeKey: Any = None
    timestamp: Any = None
    sentAt: Any = None
    traits: msgspec.Raw = _EMPTY
    properties: msgspec.Raw = _EMPTY
    context: msgspec.Raw = _EMPTY
    integrations: msgspec.Raw = _EMPTY
    metadata: msgspec.Raw = msgspec.field(default=_EMPTY, name="_metadata")


class Batch(msgspec.Struct):
    """A /v1/batch body: its messages stay raw JSON until each is checked."""

    batch: list[msgspec.Raw] | None = None
    sentAt: Any = None
    writeKey: Any = None
    context: msgspec.Raw = _EMPTY
    integrations: msgspec.Raw = _EMPTY


FIELDS = msgspec.json.Decoder(Fields)
BATCH = msgspec.json.Decoder(Batch)


class Accepted(NamedTuple):
    """A validated message, ready for the queue: its JSON as sent, or as minimally rewritten."""

    message_id: str
    type: str
    body: bytes
    user: str = ""  # userId, else anonymousId: whose messages must keep their order (the queue's key)


def _has_id(value: Any) -> bool:
    if type(value) is str:
        return bool(value) and not value.isspace()
    return isinstance(value, int | float) and not isinstance(value, bool)


_OPEN_BRACE = ord("{")
_OBJECT_OR_NULL = (_OPEN_BRACE, ord("n"))


def is_object(raw: msgspec.Raw) -> bool:
    """A raw JSON value that is present and an object (its first byte tells)."""
    return bool(raw) and memoryview(raw)[0] == _OPEN_BRACE


@lru_cache(maxsize=512)
def _parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_time(value: Any, field: str, *, cached: bool = False) -> datetime:
    """An ISO-8601 date-time; `cached` for values that repeat (a batch's sentAt), not timestamps."""
    if not isinstance(value, str):
        raise InvalidMessage(f"'{field}' must be an ISO-8601 string")
    if cached:
        parsed = _parse_iso(value)
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidMessage(f"'{field}' is not an ISO-8601 date-time: {value[:40]!r}")
    return parsed


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def nesting_depth(raw: bytes) -> int:
    """How deeply a JSON text nests objects and arrays (brackets inside strings do not count)."""
    brackets = _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_depth(raw: bytes, limit: int = MAX_DEPTH, openers: int | None = None) -> None:
    """Refuse JSON nested deeper than `limit`; counting brackets first makes the usual case free."""
    if openers is None:
        openers = raw.count(b"{") + raw.count(b"[")
    if openers > limit and (depth := nesting_depth(raw)) > limit:
        raise InvalidMessage(f"message nests objects or arrays {depth} levels deep; the limit is {limit}")


# A number a double cannot hold (1e400, or 309+ digits): the delivery side's parser refuses those, so
# a message that seems to have one is parsed in full at ingest. The search runs on a "shape" copy:
# digits become "0", e/E "e", "[" and "{" "{" (so one count tells how many objects and arrays
# open), "+" is dropped and every other byte is a space (bytes.translate and `in`, both in C; a
# regex took twice as long as the rest of validation). A false alarm (a uuid's "4e123") costs one
# parse.
_NUMBER_SHAPE = bytes(
    ord("0") if 48 <= b <= 57 else ord("e") if b in b"eE" else ord("{") if b in b"[{" else ord(" ")
    for b in range(256)
)
_TOO_MANY_DIGITS = b"0" * 309


def check_shape(raw: bytes) -> None:
    """Nesting within MAX_DEPTH and numbers a double can hold, from one translated copy."""
    shape = raw.translate(_NUMBER_SHAPE, b"+")  # "+" deleted: 1e+400 reads 0e000
    check_depth(raw, openers=shape.count(b"{"))
    if b"0e000" in shape or (len(raw) > 308 and _TOO_MANY_DIGITS in shape):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidMessage(f"message has a number out of range: {e}") from None


def check_utf8(raw: bytes) -> None:
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidMessage(f"message is not valid UTF-8 (byte {e.start})") from None


def corrected_timestamp(received: datetime, sent: datetime | None, timestamp: datetime) -> datetime:
    """Segment's clock-skew correction: receivedAt - (sentAt - timestamp). OverflowError when the
    result is not a date-time (a client clock thousands of years off)."""
    if sent is None:
        return timestamp
    return received - (sent - timestamp)


def check_timestamp(ts: datetime, f: Fields, received_at: float, batch_sent_at: str | None) -> None:
    """A timestamp HubSpot can take once corrected for the client's clock (1970 to 9999)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    sent_raw = f.sentAt if f.sentAt is not None else batch_sent_at
    sent = _parse_iso(sent_raw) if isinstance(sent_raw, str) else None
    try:
        corrected = ts if sent is None else corrected_timestamp(_received(received_at), sent, ts)
        # the year alone settles it, but for a date-time in the first or last year
        ok = 1970 < corrected.year < 9999 or _EPOCH <= corrected <= _LATEST
    except (OverflowError, ValueError, TypeError):
        ok = False
    if not ok:
        raise InvalidMessage(
            f"'timestamp' {str(f.timestamp)[:40]!r} is out of range once corrected for the client's "
            "clock (sentAt): it must fall between 1970 and 9999"
        )


@lru_cache(maxsize=8)
def _received(received_at: float) -> datetime:
    """A request's arrival as a date-time, computed once for all its messages."""
    return datetime.fromtimestamp(received_at, UTC)


def check(f: Fields, forced_type: str | None = None) -> tuple[str, datetime | None]:
    """Validate one message as Segment's spec requires; returns its type and parsed timestamp, or
    raises InvalidMessage."""
    mtype = forced_type or f.type
    if type(mtype) is not str or mtype not in MESSAGE_TYPES:
        if mtype is None:
            raise InvalidMessage("'type' is missing")
        expected = ", ".join(sorted(MESSAGE_TYPES))
        raise InvalidMessage(f"unknown type {str(mtype)[:40]!r}; expected one of {expected}")
    if mtype == "alias":
        if not _has_id(f.previousId):
            raise InvalidMessage("alias requires 'previousId'")
        if not _has_id(f.userId):
            raise InvalidMessage("alias requires 'userId'")
    elif not (_has_id(f.userId) or _has_id(f.anonymousId)):
        raise InvalidMessage(f"{mtype} requires 'userId' or 'anonymousId'")
    if mtype == "track" and not (isinstance(f.event, str) and f.event.strip()):
        raise InvalidMessage("track requires 'event', a non-empty string")
    if mtype == "group" and not _has_id(f.groupId):
        raise InvalidMessage("group requires 'groupId'")
    # Each of these is an object or null when present: the first byte of its raw JSON tells.
    if f.traits and memoryview(f.traits)[0] not in _OBJECT_OR_NULL:
        raise InvalidMessage("'traits' must be an object")
    if f.properties and memoryview(f.properties)[0] not in _OBJECT_OR_NULL:
        raise InvalidMessage("'properties' must be an object")
    if f.context and memoryview(f.context)[0] not in _OBJECT_OR_NULL:
        raise InvalidMessage("'context' must be an object")
    if f.integrations and memoryview(f.integrations)[0] not in _OBJECT_OR_NULL:
        raise InvalidMessage("'integrations' must be an object")
    if f.metadata and memoryview(f.metadata)[0] not in _OBJECT_OR_NULL:
        raise InvalidMessage("'_metadata' must be an object")
    if f.messageId is not None and not _has_id(f.messageId):
        raise InvalidMessage("'messageId' must be a non-empty string")
    timestamp = parse_time(f.timestamp, "timestamp") if f.timestamp is not None else None
    if f.sentAt is not None:
        parse_time(f.sentAt, "sentAt", cached=True)
    return mtype, timestamp


def accept(
    raw: bytes | msgspec.Raw,
    *,
    forced_type: str | None = None,
    defaults: dict[str, bytes] | None = None,
    new_id: Any = uuid.uuid4,
    received_at: float | None = None,
    batch_sent_at: str | None = None,
) -> Accepted:
    """Validate one message and return what the queue stores.

    Whatever is accepted can be delivered: valid UTF-8, nested at most MAX_DEPTH deep, and (given
    `received_at`) a timestamp still in range after the clock-skew correction. The bytes are
    kept as sent unless the message needs rewriting: a `type` that comes from the path, a
    generated `messageId`, batch-level `context`/`integrations` filling in, or a `writeKey` that
    must not be stored.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES} (32 KB)")
    body = bytes(raw)
    check_utf8(body)
    check_shape(body)
    try:
        f = FIELDS.decode(body)
    except msgspec.ValidationError:
        raise InvalidMessage("a message must be a JSON object") from None
    except msgspec.DecodeError as e:
        raise InvalidMessage(f"message is not valid JSON: {e}") from None
    mtype, timestamp = check(f, forced_type)
    if received_at is not None and timestamp is not None:
        check_timestamp(timestamp, f, received_at, batch_sent_at)
    fill = {k: v for k, v in defaults.items() if not is_object(getattr(f, k))} if defaults else None
    if f.type != mtype or f.messageId is None or f.writeKey is not None or fill:
        msg = orjson.loads(body)
        msg.pop("writeKey", None)
        msg["type"] = mtype
        if f.messageId is None:
            msg["messageId"] = f"relay-{new_id()}"
        for key, value in (fill or {}).items():
            msg[key] = orjson.loads(value)
        body = orjson.dumps(msg)
        message_id = str(msg["messageId"])
    else:
        message_id = str(f.messageId)
    user = f.userId if _has_id(f.userId) else f.anonymousId if _has_id(f.anonymousId) else ""
    return Accepted(message_id, mtype, body, str(user))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamped(body: bytes, received_at: float, sent_at: str | None = None) -> dict[str, Any]:
    """The message as Segment's API hands it on: with `receivedAt`, the client's `timestamp`
    kept as `originalTimestamp`, and `timestamp` corrected for the client's clock skew using
    `sentAt` (timestamp = receivedAt - (sentAt - originalTimestamp))."""
    msg: dict[str, Any] = orjson.loads(body)
    received = datetime.fromtimestamp(received_at, UTC)
    sent = msg.get("sentAt") or sent_at
    # Some SDKs send only `originalTimestamp` (the client's clock): corrected the same way.
    timestamp = msg.get("timestamp") if msg.get("timestamp") is not None else msg.get("originalTimestamp")
    corrected = received
    if timestamp is not None:
        msg["originalTimestamp"] = timestamp
        ts = _parse_iso(timestamp) if isinstance(timestamp, str) else None
        if ts is not None:
            sent_dt = _parse_iso(sent) if isinstance(sent, str) else None
            # Ingest refuses what cannot be corrected; a message stored before it did keeps receivedAt.
            with contextlib.suppress(OverflowError, ValueError):
                corrected = corrected_timestamp(received, sent_dt, ts)
    if sent is not None:
        msg["sentAt"] = sent
    msg["timestamp"] = _iso(corrected)
    msg["receivedAt"] = _iso(received)
    return msg
