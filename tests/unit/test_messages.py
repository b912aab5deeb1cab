from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hubspot_relay.segment.messages import MAX_MESSAGE_BYTES, InvalidMessage, accept, check

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("msg", "forced", "expected"),
    [
        ({"type": "identify", "userId": "u1"}, None, "identify"),
        ({"type": "identify", "anonymousId": "a1"}, None, "identify"),
        ({"type": "identify", "userId": "u1", "anonymousId": None}, None, "identify"),  # analytics-python
        ({"type": "identify", "userId": 42}, None, "identify"),
        ({"userId": "u1", "event": "Bought"}, "track", "track"),
        ({"type": "page", "userId": "u1", "event": "E"}, "track", "track"),  # the path decides, as at Segment
        ({"type": "page", "anonymousId": "a"}, None, "page"),
        ({"type": "screen", "userId": "u"}, None, "screen"),
        ({"type": "group", "userId": "u", "groupId": "g"}, None, "group"),
        ({"type": "alias", "previousId": "a", "userId": "u"}, None, "alias"),
    ],
)
def test_valid_messages(msg: dict[str, Any], forced: str | None, expected: str) -> None:
    assert check(msg, forced) == expected


@pytest.mark.parametrize(
    ("msg", "forced", "reason"),
    [
        ([1, 2], None, "must be a JSON object"),
        ({"userId": "u"}, None, "'type' is missing"),
        ({"type": "purchase", "userId": "u"}, None, "unknown type 'purchase'"),
        ({"type": "identify"}, None, "identify requires 'userId' or 'anonymousId'"),
        ({"type": "identify", "userId": "", "anonymousId": None}, None, "requires 'userId' or 'anonymousId'"),
        ({"type": "identify", "userId": True}, None, "requires 'userId' or 'anonymousId'"),
        ({"type": "track", "userId": "u"}, None, "track requires 'event'"),
        ({"type": "track", "userId": "u", "event": "  "}, None, "track requires 'event'"),
        ({"type": "track", "userId": "u", "event": 5}, None, "track requires 'event'"),
        ({"type": "group", "userId": "u"}, None, "group requires 'groupId'"),
        ({"type": "alias", "userId": "u"}, None, "alias requires 'previousId'"),
        ({"type": "alias", "previousId": "a"}, None, "alias requires 'userId'"),
        ({"type": "identify", "userId": "u", "traits": "x"}, None, "'traits' must be an object"),
        (
            {"type": "track", "userId": "u", "event": "e", "properties": []},
            None,
            "'properties' must be an object",
        ),
        ({"type": "page", "userId": "u", "context": 1}, None, "'context' must be an object"),
        ({"type": "page", "userId": "u", "messageId": ""}, None, "'messageId' must be a non-empty string"),
    ],
)
def test_invalid_messages(msg: Any, forced: str | None, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check(msg, forced)


def body(msg: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return orjson.loads(accept(msg, NOW, **kw).body)


def test_accept_keeps_fields_and_stamps_arrival() -> None:
    msg = {
        "type": "track",
        "userId": "u",
        "event": "Bought Item",
        "messageId": "m-1",
        "properties": {"email": "peter@initech.com", "revenue": 9.5},
        "context": {"ip": "1.2.3.4"},
    }
    out = accept(msg, NOW)
    assert (out.message_id, out.type) == ("m-1", "track")
    stored = orjson.loads(out.body)
    assert stored["properties"] == msg["properties"]
    assert stored["context"] == msg["context"]
    assert stored["receivedAt"] == "2026-11-28T12:00:00Z"
    assert stored["timestamp"] == "2026-11-28T12:00:00Z"  # no client timestamp: arrival time


def test_accept_generates_message_id_and_drops_write_key() -> None:
    out = accept({"type": "page", "anonymousId": "a", "writeKey": "secret-key"}, NOW)
    assert out.message_id.startswith("relay-")
    assert "writeKey" not in orjson.loads(out.body)
    assert b"secret-key" not in out.body


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "expected"),
    [
        # client clock 1 hour behind: the event happened 10 s before it was sent
        ("2026-11-28T10:59:50Z", "2026-11-28T11:00:00Z", "2026-11-28T11:59:50Z"),
        # no sentAt: the client's timestamp is trusted as is
        ("2026-11-27T08:00:00+02:00", None, "2026-11-27T06:00:00Z"),
        # naive timestamps are taken as UTC
        ("2026-11-27T08:00:00", None, "2026-11-27T08:00:00Z"),
    ],
)
def test_clock_skew_correction(timestamp: str, sent_at: str | None, expected: str) -> None:
    out = body({"type": "track", "userId": "u", "event": "e", "timestamp": timestamp}, sent_at=sent_at)
    assert out["timestamp"] == expected
    assert out["originalTimestamp"] == timestamp


def test_bad_timestamp_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="'timestamp' is not an ISO-8601"):
        accept({"type": "track", "userId": "u", "event": "e", "timestamp": "yesterday"}, NOW)


def test_batch_defaults_fill_missing_context_only() -> None:
    defaults = {"context": {"library": {"name": "batch"}}}
    assert body({"type": "page", "userId": "u"}, defaults=defaults)["context"] == defaults["context"]
    own = {"library": {"name": "own"}}
    assert body({"type": "page", "userId": "u", "context": own}, defaults=defaults)["context"] == own


def test_message_size_limit() -> None:
    base = {"type": "track", "userId": "u", "event": "e"}
    overhead = len(orjson.dumps({**base, "properties": {"x": ""}}))
    fits = {**base, "properties": {"x": "a" * (MAX_MESSAGE_BYTES - overhead)}}
    accept(fits, NOW)
    with pytest.raises(InvalidMessage, match="the limit is 32768"):
        accept({**base, "properties": {"x": "a" * (MAX_MESSAGE_BYTES - overhead + 1)}}, NOW)
