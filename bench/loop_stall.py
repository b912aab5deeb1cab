#!/usr/bin/env python3
"""The relay's event loop while 1,000 contacts enter an audience, on Redis, at HubSpot's pace.

One run: redis-server, the sandbox answering every call 300 ms late, and the relay (queue and
identity map on Redis) under `bench/probed_relay.py`, which times every callback its event loop
runs. After one warm-up message, 1,000 identifies carrying an audience (`context.personas`) are
posted (100 a request); meanwhile a client posts one small message every 20 ms (skipped for
HubSpot: ingest alone) and times each answer. Until the 1,000 are in the audience's list:

  stall      the event loop's longest single callback (ms), and the sum of those over 20 ms
  ingest     the small messages' answer times: p50, p99, max (ms)
  delivered  seconds from the first post to the last membership

`--code DIR` runs the relay from another checkout (`git worktree add DIR REV`), so that the
code before and after a change are measured the same way in one run (`--code` twice).

usage: bench/loop_stall.py [--contacts 1000] [--latency-ms 300] [--code DIR ...] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import SandboxProcess, free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

WRITE_KEY = "wk-stall"
PERSONAS = {"computation_class": "audience", "computation_key": "trial_users", "space_id": "spa_1"}


def config(path: Path, sandbox: SandboxProcess) -> Path:
    path.write_text(f"""
[[accounts]]
name = "shop"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{sandbox.url}"
tier = "enterprise"

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "shop"
""")
    return path


def identify(i: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": f"u{i}",
        "messageId": str(uuid.uuid4()),
        "traits": {"email": f"u{i}@example.com", "trial_users": True},
        "context": {"personas": PERSONAS},
    }


class Prober(threading.Thread):
    """One small message every 20 ms, each answer timed (ms)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.times: list[float] = []

    def run(self) -> None:
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=30) as client:
            while not self.stop.is_set():
                body = {
                    "type": "track",
                    "userId": "probe",
                    "event": "Probe",
                    "messageId": str(uuid.uuid4()),
                    "integrations": {"HubSpot": False},
                }
                start = time.monotonic()
                client.post(f"{self.url}/v1/track", json=body).raise_for_status()
                self.times.append((time.monotonic() - start) * 1000)
                self.stop.wait(0.02)


def members(sandbox: SandboxProcess) -> int:
    """How many contacts the audience's list holds (0 before it exists)."""
    with httpx.Client(base_url=sandbox.url, headers={"authorization": "Bearer sandbox-token"}) as hs:
        found = hs.get("/crm/lists/2026-09/object-type-id/0-1/name/trial_users")
        if found.status_code != 200:
            return 0
        list_id = found.json()["list"]["listId"]
        got = hs.get(f"/crm/lists/2026-09/{list_id}/memberships", params={"limit": 2000})
        return len(got.json().get("results", [])) if got.status_code == 200 else 0


def one_run(code: Path, contacts: int, latency_ms: int, tmp: Path) -> dict[str, Any]:
    redis = RedisServer(tmp / "redis", shutil.which("redis-server") or "").start()
    sandbox = SandboxProcess()
    probe_file = tmp / "probe.txt"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(
        {
            "PYTHONPATH": f"{code / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}",
            "HUBSPOT_RELAY_PROBE": str(probe_file),
            "HUBSPOT_RELAY_DATA_DIR": str(tmp / "data"),
        }
    )
    args = ["--config", str(config(tmp / "relay.toml", sandbox)), "--queue", redis.url, "--port", str(port)]
    relay = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "probed_relay.py"), "serve", "--log-level", "warning", *args],
        env=env,
        stdout=(tmp / "relay.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or relay.poll() is not None:
                raise RuntimeError((tmp / "relay.log").read_text())
            time.sleep(0.1)
        rules = [{"match": "*", "latency_ms": latency_ms}]
        httpx.post(f"{sandbox.url}/_sandbox/faults", json={"rules": rules})
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=30) as client:
            client.post(f"{url}/v1/identify", json=identify(-1)).raise_for_status()  # warm-up
            while members(sandbox) < 1:
                time.sleep(0.5)
            prober = Prober(url)
            prober.start()
            time.sleep(1.0)
            began = time.monotonic()
            for start in range(0, contacts, 100):
                batch = [identify(i) for i in range(start, min(contacts, start + 100))]
                client.post(f"{url}/v1/batch", json={"batch": batch}).raise_for_status()
            while members(sandbox) < contacts + 1:
                if time.monotonic() - began > 600:
                    raise RuntimeError("not delivered in 10 minutes")
                time.sleep(0.5)
            ended = time.monotonic()
            time.sleep(0.5)  # the probe's last flush
            prober.stop.set()
            prober.join()
        stalls, longest = [], (0.0, "")
        for line in probe_file.read_text().splitlines() if probe_file.exists() else []:
            at, took, what = [*line.split(" ", 2), ""][:3]
            if began <= float(at) <= ended:
                stalls.append(float(took) * 1000)
                longest = max(longest, (float(took) * 1000, what))
        times = sorted(prober.times)
        return {
            "longest_stall_ms": round(max(stalls, default=0.0), 1),
            "stalls_over_20ms": sum(1 for s in stalls if s > 20),
            "stalled_over_20ms_s": round(sum(s for s in stalls if s > 20) / 1000, 2),
            "ingest_p50_ms": round(statistics.median(times), 1),
            "ingest_p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
            "ingest_max_ms": round(times[-1], 1),
            "ingest_requests": len(times),
            "delivered_s": round(ended - began, 1),
            "longest_was": longest[1][:300],
        }
    finally:
        relay.terminate()
        try:
            relay.wait(15)
        except subprocess.TimeoutExpired:
            relay.kill()
        sandbox.stop()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--code", type=Path, action="append", help="a checkout to run (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("bench/loop_stall.py needs redis-server: apt-get install redis-server")
    codes = args.code or [ROOT]
    results: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for code in codes:  # alternated, so that a noisy neighbour hurts them alike
            with tempfile.TemporaryDirectory() as tmp:
                measured = one_run(code, args.contacts, args.latency_ms, Path(tmp))
            result = {"code": str(code), "round": round_, **measured}
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "bench" / "results" / "loop_stall.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
