"""Backfill from a file: each line made ready as ingest would take it, batches acknowledged before
they count, and an interrupted import resumed without storing anything twice."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_relay.importer import ImportFailed, prepared, run, state_path
from hubspot_relay.segment.messages import InvalidMessage

ARCHIVED = {
    "type": "track",
    "userId": "u1",
    "event": "Order Completed",
    "timestamp": "2026-05-01T10:00:00.000Z",
    "originalTimestamp": "2026-05-01T09:59:58.000Z",
    "sentAt": "2026-05-01T09:59:59.000Z",
    "receivedAt": "2026-05-01T10:00:01.000Z",
}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Segment's timestamp is kept and sentAt left out (no second clock correction)
        (ARCHIVED, {"timestamp": "2026-05-01T10:00:00.000Z", "sentAt": None}),
        ({**ARCHIVED, "messageId": "m-1"}, {"messageId": "m-1"}),
        # no timestamp: the time Segment received it
        ({k: v for k, v in ARCHIVED.items() if k != "timestamp"}, {"timestamp": "2026-05-01T10:00:01.000Z"}),
    ],
)
def test_a_line_is_made_ready(line: dict[str, Any], expected: dict[str, Any]) -> None:
    body, message_id = prepared(json.dumps(line).encode())
    msg = orjson.loads(body)
    for key, value in expected.items():
        assert msg.get(key) == value
    assert msg["messageId"] == message_id


def test_a_line_without_messageid_gets_the_same_one_every_time() -> None:
    raw = json.dumps(ARCHIVED).encode()
    assert prepared(raw, 7)[1] == prepared(raw, 7)[1] and prepared(raw, 7)[1].startswith("import-")
    other = json.dumps({**ARCHIVED, "userId": "u2"}).encode()
    assert prepared(other, 7)[1] != prepared(raw, 7)[1]
    assert prepared(raw, 8)[1] != prepared(raw, 7)[1]  # the same line twice in a file: two messages


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"type": "track", ', "not valid JSON"),
        (b"[1, 2]", "a message must be a JSON object"),
        (b'{"type": "track", "userId": "u"}', "track requires 'event'"),
        (b'{"type": "fly", "userId": "u"}', "type"),
        (b'{"type": "identify", "userId": "u", "traits": {"a": "' + b"x" * 40_000 + b'"}}', "32 KB"),
    ],
)
def test_a_line_ingest_would_refuse_is_refused_with_the_reason(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        prepared(line)


class FakeRelay:
    """The batch endpoint, storing by messageId as the queue dedupes; can fail on cue."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.fail_on: int | None = None
        self.lose_ack_on: int | None = None
        self.busy: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        if self.busy:
            self.busy -= 1
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"success": False})
        if self.posts == self.fail_on:
            raise KeyboardInterrupt  # the operator's Ctrl-C while a batch is out
        batch = orjson.loads(gzip.decompress(request.content))["batch"]
        for msg in batch:
            self.stored.setdefault(msg["messageId"], msg)
        if self.posts == self.lose_ack_on:
            raise httpx.ReadError("connection reset")  # stored, but the answer is lost
        return httpx.Response(200, json={"success": True})


def archive(path: Path, n: int, bad_every: int = 0) -> Path:
    with gzip.open(path, "wt") as f:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                f.write('{"type": "track"}\n')
            else:
                f.write(json.dumps({**ARCHIVED, "userId": f"u{i}", "properties": {"i": i}}) + "\n")
    return path


def test_an_interrupted_import_resumes_and_stores_nothing_twice(tmp_path: Path) -> None:
    file = archive(tmp_path / "a.jsonl.gz", 5_000, bad_every=1000)
    relay = FakeRelay()
    relay.fail_on = 4
    http = httpx.Client(transport=httpx.MockTransport(relay))
    with pytest.raises(KeyboardInterrupt):
        run(file, "http://relay", "wk", batch_bytes=60_000, http=http)
    saved = json.loads(state_path(file).read_text())
    assert 0 < saved["lines_done"] < 5_000 and saved["accepted"] == len(relay.stored)
    relay.fail_on = None
    relay.lose_ack_on = relay.posts + 2  # and once more, an answer lost: that batch is sent again
    state = run(file, "http://relay", "wk", batch_bytes=60_000, http=http)
    assert state.resumed_from == saved["lines_done"] and state.lines_done == 5_000
    assert len(relay.stored) == 4_995 == len({m["properties"]["i"] for m in relay.stored.values()})
    assert dict(state.refused) == {"track requires 'userId' or 'anonymousId'": 5}
    assert state.accepted >= 4_995  # a batch whose answer was lost is counted when it is acknowledged


def test_back_pressure_is_waited_out(tmp_path: Path) -> None:
    file = archive(tmp_path / "a.jsonl", 10)
    relay = FakeRelay()
    relay.busy = 2
    state = run(file, "http://relay", "wk", http=httpx.Client(transport=httpx.MockTransport(relay)))
    assert state.accepted == 10 and relay.posts == 3


def test_a_changed_file_is_not_resumed_by_mistake(tmp_path: Path) -> None:
    file = archive(tmp_path / "a.jsonl", 10)
    relay = FakeRelay()
    http = httpx.Client(transport=httpx.MockTransport(relay))
    run(file, "http://relay", "wk", http=http)
    archive(file, 20)
    with pytest.raises(ImportFailed, match="--restart"):
        run(file, "http://relay", "wk", http=http)
    assert run(file, "http://relay", "wk", http=http, restart=True).lines_done == 20


def test_a_refused_request_stops_the_import_with_the_relays_reason(tmp_path: Path) -> None:
    file = archive(tmp_path / "a.jsonl", 3)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"success": False, "message": "the write key is not valid"})

    with pytest.raises(ImportFailed, match="401 the write key is not valid"):
        run(file, "http://relay", "wk", http=httpx.Client(transport=httpx.MockTransport(refuse)))


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_line_is_made_ready_or_refused_with_a_reason(line: bytes) -> None:
    try:
        body, message_id = prepared(line, 1)
    except InvalidMessage as e:
        assert str(e)
        return
    assert orjson.loads(body)["messageId"] == message_id
