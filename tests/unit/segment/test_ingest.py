"""The ingest API through Starlette's test client: every path, encoding and refusal."""

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

WRITE_KEY = "wk-test-123"


def auth(key: str = WRITE_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return sandbox_config(tmp_path, WRITE_KEY)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(create_app(config, deliver=False), client=("127.0.0.1", 50000)) as c:
        yield c


def stored(config: Config) -> list[dict[str, Any]]:
    return stored_messages(config.data_dir / "queue.sqlite3")


def post(
    client: TestClient,
    path: str,
    payload: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return client.post(
        path, content=data, headers={"Content-Type": content_type, **auth(), **(headers or {})}
    )


@pytest.mark.parametrize(
    ("path", "payload", "mtype"),
    [
        ("/v1/identify", {"userId": "u", "traits": {"email": "a@b.com"}}, "identify"),
        ("/v1/i", {"userId": "u"}, "identify"),
        ("/v1/track", {"userId": "u", "event": "Bought Item"}, "track"),
        ("/v1/t", {"anonymousId": "a", "event": "Bought Item"}, "track"),
        ("/v1/page", {"anonymousId": "a", "name": "Home"}, "page"),
        ("/v1/p", {"anonymousId": "a"}, "page"),
        ("/v1/screen", {"userId": "u", "name": "Main"}, "screen"),
        ("/v1/s", {"userId": "u"}, "screen"),
        ("/v1/group", {"userId": "u", "groupId": "g"}, "group"),
        ("/v1/g", {"userId": "u", "groupId": "g"}, "group"),
        ("/v1/alias", {"userId": "u", "previousId": "a"}, "alias"),
        ("/v1/a", {"userId": "u", "previousId": "a"}, "alias"),
    ],
)
def test_single_message_paths(
    client: TestClient, config: Config, path: str, payload: dict[str, Any], mtype: str
) -> None:
    r = post(client, path, payload)
    assert (r.status_code, r.json()) == (200, {"success": True})
    (msg,) = stored(config)
    assert msg["type"] == mtype
    assert all(msg[k] == v for k, v in payload.items())


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/v1/import"])
def test_batch_paths_text_plain_and_body_write_key(client: TestClient, config: Config, path: str) -> None:
    payload = {
        "writeKey": WRITE_KEY,
        "sentAt": "2026-11-28T12:00:00Z",
        "context": {"library": {"name": "x"}},
        "batch": [
            {"type": "track", "userId": "u", "event": "E", "messageId": "m1"},
            {"type": "page", "anonymousId": "a", "messageId": "m2"},
        ],
    }
    r = client.post(path, content=orjson.dumps(payload), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    msgs = stored(config)
    assert [m["messageId"] for m in msgs] == ["m1", "m2"]
    assert all(m["context"] == {"library": {"name": "x"}} for m in msgs)
    assert all("writeKey" not in m for m in msgs)


def test_write_key_inside_batch_messages(client: TestClient, config: Config) -> None:
    payload = {"batch": [{"type": "page", "anonymousId": "a", "writeKey": WRITE_KEY}]}
    r = client.post("/v1/b", content=orjson.dumps(payload), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert len(stored(config)) == 1


def test_gzip_body(client: TestClient, config: Config) -> None:
    data = gzip.compress(orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"}]}))
    r = post(client, "/v1/batch", data, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert stored(config)[0]["event"] == "E"


def test_partial_batch_stores_valid_and_reports_rejected(client: TestClient, config: Config) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "ok", "messageId": "good-1"},
        {"type": "track", "userId": "u", "messageId": "bad-1"},
        {"type": "identify", "userId": "u", "messageId": "good-2"},
        {"type": "purchase", "userId": "u"},
    ]
    r = post(client, "/v1/batch", {"batch": batch})
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "accepted": 2,
        "rejected": [
            {"index": 1, "messageId": "bad-1", "reason": "track requires 'event', a non-empty string"},
            {
                "index": 3,
                "messageId": None,
                "reason": "unknown type 'purchase'; expected one of "
                "alias, group, identify, page, screen, track",
            },
        ],
    }
    assert [m["messageId"] for m in stored(config)] == ["good-1", "good-2"]


def test_duplicate_message_ids_are_stored_once(client: TestClient, config: Config) -> None:
    msg = {"userId": "u", "event": "E", "messageId": "same"}
    assert post(client, "/v1/t", msg).status_code == 200
    assert post(client, "/v1/t", msg).status_code == 200  # a client's retry
    assert len(stored(config)) == 1


BIG = "x" * (33 * 1024)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "reason"),
    [
        ("/v1/track", b"{not json", {}, 400, "invalid_json", "body is not valid JSON"),
        ("/v1/track", b"", {}, 400, "invalid_json", "body is empty"),
        ("/v1/track", b"[1,2]", {}, 400, "invalid_request", "body must be a JSON object"),
        ("/v1/batch", b'{"batch": {}}', {}, 400, "invalid_request", "needs 'batch', a list"),
        (
            "/v1/batch",
            b'{"batch": [], "sentAt": "later"}',
            {},
            400,
            "invalid_request",
            "'sentAt' is not an ISO-8601",
        ),
        (
            "/v1/batch",
            b'{"sentAt": "2026-11-28T12:00:00Z"}',
            {},
            400,
            "invalid_request",
            "needs 'batch', a list",
        ),
        ("/v1/batch", b'{"batch": [1, "x"]}', {}, 400, "invalid_message", "all 2 messages are invalid"),
        (
            "/v1/track",
            b'{"userId":"u","event":"e"}',
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
            "send application/json or text/plain",
        ),
        (
            "/v1/track",
            b'{"userId":"u","event":"e"}',
            {"Content-Encoding": "br"},
            415,
            "unsupported_encoding",
            "send gzip",
        ),
        (
            "/v1/track",
            b'{"userId":"u","event":"e"}',
            {"Content-Encoding": "gzip"},
            400,
            "invalid_gzip",
            "not valid gzip",
        ),
        (
            "/v1/track",
            gzip.compress(b'{"userId":"u","event":"e"}', mtime=0)[:-6],
            {"Content-Encoding": "gzip"},
            400,
            "invalid_gzip",
            "not valid gzip",
        ),
        (
            "/v1/track",
            orjson.dumps({"userId": "u", "event": "e", "properties": {"big": BIG}}),
            {},
            400,
            "invalid_message",
            "the limit is 32768",
        ),
        (
            "/v1/batch",
            orjson.dumps(
                {
                    "batch": [
                        {"type": "track", "userId": "u", "event": "e", "properties": {"p": "y" * 30000}}
                    ]
                    * 18
                }
            ),
            {},
            400,
            "request_too_large",
            "larger than 512000 bytes",
        ),
        (
            "/v1/batch",
            gzip.compress(b'{"batch":[' + b" " * 600_000 + b"]}", mtime=0),
            {"Content-Encoding": "gzip"},
            400,
            "request_too_large",
            "larger than 512000 bytes",
        ),
        (
            "/v1/track",
            b'{"userId":"u","event":"e"}',
            auth("wrong-key"),
            401,
            "invalid_write_key",
            "the write key is not valid",
        ),
        (
            "/v1/track",
            b'{"userId":"u","event":"e"}',
            {"Authorization": ""},
            401,
            "missing_write_key",
            "no write key",
        ),
        ("/v1/track", b'{"userId":"u"}', {}, 400, "invalid_message", "track requires 'event'"),
        (
            "/v1/identify",
            b'{"traits":{"email":"a@b.com"}}',
            {},
            400,
            "invalid_message",
            "identify requires 'userId' or 'anonymousId'",
        ),
        ("/v1/group", b'{"userId":"u"}', {}, 400, "invalid_message", "group requires 'groupId'"),
        ("/v1/alias", b'{"userId":"u"}', {}, 400, "invalid_message", "alias requires 'previousId'"),
        (
            "/v1/batch",
            b'{"batch":[{"type":"purchase","userId":"u"}]}',
            {},
            400,
            "invalid_message",
            "unknown type 'purchase'",
        ),
        ("/v1/purchase", b'{"userId":"u"}', {}, 404, "not_found", "unknown endpoint /v1/purchase"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    client: TestClient,
    config: Config,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    reason: str,
) -> None:
    r = client.post(path, content=body, headers={"Content-Type": "application/json", **auth(), **headers})
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["success"] is False and payload["code"] == code
    assert reason in payload["message"]
    assert stored(config) == []


def test_unknown_write_key_reveals_nothing(client: TestClient) -> None:
    near = post(client, "/v1/t", {"userId": "u", "event": "e"}, headers=auth(WRITE_KEY[:-1]))
    far = post(client, "/v1/t", {"userId": "u", "event": "e"}, headers=auth("zzz"))
    assert near.status_code == far.status_code == 401
    assert near.json() == far.json()
    assert WRITE_KEY not in near.text


def test_cors_preflight_and_response_headers(client: TestClient) -> None:
    pre = client.options(
        "/v1/t",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    r = post(client, "/v1/t", {"userId": "u", "event": "e"}, headers={"Origin": "https://shop.example"})
    assert r.headers["access-control-allow-origin"] == "*"


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    post(client, "/v1/t", {"userId": "u", "event": "e"})
    assert (
        'hubspot_relay_ingest_messages_total{outcome="accepted",source="web"}' in client.get("/metrics").text
    )
