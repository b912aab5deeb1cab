"""The right to be forgotten, end to end: segment-analytics-python sends for two people, the
operator runs `hubspot-relay forget --user-id`, and the relay suppresses the person, erases what
it holds of them and GDPR-deletes their HubSpot contact (the sandbox then refuses the email);
Segment's Public API shape (`POST /regulations`, `GET /regulations/{id}`) lifts the suppression."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.e2e.test_cli import cli
from tests.helpers import RelayProcess, stored_messages, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-forget"
AUTH = {"Authorization": "Bearer sandbox-token"}


def test_forget_a_person(data_dir: Path) -> None:
    with RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY}) as relay:
        sandbox = f"http://127.0.0.1:{relay.sandbox_port}"
        analytics = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        analytics.identify("u1", {"email": "ann@x.com", "firstName": "Ann"})
        analytics.track("u1", "Signed Up", {"plan": "pro"})
        analytics.identify("u2", {"email": "bo@x.com"})
        assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
        assert (
            httpx.get(
                f"{sandbox}/crm/v3/objects/contacts/ann@x.com?idProperty=email", headers=AUTH
            ).status_code
            == 200
        )

        env = {"HUBSPOT_RELAY_URL": relay.url, "HUBSPOT_RELAY_DATA_DIR": str(data_dir)}
        done = cli("forget", "--user-id", "u1", env=env)
        assert done.returncode == 0, done.stderr
        assert "SUPPRESS_WITH_DELETE: FINISHED" in done.stdout

        # HubSpot's contact is gone, and HubSpot refuses the email from now on
        gone = httpx.get(f"{sandbox}/crm/v3/objects/contacts/ann@x.com?idProperty=email", headers=AUTH)
        assert gone.status_code == 404
        again = httpx.post(
            f"{sandbox}/crm/v3/objects/contacts", json={"properties": {"email": "ann@x.com"}}, headers=AUTH
        )
        assert again.status_code == 400 and "GDPR" in again.text
        # the relay holds nothing of them; the other person is untouched
        users = [m.get("userId") for m in stored_messages(relay.queue_path)]
        assert "u1" not in users and "u2" in users
        # suppressed: answered as accepted, never stored
        analytics.identify("u1", {"email": "ann@x.com", "firstName": "Ann again"})
        analytics.identify("u2", {"email": "bo@x.com", "firstName": "Bo"})
        deadline = time.monotonic() + 10  # Bo's second identify stored: Ann's came before it
        while [m.get("userId") for m in stored_messages(relay.queue_path)].count("u2") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [m.get("userId") for m in stored_messages(relay.queue_path)].count("u1") == 0

        # Segment's Public API: lift the suppression; the next message is kept again
        http = httpx.Client(base_url=relay.url)
        made = http.post(
            "/regulations",
            json={"regulationType": "UNSUPPRESS", "subjectType": "USER_ID", "subjectIds": ["u1"]},
        )
        assert made.status_code == 200
        reg_id = made.json()["data"]["regulateId"]
        deadline = time.monotonic() + 15
        while (status := http.get(f"/regulations/{reg_id}").json()["data"]["regulation"])[
            "overallStatus"
        ] != "FINISHED":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["regulationType"] == "UNSUPPRESS" and status["subjectType"] == "DIGEST"
        assert status["subjectIds"][0].startswith("sha256:")  # done: no identifier is kept
        analytics.track("u1", "Came Back")
        deadline = time.monotonic() + 10
        while "u1" not in [m.get("userId") for m in stored_messages(relay.queue_path)]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert http.post("/regulations", json={"regulationType": "NOPE"}).status_code == 400
        log = relay.log()
        assert "ann@x.com" not in log


def test_a_suppression_holds_in_every_process_on_redis(tmp_path: Path) -> None:
    from tests.cluster import WRITE_KEY as CLUSTER_KEY
    from tests.cluster import Cluster
    from tests.conftest import require_tool
    from tests.redis_server import RedisServer

    redis = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cluster = Cluster(tmp_path / "cluster", redis.url, 2, latency_ms=0).start()
    try:
        first, second = cluster.relays
        made = httpx.post(f"{first.url}/admin/api/forget", json={"user_ids": ["u1"], "type": "SUPPRESS_ONLY"})
        assert made.status_code == 202
        time.sleep(1.5)  # another process reads suppressions at most a second old
        batch = [
            {"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"}},
            {"type": "identify", "userId": "u2", "traits": {"email": "bo@x.com"}},
        ]
        r = httpx.post(f"{second.url}/v1/batch", json={"batch": batch}, auth=(CLUSTER_KEY, ""))
        assert r.status_code == 200 and r.json()["success"] is True  # answered as accepted
        cluster.wait_delivered(1, timeout=30)
        time.sleep(1.0)
        web = cluster.web()
        assert web["delivered"] == 1 and web["queued"] + web["in_flight"] + web["retrying"] == 0
        contacts = cluster.portal()["contacts"]
        assert contacts == 1  # Bo only
    finally:
        cluster.stop()
        redis.stop()


def test_nothing_of_a_forgotten_person_remains_in_the_data_folder(data_dir: Path) -> None:
    """Every byte of every file the relay keeps (the queue, the identity map, the requests, their
    write-ahead logs and free pages, its log) is searched for the person's identifiers."""
    user, email = "ann-7q3z", "ann.7q3z@example.com"
    with RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY}) as relay:
        analytics = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        analytics.identify(user, {"email": email, "firstName": "Ann"})
        analytics.track(user, "Signed Up", {"plan": "pro"})
        analytics.page(user, name="Pricing")
        analytics.identify("bo-1", {"email": "bo@example.com"})
        assert wait_delivered(relay, 4)["delivered"] == 4
        env = {"HUBSPOT_RELAY_URL": relay.url, "HUBSPOT_RELAY_DATA_DIR": str(data_dir)}
        done = cli("forget", "--user-id", user, "--email", email, env=env)
        assert done.returncode == 0 and done.stdout.count("FINISHED") == 2, done.stdout + done.stderr
        analytics.track(user, "After", {"email": email})  # suppressed: dropped before storage
    found = {}
    for path in data_dir.rglob("*"):
        # (sandbox.sqlite3 is the bundled stand-in for HubSpot, not the relay's: like HubSpot it
        # keeps a GDPR-deleted email, to refuse it for a new contact)
        if path.is_file() and not path.name.startswith("sandbox.sqlite3"):
            data = path.read_bytes()
            for needle in (user.encode(), email.encode()):
                if needle in data:
                    found.setdefault(path.name, []).append(needle.decode())
    assert found == {}
    assert b"bo@example.com" in (data_dir / "identity.sqlite3").read_bytes()  # the search can find


