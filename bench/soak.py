#!/usr/bin/env python3
"""A bounded soak: several clients at a steady rate for a while, HubSpot answering in 300 ms.

It starts a sandbox (every call delayed by `--latency-ms`, as HubSpot really answers) and a relay
process, runs `--clients` senders that each post a small batch at a steady pace, and reports:
  - the relay's resident memory (its own process and the queue writer's) after warm-up and at the end
  - ingest-to-HubSpot latency per message, p50 / p99 / max: from the relay's receipt (`received_at`)
    to the commit that marks it delivered, once HubSpot accepted the call that carried it
  - delivered and dead-lettered counts (all sent must be delivered; none dead)
  - with --plot FILE.png, RSS and queued messages over time

usage: bench/soak.py [--seconds 180] [--clients 4] [--rate 100] [--latency-ms 300] [--plot docs/img/soak.png]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery import WRITE_KEY, Stack


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (the queue writer), in KB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def run(seconds: float = 180, clients: int = 4, rate: float = 100, latency_ms: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="relay-soak-") as tmp:
        stack = Stack(Path(tmp), sandbox_args=["--limit-10s", "190"], per_10s=190, per_second=None)
        try:
            stack.http.post(
                f"{stack.sandbox_url}/_sandbox/faults",
                json={"rules": [{"match": "*", "latency_ms": latency_ms}]},
            ).raise_for_status()
            return _soak(stack, seconds, clients, rate)
        finally:
            stack.close()


def _soak(stack: Stack, seconds: float, clients: int, rate: float) -> dict[str, Any]:
    sent = 0
    lock = threading.Lock()
    stop = threading.Event()
    per_batch = 5
    interval = per_batch * clients / rate  # each client posts `per_batch` messages this often

    def client(n: int) -> None:
        nonlocal sent
        i = 0
        with httpx.Client(base_url=stack.relay_url, auth=(WRITE_KEY, ""), timeout=10) as http:
            next_at = time.monotonic()
            while not stop.is_set():
                batch = []
                for _ in range(per_batch):
                    user = f"soak{n}-{i % 500}"
                    i += 1
                    if i % 5 == 0:
                        batch.append(
                            {
                                "type": "identify",
                                "userId": user,
                                "traits": {"email": f"{user}@x.com", "plan": "pro"},
                            }
                        )
                    else:
                        batch.append(
                            {
                                "type": "track",
                                "userId": user,
                                "event": "Soak Step",
                                "messageId": str(uuid.uuid4()),
                                "properties": {"email": f"{user}@x.com", "step": i},
                            }
                        )
                r = http.post("/v1/batch", json={"batch": batch})
                r.raise_for_status()
                with lock:
                    sent += len(batch)
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    samples: list[tuple[float, int, int]] = []  # (t, rss KB, undelivered)
    started = time.monotonic()
    warm_rss = None
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        counts = stack.settled()
        samples.append(
            (time.monotonic() - started, rss_kb(stack.relay.pid), sum(n for s, n in counts.items() if s < 3))
        )
        if warm_rss is None and time.monotonic() - started >= 10:
            warm_rss = samples[-1][1]
    stop.set()
    for t in threads:
        t.join(30)
    stack.wait(sent, timeout=300)
    end_rss = rss_kb(stack.relay.pid)
    with sqlite3.connect(f"file:{stack.tmp / 'data' / 'queue.sqlite3'}?mode=ro", uri=True) as db:
        latencies = [
            r[0] for r in db.execute("SELECT updated_at - received_at FROM messages WHERE state = 3")
        ]
        dead = db.execute("SELECT count(*) FROM messages WHERE state = 4").fetchone()[0]
    return {
        "seconds": seconds,
        "clients": clients,
        "rate_per_s": rate,
        "sent": sent,
        "delivered": len(latencies),
        "dead": dead,
        "rss_start_mb": round((warm_rss or samples[0][1]) / 1024, 1),
        "rss_end_mb": round(end_rss / 1024, 1),
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p99_s": round(percentile(latencies, 0.99), 3),
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "hubspot_calls": stack.calls().get("total"),
        "samples": samples,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in result["samples"]]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [s[1] / 1024 for s in result["samples"]], label="relay RSS (MB)", color="tab:blue")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax2 = ax.twinx()
    ax2.plot(t, [s[2] for s in result["samples"]], label="undelivered messages", color="tab:orange")
    ax2.set_ylabel("messages")
    ax.set_ylim(0, max(s[1] for s in result["samples"]) / 1024 * 1.2)
    ax2.set_ylim(0, max(s[2] for s in result["samples"]) * 1.5 + 1)
    ax.set_title(
        f"soak: {result['clients']} clients, {result['rate_per_s']:g} msg/s, HubSpot at 300 ms; "
        f"ingest-to-HubSpot p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s",
        fontsize=9,
    )
    fig.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    result = run(args.seconds, args.clients, args.rate, args.latency_ms)
    if args.plot:
        plot(result, args.plot)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
