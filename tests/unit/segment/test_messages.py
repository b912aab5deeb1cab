from __future__ import annotations

from typing import Any

import orjson
import pytest

from hubspot_relay.segment.messages import MAX_MESSAGE_BYTES, InvalidMessage, accept, stamped

RECEIVED = 1_795_867_200.0  # 2026-11-28T12:00:00Z


def raw(msg: Any) -> bytes:
    return orjson.dumps(msg)


@pytest.mark.parametrize(
    ("msg", "forced", "expected"),
    [
        ({"type": "identify", "userId": "u1"}, None, "identify"),
        ({"type": "identify", "anonymousId": "a1"}, None, "identify"),
        ({"type": "identify", "userId": "u1", "anonymousId": None}, None, "identify"),  # analytics-python
        ({"type": "identify", "userId": 42}, None, "identify"),
        ({"userId": "u1", "event": "Bought"}, "track", "track"),
        ({"type": "page", "userId": "u1", "event": "E"}, "track", "track"),  # the path decides, as at Segment
        ({"type": "page", "anonymousId": "a", "context": None}, None, "page"),
        ({"type": "screen", "userId": "u"}, None, "screen"),
        ({"type": "group", "userId": "u", "groupId": "g"}, None, "group"),
        ({"type": "alias", "previousId": "a", "userId": "u"}, None, "alias"),
    ],
)
def test_valid_messages(msg: dict[str, Any], forced: str | None, expected: str) -> None:
    out = accept(raw(msg), forced_type=forced)
    assert out.type == expected
    assert orjson.loads(out.body)["type"] == expected


@pytest.mark.parametrize(
    ("msg", "forced", "reason"),
    [
        ([1, 2], None, "must be a JSON object"),
        ("text", None, "must be a JSON object"),
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
        ({"type": "page", "userId": "u", "integrations": "all"}, None, "'integrations' must be an object"),
        ({"type": "page", "userId": "u", "messageId": ""}, None, "'messageId' must be a non-empty string"),
        ({"type": "page", "userId": "u", "timestamp": "yesterday"}, None, "'timestamp' is not an ISO-8601"),
        (
            {"type": "page", "userId": "u", "timestamp": 1700000000},
            None,
            "'timestamp' must be an ISO-8601 string",
        ),
        ({"type": "page", "userId": "u", "sentAt": "soon"}, None, "'sentAt' is not an ISO-8601"),
    ],
)
def test_invalid_messages(msg: Any, forced: str | None, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason.replace("(", r"\(").replace(")", r"\)")):
        accept(raw(msg), forced_type=forced)


def test_bytes_are_kept_as_sent_when_nothing_needs_rewriting() -> None:
    body = b'{"type":"track", "userId":"u","event":"Bought Item","messageId":"m-1","properties":{"n":9.50}}'
    out = accept(body)
    assert (out.message_id, out.type, out.body) == ("m-1", "track", body)


@pytest.mark.parametrize(
    ("msg", "forced", "defaults", "expected"),
    [
        ({"userId": "u", "event": "E", "messageId": "m"}, "track", None, {"type": "track"}),
        ({"type": "page", "userId": "u", "messageId": "m", "writeKey": "wk-secret"}, None, None, {}),
        (
            {"type": "page", "userId": "u", "messageId": "m"},
            None,
            {"context": b'{"ip":"1.2.3.4"}'},
            {"context": {"ip": "1.2.3.4"}},
        ),
        (
            {"type": "page", "userId": "u", "messageId": "m", "context": {"ip": "own"}},
            None,
            {"context": b'{"ip":"batch"}'},
            {"context": {"ip": "own"}},
        ),
    ],
)
def test_rewrites(
    msg: dict[str, Any], forced: str | None, defaults: dict[str, bytes] | None, expected: dict[str, Any]
) -> None:
    out = orjson.loads(accept(raw(msg), forced_type=forced, defaults=defaults).body)
    assert "writeKey" not in out
    for key, value in expected.items():
        assert out[key] == value
    for key in msg.keys() - {"writeKey"} - expected.keys():
        assert out[key] == msg[key]


def test_message_id_is_generated_when_missing() -> None:
    out = accept(raw({"type": "page", "anonymousId": "a"}), new_id=lambda: "fixed")
    assert out.message_id == "relay-fixed"
    assert orjson.loads(out.body)["messageId"] == "relay-fixed"


def test_message_size_limit() -> None:
    base = {"type": "track", "userId": "u", "event": "e", "messageId": "m"}
    overhead = len(raw({**base, "properties": {"x": ""}}))
    accept(raw({**base, "properties": {"x": "a" * (MAX_MESSAGE_BYTES - overhead)}}))
    with pytest.raises(InvalidMessage, match="is 32769 bytes; the limit is 32768"):
        accept(raw({**base, "properties": {"x": "a" * (MAX_MESSAGE_BYTES - overhead + 1)}}))


@pytest.mark.parametrize(
    ("timestamp", "msg_sent_at", "batch_sent_at", "expected"),
    [
        # no client timestamp: the arrival time
        (None, None, None, "2026-11-28T12:00:00.000Z"),
        # client clock 1 hour behind: the event happened 10 s before the batch was sent
        ("2026-11-28T10:59:50Z", None, "2026-11-28T11:00:00Z", "2026-11-28T11:59:50.000Z"),
        # a message's own sentAt wins over the batch's
        ("2026-11-28T10:59:50Z", "2026-11-28T10:59:55Z", "2026-11-28T11:00:00Z", "2026-11-28T11:59:55.000Z"),
        # no sentAt: the client's timestamp is trusted as is
        ("2026-11-27T08:00:00+02:00", None, None, "2026-11-27T06:00:00.000Z"),
        # naive timestamps are taken as UTC
        ("2026-11-27T08:00:00", None, None, "2026-11-27T08:00:00.000Z"),
    ],
)
def test_stamped_corrects_clock_skew(
    timestamp: str | None, msg_sent_at: str | None, batch_sent_at: str | None, expected: str
) -> None:
    msg: dict[str, Any] = {"type": "track", "userId": "u", "event": "e"}
    if timestamp:
        msg["timestamp"] = timestamp
    if msg_sent_at:
        msg["sentAt"] = msg_sent_at
    out = stamped(raw(msg), RECEIVED, batch_sent_at)
    assert out["timestamp"] == expected
    assert out["receivedAt"] == "2026-11-28T12:00:00.000Z"
    assert out.get("originalTimestamp") == timestamp
    assert out.get("sentAt") == (msg_sent_at or batch_sent_at)
