"""Redis killed with -9 in the middle of delivery and started again on the same files, as an
unlucky operator would see it: one relay process on the Redis queue (AOF, fsync always), a
sandbox at a tight budget and HubSpot's latency, identifies and tracks for every user, Redis
down for several seconds, then a newer firstName for every user. /health answers 503 naming the
store while Redis is down and 200 by itself after; every message is delivered once, nothing is
left in flight, no relay restart is needed, and every contact ends with its newest firstName."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import WRITE_KEY, Cluster
from tests.conftest import require_tool
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

USERS = 600
DOWN_S = 8.0


def post_batch(url: str, batch: list[dict[str, Any]]) -> None:
    for start in range(0, len(batch), 100):
        r = httpx.post(f"{url}/v1/batch", json={"batch": batch[start : start + 100]}, auth=(WRITE_KEY, ""))
        r.raise_for_status()


def first_names(sandbox_url: str) -> dict[str, str]:
    """Every user's firstname as HubSpot has it (batch reads, waiting out the budget's 429s)."""
    names: dict[str, str] = {}
    emails = [f"user{i}@example.com" for i in range(USERS)]
    with httpx.Client(base_url=sandbox_url, headers={"Authorization": "Bearer sandbox-token"}) as http:
        for start in range(0, USERS, 100):
            body = {
                "idProperty": "email",
                "properties": ["email", "firstname"],
                "inputs": [{"id": e} for e in emails[start : start + 100]],
            }
            while (r := http.post("/crm/v3/objects/contacts/batch/read", json=body)).status_code == 429:
                time.sleep(1)
            r.raise_for_status()
            for row in r.json()["results"]:
                names[row["properties"]["email"]] = row["properties"].get("firstname")
    return names


def test_redis_killed_mid_delivery_then_newer_values(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cluster = Cluster(tmp_path / "cluster", redis.url, 1, per_10s=30, latency_ms=300).start()
    relay = cluster.relays[0]
    try:
        first = []
        for i in range(USERS):
            first.append(
                {
                    "type": "identify",
                    "userId": f"u{i}",
                    "traits": {"email": f"user{i}@example.com", "firstName": "old"},
                }
            )
            first.append({"type": "track", "userId": f"u{i}", "event": "Signed Up", "properties": {"n": i}})
        post_batch(relay.url, first)
        deadline = time.monotonic() + 120
        while cluster.web()["delivered"] < len(first) * 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        at_kill = cluster.web()
        assert at_kill["delivered"] < len(first), "delivered before the kill: the test proves nothing"
        redis.kill()
        health: list[int] = []
        down_until = time.monotonic() + DOWN_S
        while time.monotonic() < down_until:
            r = httpx.get(f"{relay.url}/health", timeout=5)
            health.append(r.status_code)
            if r.status_code == 503:
                store = r.json()["store"]
                assert store["up"] is False and store["name"].startswith("redis://127.0.0.1:")
            time.sleep(0.5)
        assert health.count(503) >= len(health) - 4, health  # within a couple of seconds of the kill
        redis.start()  # the same folder: the AOF
        deadline = time.monotonic() + 15
        while httpx.get(f"{relay.url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "/health did not recover by itself"
            time.sleep(0.2)
        newer = [
            {
                "type": "identify",
                "userId": f"u{i}",
                "traits": {"email": f"user{i}@example.com", "firstName": "new"},
            }
            for i in range(USERS)
        ]
        post_batch(relay.url, newer)
        total = len(first) + len(newer)
        cluster.wait_delivered(total, timeout=240)
        time.sleep(1.0)  # nothing more arrives after the count is reached
        web = cluster.web()
        assert (web["delivered"], web["dead"], web["queued"], web["in_flight"], web["retrying"]) == (
            total,
            0,
            0,
            0,
            0,
        ), web
        assert relay.proc is not None and relay.proc.poll() is None  # the same process throughout
        names = first_names(cluster.sandbox_url)
        stale = sorted(e for e, n in names.items() if n != "new")
        assert len(names) == USERS and not stale, (
            f"{len(stale)} contacts kept an older firstName: {stale[:5]}"
        )
        portal = cluster.portal()
        assert portal["events"] == USERS
    finally:
        cluster.stop()
        redis.stop()
