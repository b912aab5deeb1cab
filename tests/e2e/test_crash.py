"""A 200 from ingest means the messages survive kill -9."""

from __future__ import annotations

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
