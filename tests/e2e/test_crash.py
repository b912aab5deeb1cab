"""A 200 from ingest means the messages survive kill -9."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers import RelayProcess, stored_messages

pytestmark = pytest.mark.e2e


def test_acknowledged_messages_survive_kill_9(data_dir: Path) -> None:
    relay = RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": "wk"}).start()
    acknowledged: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=relay.url, auth=("wk", ""), timeout=5) as http:
            while not stop.is_set():
                ids = [f"c{n}-{uuid.uuid4()}" for _ in range(1 + n % 7)]
                batch = [
                    {
                        "type": "track",
                        "userId": f"u{n}",
                        "event": "Crash Test",
                        "messageId": i,
                        "properties": {"n": n},
                    }
                    for i in ids
                ]
                try:
                    r = http.post(
                        "/v1/batch",
                        content=orjson.dumps({"batch": batch}),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError:
                    with lock:
                        refused.extend(ids)
                    continue
                with lock:
                    (acknowledged if r.status_code == 200 else refused).extend(ids)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    relay.kill9()  # while the clients are still sending
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 2000
    assert refused, "the kill should have interrupted requests in flight"

    with RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": "wk"}) as restarted:
        stored = {m["messageId"] for m in stored_messages(restarted.queue_path)}
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
        # the restarted relay keeps accepting
        r = httpx.post(
            f"{restarted.url}/v1/t",
            auth=("wk", ""),
            json={"userId": "u", "event": "After Restart"},
            timeout=5,
        )
        assert r.status_code == 200


def test_repeated_kill_9_while_clients_retry_on_timeouts_loses_and_repeats_nothing(data_dir: Path) -> None:
    """20,000 messages from clients that resend on their own timeouts (the retry race), six kill -9s
    of the relay during ingest and delivery: every acknowledged message reaches HubSpot once."""
    import sqlite3

    from hubspot_relay.translate.segment import event_uuid
    from tests.helpers import SandboxProcess

    sandbox = SandboxProcess("--limit-10s", "1000")
    httpx.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [{"match": "POST *", "latency_ms": 150}]})
    env = {
        "HUBSPOT_RELAY_WRITE_KEY": "wk",
        "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox.url,
    }
    clients, per_client, per_batch = 8, 2500, 50
    acknowledged: set[str] = set()
    timeouts = 0
    lock = threading.Lock()
    relay = RelayProcess(data_dir, env=env).start()
    url = relay.url
    finished = threading.Event()

    def client(n: int) -> None:
        nonlocal timeouts
        rng = random.Random(n)
        with httpx.Client(base_url=url, auth=("wk", "")) as http:
            for b in range(per_client // per_batch):
                ids = [f"c{n}-b{b}-{i}" for i in range(per_batch)]
                body = orjson.dumps(
                    {
                        "batch": [
                            {
                                "type": "track",
                                "userId": f"u{n}",
                                "event": "Crash Retry",
                                "messageId": mid,
                                "properties": {"email": f"c{n}@x.com", "mid": mid},
                            }
                            for mid in ids
                        ]
                    }
                )
                while True:  # as Segment's clients do: the same batch again until it is taken
                    try:
                        # Impatient clients: some give up before the commit and resend the batch.
                        r = http.post(
                            "/v1/batch",
                            content=body,
                            headers={"Content-Type": "application/json"},
                            timeout=rng.choice([0.003, 0.01, 0.3]),
                        )
                        if r.status_code == 200:
                            with lock:
                                acknowledged.update(ids)
                            break
                    except httpx.TimeoutException:
                        with lock:
                            timeouts += 1
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.05)
                time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    kills = 0
    try:
        while any(t.is_alive() for t in threads) and kills < 6:
            time.sleep(1.5)
            relay.kill9()
            kills += 1
            relay = RelayProcess(data_dir, env=env, port=relay.port).start()
        for t in threads:
            t.join(120)
        finished.set()
        assert len(acknowledged) == clients * per_client
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            portal = httpx.get(f"{sandbox.url}/_sandbox/portals").json()[0]
            if portal["events"] >= len(acknowledged):
                break
            time.sleep(0.5)
        hs = sandbox.client()
        delivered: list[str] = []
        after = "0"
        while True:
            page = hs.api_request(
                {"method": "GET", "path": f"/events/v3/events?limit=1000&after={after}"}
            ).json()
            delivered += [e["id"] for e in page["results"]]
            if "paging" not in page:
                break
            after = page["paging"]["next"]["after"]
        expected = {event_uuid(mid) for mid in acknowledged}
        assert kills == 6
        assert len(delivered) == len(set(delivered)), "an event reached HubSpot twice"
        missing = expected - set(delivered)
        assert not missing, f"{len(missing)} acknowledged messages never reached HubSpot"
        with sqlite3.connect(f"file:{relay.queue_path}?mode=ro", uri=True) as db:
            rows, distinct = db.execute(
                "SELECT count(*), count(DISTINCT message_id) FROM messages"
            ).fetchone()
            dead = db.execute("SELECT count(*) FROM messages WHERE state = 4").fetchone()[0]
        assert rows == distinct == clients * per_client, "a retried request was stored twice"
        assert dead == 0
        print(f"kills={kills} client timeouts={timeouts} acknowledged={len(acknowledged)}")
    finally:
        relay.stop()
        sandbox.stop()