def test_nothing_of_a_forgotten_person_remains_in_redis(tmp_path: Path) -> None:
    """Two processes on one Redis: after a forget, no key of the relay's holds the person's
    identifiers in what Redis serves back (streams, hashes, sets, lists, sorted sets)."""
    import redis as redis_lib

    from tests.cluster import WRITE_KEY as CLUSTER_KEY
    from tests.cluster import Cluster
    from tests.conftest import require_tool
    from tests.redis_server import RedisServer

    user, email = "ann-8r4k", "ann.8r4k@example.com"
    server = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    cluster = Cluster(tmp_path / "cluster", server.url, 2, latency_ms=0).start()
    try:
        batch = [
            {"type": "identify", "userId": user, "traits": {"email": email}},
            {"type": "track", "userId": user, "event": "Signed Up"},
            {"type": "identify", "userId": "bo-2", "traits": {"email": "bo2@example.com"}},
        ]
        r = httpx.post(f"{cluster.urls[0]}/v1/batch", json={"batch": batch}, auth=(CLUSTER_KEY, ""))
        assert r.status_code == 200
        cluster.wait_delivered(3, timeout=30)
        made = httpx.post(f"{cluster.urls[1]}/admin/api/forget", json={"user_ids": [user], "emails": [email]})
        ids = made.json()["regulateIds"]
        deadline = time.monotonic() + 30
        for reg_id in ids:
            while (
                httpx.get(f"{cluster.urls[0]}/regulations/{reg_id}").json()["data"]["regulation"][
                    "overallStatus"
                ]
                != "FINISHED"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        r = redis_lib.Redis.from_url(server.url)
        found, seen_bo = [], False
        for key in r.scan_iter(count=1000):
            kind = r.type(key).decode()
            values: list[bytes] = []
            if kind == "string":
                values = [r.get(key) or b""]
            elif kind == "hash":
                values = [b for pair in r.hgetall(key).items() for b in pair]
            elif kind == "set":
                values = list(r.smembers(key))
            elif kind == "list":
                values = list(r.lrange(key, 0, -1))
            elif kind == "zset":
                values = [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                values = [b for _, fields in r.xrange(key) for pair in fields.items() for b in pair]
            blob = b"\n".join(values)
            seen_bo = seen_bo or b"bo2@example.com" in blob
            if user.encode() in blob or email.encode() in blob:
                found.append(key.decode())
        assert found == []
        assert seen_bo  # the search can find what is there
    finally:
        cluster.stop()
        server.stop()
