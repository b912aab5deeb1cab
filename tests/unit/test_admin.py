"""The operations API and every view of data behind a guard (issue 9, finding 5); the settings'
public address from configuration only (finding 6)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from hubspot_relay.config import Config, parse_proxies
from hubspot_relay.queue.protocol import State
from hubspot_relay.secrets import Secret
from hubspot_relay.server import create_app
from tests.helpers import sandbox_config

WK = "wk-admin"
TOKEN = "s3cret-admin-token"
INGEST = {
    "Content-Type": "application/json",
    "Authorization": "Basic " + base64.b64encode(f"{WK}:".encode()).decode(),
}
LOOPBACK = ("127.0.0.1", 40000)
REMOTE = ("203.0.113.9", 40000)


def make_config(tmp_path: Path, **kw: Any) -> Config:
    return sandbox_config(tmp_path, WK, **kw)


@pytest.fixture
def with_token(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_config(tmp_path, admin_token=Secret(TOKEN)))
    with TestClient(app, client=REMOTE) as c:
        yield c


DATA_VIEWS = [
    ("GET", "/admin/api/status"),
    ("GET", "/admin/api/dead-letters"),
    ("POST", "/admin/api/replay"),
    ("POST", "/admin/api/accounts/sandbox/pause"),
    ("POST", "/admin/api/accounts/sandbox/resume"),
    ("GET", "/demo/api/recent"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), DATA_VIEWS)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_every_view_of_data_needs_the_admin_token(
    with_token: TestClient, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = with_token.request(method, path, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert TOKEN not in r.text


@pytest.mark.parametrize(("method", "path"), DATA_VIEWS)
def test_without_a_token_data_views_answer_on_loopback_only(tmp_path: Path, method: str, path: str) -> None:
    app = create_app(make_config(tmp_path), deliver=False)
    with TestClient(app, client=REMOTE) as remote:
        r = remote.request(method, path)
        assert r.status_code == 403 and r.json()["code"] == "loopback_only"
    with TestClient(app, client=LOOPBACK) as local:
        assert local.request(method, path).status_code in (200, 404)  # 404: no delivery with --no-deliver
        # a local reverse proxy forwarding a stranger's request is not local
        proxied = local.request(method, path, headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403


def test_metrics_can_be_made_public(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, admin_token=Secret(TOKEN), metrics_public=True), deliver=False)
    with TestClient(app, client=REMOTE) as c:
        assert c.get("/metrics").status_code == 200


def test_status_dead_letters_replay_pause_and_resume(with_token: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    app: Any = with_token.app
    app.state.admin.deliveries[0].pause(True)  # nothing is delivered while we look
    batch = [{"type": "track", "userId": "u", "event": f"e{i}", "messageId": f"m{i}"} for i in range(3)]
    assert (
        with_token.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=INGEST).status_code
        == 200
    )

    async def dead_letter_one() -> None:
        queue = app.state.queue
        (m, *_) = await queue.lease(1, 60)
        await queue.dead_letter([m.id], "HubSpot 400 VALIDATION_ERROR: no")

    with_token.portal.call(dead_letter_one)  # type: ignore[union-attr]
    status = with_token.get("/admin/api/status", headers=auth).json()
    web = status["sources"]["web"]
    assert (web["queued"], web["dead"], web["account"]) == (2, 1, "sandbox")
    assert web["oldest_queued_age_s"] >= 0
    acc = status["accounts"]["sandbox"]
    assert acc["paused"] is True and acc["budget"]["per_day"] == 225_000  # 90% of the sandbox's 250,000
    assert acc["budget"]["calls_today"] >= 0 and status["status"] == "ok"
    assert any(p["kind"] == "paused" for p in acc["problems"])

    dead = with_token.get("/admin/api/dead-letters", headers=auth).json()["dead_letters"]
    assert [(d["messageId"], d["reason"]) for d in dead] == [("m0", "HubSpot 400 VALIDATION_ERROR: no")]
    assert dead[0]["message"]["event"] == "e0"
    assert with_token.get("/admin/api/dead-letters?limit=0", headers=auth).status_code == 400
    r = with_token.post("/admin/api/replay", content=b'{"reason": "VALIDATION"}', headers=auth)
    assert r.json() == {"success": True, "replayed": 1}
    assert with_token.post("/admin/api/replay", content=b"[1]", headers=auth).status_code == 400
    assert with_token.post("/admin/api/replay", content=b"{", headers=auth).status_code == 400

    r = with_token.post("/admin/api/accounts/sandbox/resume", headers=auth)
    assert r.json() == {"success": True, "account": "sandbox", "paused": False}
    assert with_token.post("/admin/api/accounts/nope/pause", headers=auth).status_code == 404
    assert app.state.queue._db.execute(
        f"SELECT count(*) FROM messages WHERE state = {State.DEAD}"
    ).fetchone() == (0,)


def test_a_pause_survives_a_restart(tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    config = make_config(tmp_path, admin_token=Secret(TOKEN))
    with TestClient(create_app(config), client=REMOTE) as c:
        assert c.post("/admin/api/accounts/sandbox/pause", headers=auth).status_code == 200
    with TestClient(create_app(config), client=REMOTE) as c:
        assert c.get("/admin/api/status", headers=auth).json()["accounts"]["sandbox"]["paused"] is True


def test_cors_only_on_ingest_and_settings(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, public_url="https://relay.example"), deliver=False)
    origin = {"Origin": "https://evil.example"}
    with TestClient(app, client=LOOPBACK) as c:
        assert (
            c.get("/v1/projects/wk-admin/settings", headers=origin).headers["access-control-allow-origin"]
            == "*"
        )
        preflight = c.options("/v1/batch", headers={**origin, "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "*"
        for path in ("/demo/api/recent", "/admin/api/status", "/metrics", "/health"):
            assert "access-control-allow-origin" not in c.get(path, headers=origin).headers
        admin_preflight = c.options(
            "/admin/api/status", headers={**origin, "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in admin_preflight.headers


def test_a_demo_row_that_cannot_be_read_breaks_no_view(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path), deliver=False)
    with TestClient(app, client=LOOPBACK) as c:
        c.post("/v1/t", content=b'{"userId":"u","event":"e"}', headers=INGEST)
        app.state.queue._db.execute("UPDATE messages SET body = x'ff00'")  # stored before ingest refused it
        rows = c.get("/demo/api/recent").json()
        assert [r["type"] for r in rows] == ["track"] and rows[0]["event"] is None


# ---- the settings' public address (finding 6) -------------------------------------------------

POISON = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


def settings(c: TestClient, headers: dict[str, str]) -> Any:
    return c.get(f"/v1/projects/{WK}/settings", headers=headers)


def test_the_configured_public_url_wins_over_any_header(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, public_url="https://relay.example"), deliver=False)
    with TestClient(app, client=REMOTE) as c:
        r = settings(c, POISON)
    body = r.json()
    assert body["integrations"]["Segment.io"]["apiHost"] == "relay.example/v1"
    assert body["remotePlugins"][0]["url"] == "https://relay.example/plugins/hubspot.js"
    assert "evil" not in r.text and r.headers["cache-control"] == "public, max-age=60"


def test_without_a_public_url_a_stranger_cannot_choose_the_address(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path), deliver=False)
    with TestClient(app, client=REMOTE) as c:
        r = settings(c, POISON)
    assert r.status_code == 503 and "HUBSPOT_RELAY_PUBLIC_URL" in r.json()["message"]
    assert "evil" not in r.text and r.headers["cache-control"] == "no-store"


def test_on_loopback_the_host_is_used_but_never_shared_by_a_cache(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path), deliver=False)
    with TestClient(app, client=LOOPBACK) as c:
        r = settings(c, {"Host": "localhost:8088", "X-Forwarded-Host": "evil.example"})
        assert r.json()["remotePlugins"][0]["url"] == "http://localhost:8088/plugins/hubspot.js"
        assert r.headers["cache-control"] == "private, max-age=60"
        assert settings(c, {"Host": "evil.example/x?"}).status_code == 503  # not a host name


def test_forwarded_headers_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    proxies = parse_proxies(["10.0.0.0/8"], "test")
    app = create_app(make_config(tmp_path, trusted_proxies=proxies), deliver=False)
    forwarded = {"Host": "internal:8088", "X-Forwarded-Host": "relay.example", "X-Forwarded-Proto": "https"}
    with TestClient(app, client=("10.1.2.3", 40000)) as c:
        assert (
            settings(c, forwarded).json()["remotePlugins"][0]["url"]
            == "https://relay.example/plugins/hubspot.js"
        )
        rfc7239 = {"Host": "internal:8088", "Forwarded": 'for=198.51.100.4;proto=https;host="relay.example"'}
        assert (
            settings(c, rfc7239).json()["remotePlugins"][0]["url"] == "https://relay.example/plugins/hubspot.js"
        )
    with TestClient(app, client=REMOTE) as c:
        assert settings(c, forwarded).status_code == 503
