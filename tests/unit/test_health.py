"""/health tells the truth about the queue's store: 503 naming the store and since when while it
cannot take writes (Redis killed, a disk failing), 200 again by itself once it can; the
operations API, `status` and /metrics say the same."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from hubspot_relay import health as health_module
from hubspot_relay.errors import QueueWriteError
from hubspot_relay.health import StoreHealth
from hubspot_relay.secrets import Secret
from hubspot_relay.server import create_app
from tests.conftest import require_tool
from tests.helpers import sandbox_config
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), True),
        (redis.ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (OSError(28, "No space left on device"), True),
        (QueueWriteError("the queue writer is restarting; retry"), True),
        (ValueError("a message's fault, or a bug"), False),
        (KeyError("x"), False),
    ],
)
def test_only_the_stores_failures_mark_it_down(error: BaseException, down: bool) -> None:
    h = StoreHealth("queue.sqlite3")
    assert h.failed(error) is down
    assert h.up is not down


def test_the_report_says_which_store_since_when_and_why() -> None:
    now = [1_800_000_000.0]
    h = StoreHealth("redis://***@10.0.0.5:6379/0", clock=lambda: now[0])
    assert h.report() == {"name": "redis://***@10.0.0.5:6379/0", "up": True}
    h.failed(redis.ConnectionError("Connection closed by server."))
    now[0] += 12.34
    h.failed(redis.ConnectionError("Error 111 connecting"))  # still down since the first
    assert h.report() == {
        "name": "redis://***@10.0.0.5:6379/0",
        "up": False,
        "since": "2027-01-15T08:00:00Z",
        "down_for_s": 12.3,
        "error": "ConnectionError: Error 111 connecting",
    }
    h.answered()
    assert h.report()["up"] and h.error is None


async def test_the_probe_marks_down_and_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "PROBE_DOWN_S", 0.05)
    h = StoreHealth("queue.sqlite3")

    async def failing() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async def hanging() -> None:
        await asyncio.sleep(10)

    async def fine() -> None:
        return None

    await h.probe(failing)
    assert not h.up and h.error == "OperationalError: disk I/O error"
    await h.probe(fine)
    assert h.up
    await h.probe(hanging)
    assert not h.up and "no answer" in (h.error or "")


def wait_for(client: TestClient, status: int, seconds: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        r = client.get("/health")
        if r.status_code == status or time.monotonic() > deadline:
            assert r.status_code == status, r.text
            return dict(r.json())
        time.sleep(0.1)


def test_health_while_redis_is_down_and_after(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cfg = replace(
        sandbox_config(tmp_path, "wk"),
        queue_url=Secret(server.url.replace("redis://", "redis://:hunter2@")),
        queue_prefix=f"t-{uuid.uuid4().hex[:8]}",
    )
    server_url_with_password = cfg.queue_url
    assert server_url_with_password is not None
    try:
        with TestClient(create_app(cfg, deliver=False), client=("127.0.0.1", 1)) as client:
            assert client.get("/health").json() == {"status": "ok"}
            server.kill()
            auth = ("wk", "")
            r = client.post("/v1/identify", json={"userId": "a@x.com", "traits": {}}, auth=auth)
            assert r.status_code == 503
            body = wait_for(client, 503, seconds=1)  # at once: ingest saw it
            assert body["status"] == "unavailable"
            assert body["store"]["name"].startswith("redis://***@127.0.0.1:")
            assert body["store"]["up"] is False and body["store"]["since"].endswith("Z")
            assert "hunter2" not in client.get("/health").text
            status = client.get("/admin/api/status").json()
            assert status["status"] == "unavailable" and status["store"]["up"] is False
            metrics = client.get("/metrics").text
            assert "hubspot_relay_store_up 0.0" in metrics
            server.start()
            assert wait_for(client, 200, seconds=10) == {"status": "ok"}  # by itself: the probe
            r = client.post("/v1/identify", json={"userId": "a@x.com", "traits": {}}, auth=auth)
            assert r.status_code == 200
            assert client.get("/admin/api/status").json()["store"]["up"] is True
            assert "hubspot_relay_store_up 1.0" in client.get("/metrics").text
    finally:
        server.stop()


def test_health_while_sqlites_disk_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "PROBE_UP_S", 0.1)
    monkeypatch.setattr(health_module, "PROBE_DOWN_S", 0.1)
    app = create_app(sandbox_config(tmp_path, "wk"), deliver=False)
    queue: Any = app.state.queue
    failing = {"on": False}
    real_check = queue.check

    async def check() -> None:
        if failing["on"]:
            raise sqlite3.OperationalError("disk I/O error")
        await real_check()

    queue.check = check
    with TestClient(app, client=("127.0.0.1", 1)) as client:
        assert client.get("/health").status_code == 200
        failing["on"] = True
        body = wait_for(client, 503, seconds=5)
        assert body["store"]["error"] == "OperationalError: disk I/O error"
        assert body["store"]["name"] == str(tmp_path / "queue.sqlite3")
        failing["on"] = False
        assert wait_for(client, 200, seconds=5) == {"status": "ok"}
