"""Ingest as an attacker tries it (issue 9): every input gets a 4xx with a code, never a 5xx;
what can never be delivered is refused at the door; errors stay small; floods meet back-pressure."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from hubspot_relay.config import Config
from hubspot_relay.server import create_app
from tests.helpers import sandbox_config, stored_messages

WK = "wk-hard"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WK}:".encode()).decode()}
JSON = {"Content-Type": "application/json", **AUTH}


def make_config(tmp_path: Path, **kw: Any) -> Config:
    return sandbox_config(tmp_path, WK, **kw)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(
        create_app(config, deliver=False), client=("127.0.0.1", 50000), raise_server_exceptions=False
    ) as c:
        yield c


def stored(config: Config) -> list[dict[str, Any]]:
    return stored_messages(config.data_dir / "queue.sqlite3")


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


TRACK = b'{"type":"track","userId":"u","event":"e"'

# body, path -> (status, code): the bodies that once answered 500, and their neighbours.
REFUSED = [
    (
        b'{"type":"track","userId":"u","event":"e","properties":' + nested(1100) + b"}",
        "/v1/track",
        "too_deep",
    ),
    (b'{"batch":[' + b"[" * 1100 + b"]" * 1100 + b"]}", "/v1/batch", "too_deep"),
    (b'{"type":"track","userId":"u","event":"\xff\xfe"}', "/v1/track", "invalid_json"),
    (b'{"type":"track","userId":"\xff","event":"e"}', "/v1/track", "invalid_json"),
    (b'{"type":"track","userId":"u","event":"e","messageId":"\xc3"}', "/v1/t", "invalid_json"),
    (b'{"batch":[{"type":"track","userId":"\xc3(","event":"e"}]}', "/v1/batch", "invalid_message"),
    (b'{"batch":[{"type":["track"],"userId":"u","event":"e"}]}', "/v1/batch", "invalid_message"),
    (b'{"batch":[{"type":{"a":1},"userId":"u","event":"e"}]}', "/v1/batch", "invalid_message"),
    # accepted on main, then undeliverable (finding 4)
    (TRACK + b',"properties":{"a":"\xff"}}', "/v1/track", "invalid_message"),
    (TRACK + b',"traits":{"a":"\xed\xa0\x80"}}', "/v1/track", "invalid_message"),  # a UTF-16 surrogate
    (TRACK + b',"_metadata":[1,2]}', "/v1/track", "invalid_message"),
    (TRACK + b',"_metadata":"bundled"}', "/v1/track", "invalid_message"),
    (TRACK + b',"properties":' + nested(500) + b"}", "/v1/track", "invalid_message"),
    (TRACK + b',"properties":' + nested(64) + b"}", "/v1/track", "invalid_message"),
    (TRACK + b',"properties":{"n":1e400}}', "/v1/track", "invalid_message"),
    (TRACK + b',"properties":{"n":' + b"9" * 400 + b"}}", "/v1/track", "invalid_message"),
    (
        TRACK + b',"timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T00:00:00Z"}',
        "/v1/track",
        "invalid_message",
    ),
    (
        TRACK + b',"timestamp":"9999-12-31T23:59:59Z","sentAt":"0001-01-01T00:00:00Z"}',
        "/v1/track",
        "invalid_message",
    ),
    (TRACK + b',"timestamp":"1900-01-01T00:00:00Z"}', "/v1/track", "invalid_message"),
]


@pytest.mark.parametrize(("body", "path", "code"), REFUSED)
def test_malformed_input_gets_a_4xx_with_a_code_and_nothing_is_stored(
    client: TestClient, config: Config, body: bytes, path: str, code: str
) -> None:
    r = client.post(path, content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert stored(config) == []


def test_nesting_up_to_the_limit_is_accepted(client: TestClient, config: Config) -> None:
    r = client.post("/v1/track", content=TRACK + b',"properties":' + nested(63) + b"}", headers=JSON)
    assert r.status_code == 200, r.text
    too_deep = client.post("/v1/track", content=TRACK + b',"properties":' + nested(64) + b"}", headers=JSON)
    assert "65 levels deep; the limit is 64" in too_deep.json()["message"]


def test_big_numbers_a_double_holds_are_accepted(client: TestClient) -> None:
    body = TRACK + b',"properties":{"n":1e300,"m":100000000000000000000000000,"s":"1e400"}}'
    assert client.post("/v1/track", content=body, headers=JSON).status_code == 200


def test_brackets_inside_strings_do_not_count_as_nesting(client: TestClient, config: Config) -> None:
    body = TRACK + b',"properties":{"s":"' + b"[{" * 200 + b'"}}'
    assert client.post("/v1/track", content=body, headers=JSON).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xe9\xe9", b"Basic \xff", "Basic " + base64.b64encode(b"\xff\xfe:").decode(), b"Bearer"],
)
def test_unreadable_authorization_is_a_401(client: TestClient, authorization: Any) -> None:
    r = client.post(
        "/v1/t",
        content=b'{"userId":"u","event":"e"}',
        headers={"Content-Type": "application/json", "Authorization": authorization},
    )
    assert r.status_code == 401 and r.json()["code"] == "missing_write_key"


def test_gzip_with_trailing_garbage_is_refused(client: TestClient, config: Config) -> None:
    body = gzip.compress(b'{"userId":"u","event":"e"}') + b"garbage"
    r = client.post("/v1/t", content=body, headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_gzip"
    assert "bytes follow the compressed data" in r.json()["message"]
    assert stored(config) == []


def test_an_error_body_stays_small_whatever_was_sent(client: TestClient) -> None:
    body = b'{"batch":[' + b",".join([b'{"type":"x"}'] * 16_000) + b"]}"  # 200 KB of invalid items
    r = client.post("/v1/batch", content=body, headers=JSON)
    assert r.status_code == 400
    payload = r.json()
    assert len(payload["rejected"]) == 20 and payload["rejectedCount"] == 16_000
    assert len(r.content) < 4096  # was 38 times the request


def test_more_items_than_any_valid_batch_holds_are_refused_whole(client: TestClient, config: Config) -> None:
    smallest = b'{"type":"page","anonymousId":1}'
    fits = b'{"batch":[' + b",".join([smallest] * 15_000) + b"]}"
    assert len(fits) < 500 * 1024
    assert client.post("/v1/batch", content=fits, headers=JSON).status_code == 200
    body = b'{"batch":[' + b",".join([b"1"] * 240_000) + b"]}"  # 480 KB
    r = client.post("/v1/batch", content=body, headers=JSON)
    assert r.status_code == 400 and r.json()["code"] == "too_many_messages"
    assert len(r.content) < 300 and len(stored(config)) == 15_000


def test_a_partial_batch_lists_the_first_rejections_and_counts_them(client: TestClient) -> None:
    batch = [{"type": "track", "userId": "u", "event": "ok"}] + [{"type": "nope"}] * 50
    r = client.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=JSON)
    assert r.status_code == 200
    assert (r.json()["accepted"], len(r.json()["rejected"]), r.json()["rejectedCount"]) == (1, 20, 50)


# ---- back-pressure (finding 7) ---------------------------------------------------------------


def test_past_max_queued_ingest_answers_429_and_health_says_why(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_queued=5)
    with TestClient(create_app(config, deliver=False), client=("127.0.0.1", 1)) as client:
        batch = [{"type": "track", "userId": "u", "event": f"e{i}"} for i in range(5)]
        assert (
            client.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=JSON).status_code == 200
        )
        r = client.post("/v1/t", content=b'{"userId":"u","event":"more"}', headers=JSON)
        assert r.status_code == 429 and r.json()["code"] == "queue_full"
        assert r.headers["retry-after"] == "5"
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["reasons"] == ["source 'web': 5 messages queued, max_queued=5"]
    assert len(stored(config)) == 5  # nothing accepted was dropped


def test_below_min_free_disk_ingest_answers_429(tmp_path: Path) -> None:
    config = make_config(tmp_path, min_free_disk_mb=10**9)  # more than any disk has
    with TestClient(create_app(config, deliver=False), client=("127.0.0.1", 1)) as client:
        r = client.post("/v1/t", content=b'{"userId":"u","event":"e"}', headers=JSON)
        assert r.status_code == 429 and r.json()["code"] == "disk_full"
        assert r.headers["retry-after"] == "60"
        assert "below min_free_disk_mb" in client.get("/health").json()["reasons"][0]


def test_back_pressure_lifts_once_the_queue_drains(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_queued=2)
    app = create_app(config, deliver=False)
    with TestClient(app, client=("127.0.0.1", 1)) as client:
        for i in range(2):
            client.post("/v1/t", content=orjson.dumps({"userId": "u", "event": f"e{i}"}), headers=JSON)
        assert client.post("/v1/t", content=b'{"userId":"u","event":"x"}', headers=JSON).status_code == 429
        queue = app.state.queue

        async def deliver_all() -> None:
            leased = await queue.lease(10, 60)
            await queue.ack([m.id for m in leased])
            await app.state.admin.backpressure.refresh(queue.pending_counts)

        client.portal.call(deliver_all)  # type: ignore[union-attr]
        assert client.post("/v1/t", content=b'{"userId":"u","event":"x"}', headers=JSON).status_code == 200
        assert client.get("/health").json() == {"status": "ok"}
