"""An OAuth account with three relay processes on one Redis, at HubSpot's pace (300 ms a call),
the sandbox's access tokens living 24 s: clients send for a minute, through several expiries;
then the install is revoked. Every message is delivered once, every token is refreshed once for
all three processes, and the revoked install is the account's problem in status while its
messages wait (none dead-lettered)."""

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

LIFETIME_S = 24.0
RUN_S = 60.0
WAVE_S = 4.0
USERS_PER_WAVE = 8


def wave(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(USERS_PER_WAVE):
        user = f"w{n}-u{i}"
        out.append({"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
        out.append({"type": "track", "userId": user, "event": "Signed Up", "properties": {"wave": n}})
    return out


def post(url: str, batch: list[dict[str, Any]]) -> None:
    httpx.post(f"{url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, "")).raise_for_status()


def test_an_oauth_account_through_expiries_on_three_processes_then_revoked(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cluster = Cluster(tmp_path / "cluster", redis.url, 3, latency_ms=300, oauth_lifetime_s=LIFETIME_S)
    cluster.start()
    try:
        sent, n, started = 0, 0, time.monotonic()
        while time.monotonic() - started < RUN_S:
            batch = wave(n)
            relay = cluster.relays[n % 3]  # clients reach every process
            post(relay.url, batch)
            sent, n = sent + len(batch), n + 1
            time.sleep(WAVE_S)
        cluster.wait_delivered(sent, timeout=120)
        web = cluster.web()
        assert (web["delivered"], web["dead"]) == (sent, 0)
        oauth = cluster.http.get(f"{cluster.sandbox_url}/_sandbox/oauth").json()
        lifetimes = (time.monotonic() - started) / LIFETIME_S
        # Each token refreshed early, once for all three processes (never once per process).
        assert 3 <= oauth["refreshes"] <= lifetimes + 2, (oauth, lifetimes)
        calls = cluster.calls()
        refused = calls["by_status"].get("401", 0)
        print(f"oauth figures: sent {sent}, {oauth}, 401s {refused}, run of {lifetimes:.1f} lifetimes")
        assert calls["events_dropped_as_duplicates"] == 0  # nothing sent twice
        portal = cluster.portal()
        assert portal["contacts"] == sent // 2 and portal["events"] == sent // 2

        # The install revoked, every token run out: the next refresh is refused.
        cluster.http.post(f"{cluster.sandbox_url}/_sandbox/oauth/revoke", json={"refresh_token": "refresh-1"})
        cluster.http.post(f"{cluster.sandbox_url}/_sandbox/oauth/expire")
        late = wave(999)
        post(cluster.urls[0], late)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            problems = cluster.status()["accounts"]["cluster"]["problems"]
            if any(p["kind"] == "oauth" for p in problems):
                break
            time.sleep(0.5)
        (problem,) = [p for p in problems if p["kind"] == "oauth"]
        assert "BAD_REFRESH_TOKEN" in problem["message"] and "install it again" in problem["message"]
        assert "refresh-1" not in problem["message"] and "app-secret" not in problem["message"]
        time.sleep(3)
        web = cluster.web()
        assert web["dead"] == 0 and web["delivered"] == sent
        assert web["retrying"] + web["queued"] + web["in_flight"] == len(late)
        for relay in cluster.relays:
            log = relay.log()
            assert "app-secret" not in log and "refresh-1" not in log
    finally:
        cluster.stop()
        redis.stop()
