#!/usr/bin/env python3
"""Delivery through a fault storm, with and without hung calls.

A sandbox answers in `--latency-ms` (HubSpot's real latency) at a professional budget (190
calls per 10 s), fails 30% of calls with a 5xx and, while clients send, sends a 429 storm (the
next 3 calls: a 10 s pause) every 30 s; the "hangs" run adds 5% of calls that hang 35 s (past
the relay's 30 s request timeout) before a 504. Clients send identifies and tracks at a steady
rate for `--seconds`; the relay delivers as they come. Reported per run: messages delivered per
second from the first message to the last delivered, the longest time in which nothing was
delivered (a stall), and how long the backlog took to drain after the clients stopped. The
figure that matters is the ratio of the two runs (measured in the same process, one after the
other: machines here are shared and noisy).

usage: bench/faults.py [--seconds 60] [--rate 150] [--latency-ms 300] [--runs 1] [--plot docs/img/faults.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery import Stack

STORM_EVERY_S = 30.0


def rules(latency_ms: int, hangs: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"match": "*", "latency_ms": latency_ms},
        {"match": "POST *", "error_rate": 0.3, "status": 503},
        {"match": "POST *", "rate_limit_storm": 3},
    ]
    if hangs:
        out.append({"match": "POST *", "timeout_rate": 0.05, "timeout_s": 35.0})
    return out


def run(seconds: float, rate: float, latency_ms: int, hangs: bool, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="relay-faults-") as tmp:
        stack = Stack(Path(tmp), sandbox_args=["--limit-10s", "190"], per_10s=190, per_second=None)
        try:
            return _run(stack, seconds, rate, latency_ms, hangs, seed)
        finally:
            stack.close()


def _run(
    stack: Stack, seconds: float, rate: float, latency_ms: int, hangs: bool, seed: int
) -> dict[str, Any]:
    stop = threading.Event()
    sent = [0]

    def storms() -> None:
        """A 429 storm every STORM_EVERY_S while clients send (re-arming the rules re-seeds them).
        Not while the backlog drains: a storm of N calls answered 429 whatever the rate would
        starve a trickle of calls (each 429 pauses the account 10 s, as HubSpot demands)."""
        n = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            spec = {"rules": rules(latency_ms, hangs), "seed": seed + n}
            stack.http.post(f"{stack.sandbox_url}/_sandbox/faults", json=spec).raise_for_status()
            n += 1
            stop.wait(STORM_EVERY_S)

    def client() -> None:
        per_post = 10
        interval = per_post / rate
        i = 0
        next_at = time.monotonic()
        while time.monotonic() - started < seconds:
            batch = []
            for _ in range(per_post):
                user = f"u{i % 2000}"
                if i % 3 == 0:
                    traits = {"email": f"{user}@x.com", "firstName": f"F{i}"}
                    batch.append({"type": "identify", "userId": user, "traits": traits})
                else:
                    batch.append(
                        {
                            "type": "track",
                            "userId": user,
                            "event": "Storm Step",
                            "messageId": str(uuid.uuid4()),
                            "properties": {"email": f"{user}@x.com", "n": i},
                        }
                    )
                i += 1
            stack.post(batch)
            sent[0] += len(batch)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    started = time.monotonic()
    storm = threading.Thread(target=storms, daemon=True)
    storm.start()
    time.sleep(0.5)
    sender = threading.Thread(target=client, daemon=True)
    sender.start()
    timeline: list[tuple[float, int]] = []
    last = 0
    while sender.is_alive() or last < sent[0]:
        time.sleep(0.5)
        counts = stack.settled()
        last = counts.get(3, 0) + counts.get(4, 0)
        timeline.append((round(time.monotonic() - started, 2), last))
        if time.monotonic() - started > seconds + float(os.environ.get("FAULTS_MAX_DRAIN_S", "600")):
            break
    stop.set()
    finished = timeline[-1][0]
    counts = stack.settled()
    stall, since = 0.0, 0.0
    previous = 0
    for t, n in timeline:
        if n > previous:
            stall = max(stall, t - since)
            since, previous = t, n
    stall = max(stall, finished - since) if previous < sent[0] else stall
    return {
        "hangs": hangs,
        "sent": sent[0],
        "delivered": counts.get(3, 0),
        "dead": counts.get(4, 0),
        "seconds_to_deliver_all": finished,
        "drain_after_clients_s": round(finished - seconds, 1),
        "messages_per_s": round(sent[0] / finished, 1),
        "longest_stall_s": round(stall, 1),
        "timeline": timeline,
    }


def plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        t, n = zip(*r["timeline"], strict=True)
        label = r.get("label") or f"{'5% hung calls + ' if r['hangs'] else ''}storm"
        label += f": {r['messages_per_s']} msg/s"
        ax.plot(t, n, label=label)
    ax.set_xlabel("seconds since the first message")
    ax.set_ylabel("messages delivered")
    ax.set_title("Delivery through 30% 5xx and 429 storms, at HubSpot's latency")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=150, help="messages per second the clients send")
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--plot")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    results = []
    for n in range(args.runs):
        for hangs in (False, True):
            r = run(args.seconds, args.rate, args.latency_ms, hangs, args.seed + 1000 * n)
            results.append(r)
            brief = {k: v for k, v in r.items() if k != "timeline"}
            print(json.dumps(brief), flush=True)
    ratios = [
        results[i + 1]["messages_per_s"] / results[i]["messages_per_s"] for i in range(0, len(results), 2)
    ]
    print(json.dumps({"rate_with_hangs_over_without": [round(x, 3) for x in ratios]}))
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    if args.plot:
        plot(results[:2], args.plot)


if __name__ == "__main__":
    main()
