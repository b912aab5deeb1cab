"""Three relay processes, one Redis, one HubSpot budget: Segment's Python SDK sends 30,000
messages spread across the three, one process is killed with -9 while delivery runs, and
everything reaches HubSpot once in effect, without the sandbox ever seeing more than its limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis as sync_redis
from segment.analytics import Client

from tests.cluster import WRITE_KEY, Cluster
from tests.conftest import require_tool
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

USERS = 15_000  # an identify and a track each: 150 upserts and 30 event batches, past one window


def send(url: str, users: range, errors: list[str]) -> None:
    client = Client(
        WRITE_KEY,
        host=url,
        max_queue_size=100_000,
        upload_size=250,
        on_error=lambda e, batch: errors.append(f"{type(e).__name__}: {e}"),
    )
    for i in users:
        client.identify(user_id=f"user{i}", traits={"email": f"user{i}@example.com", "firstName": f"F{i}"})
        client.track(user_id=f"user{i}", event="Scaled Out", properties={"n": i})
    client.flush()
    client.shutdown()


def test_three_processes_deliver_everything_once_within_one_budget_through_a_kill_9(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cluster = Cluster(tmp_path / "cluster", redis.url, 3, per_10s=190, latency_ms=300).start()
    try:
        errors: list[str] = []
        share = USERS // 6
        senders = [
            threading.Thread(
                target=send, args=(cluster.urls[n % 3], range(n * share, (n + 1) * share), errors)
            )
            for n in range(6)
        ]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        assert not errors, errors[:3]
        total = 2 * USERS
        web = cluster.web()
        assert web["queued"] + web["in_flight"] + web["retrying"] + web["delivered"] == total

        # kill -9 one process while delivery runs: what it held must move to the others
        deadline = time.monotonic() + 120
        while cluster.web()["delivered"] < total * 0.15 and time.monotonic() < deadline:
            time.sleep(0.1)
        at_kill = cluster.web()["delivered"]
        cluster.relays[1].kill9()
        print(f"killed a relay with {at_kill} of {total} delivered")
        assert at_kill < total, "delivery had finished before the kill; the test proves nothing"

        cluster.wait_delivered(total, timeout=240)
        web = cluster.web()
        assert (web["delivered"], web["dead"], web["queued"], web["in_flight"]) == (total, 0, 0, 0)

        portal = cluster.portal()
        assert portal["contacts"] == USERS
        assert portal["events"] == USERS  # a message delivered twice is one event (its uuid)
        calls = cluster.calls()
        assert calls["by_status"].get("429", 0) == 0, calls["by_status"]
        assert calls["peak_10s"] <= 190, calls["peak_10s"]
        # the killed process's partitions are held by the two left
        r = sync_redis.Redis.from_url(redis.url, decode_responses=True)
        members = set(r.zrange("hubspot-relay:members", 0, -1))
        holders = {r.get(f"hubspot-relay:own:{p}") for p in range(16)}
        r.close()
        assert len(members) == 2 and holders == members
    finally:
        cluster.stop()
        redis.stop()
