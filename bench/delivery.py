#!/usr/bin/env python3
"""HubSpot API calls the relay makes for a workload, counted at the sandbox.

Three runs, each a fresh sandbox process and a fresh relay process on loopback:
  bulk      the workload posted at once (100 messages per /v1/batch): calls made against one
            call per message (the seed-era integration) and against the theoretical minimum,
            ceil(contacts/100) + ceil(events/500) + one-time set-up (catalog, event definitions)
  trickle   the same kind of traffic at 20 messages per second: calls per message
  limited   the seed's budget (10 calls per second) on both sides, contacts only: the peak calls
            in any second at the sandbox, 429s, and delivered contacts per second against 10 x 100

usage: bench/delivery.py [--users 1000] [--workload FILE.jsonl] [--trickle-seconds 30]
                         [--limited-contacts 20000] [--only bulk|trickle|limited]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.helpers import wait_quiet

from workload import generate, load

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "bench-write-key"
UPSERT = "POST /crm/objects/2026-09/contacts/batch/upsert"  # (the default api_version's path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


class Stack:
    """A sandbox and a relay delivering to it."""

    def __init__(
        self,
        tmp: Path,
        *,
        sandbox_args: list[str],
        per_10s: int,
        per_second: int | None,
        account_toml: str | None = None,
    ) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.sandbox_port, self.relay_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.relay_url = f"http://127.0.0.1:{self.relay_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        self.sandbox = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubspot_relay",
                "sandbox",
                "--port",
                str(self.sandbox_port),
                "--log-level",
                "warning",
                *sandbox_args,
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{self.sandbox_url}/_sandbox/portals", self.sandbox, "sandbox")
        limits = f"per_10s = {per_10s}, per_day = 1000000" + (
            f", per_second = {per_second}" if per_second else ""
        )
        # `account_toml` replaces the limits line (a tier, so that the budget is learned)
        limits_line = account_toml if account_toml is not None else f"limits = {{ {limits} }}"
        config = tmp / "relay.toml"
        config.write_text(f"""
[relay]
data_dir = "{tmp / "data"}"
port = {self.relay_port}

[[accounts]]
name = "bench"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{self.sandbox_url}"
{limits_line}

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "bench"
""")
        self.relay = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubspot_relay",
                "serve",
                "--config",
                str(config),
                "--log-level",
                os.environ.get("BENCH_RELAY_LOG", "warning"),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "relay.log").open("wb") if os.environ.get("BENCH_RELAY_LOG") else DEVNULL,
        )
        try:
            wait_http(f"{self.relay_url}/health", self.relay, "relay")
        except BaseException:
            self.close()
            raise
        self.http = httpx.Client(timeout=30)

    def post(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 100):
            r = self.http.post(
                f"{self.relay_url}/v1/batch",
                json={"batch": messages[start : start + 100]},
                auth=(WRITE_KEY, ""),
            )
            r.raise_for_status()

    def settled(self) -> dict[int, int]:
        with sqlite3.connect(f"file:{self.tmp / 'data' / 'queue.sqlite3'}?mode=ro", uri=True) as db:
            return dict(db.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())

    def wait(self, expected: int, timeout: float = 600) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            counts = self.settled()
            if counts.get(3, 0) + counts.get(4, 0) >= expected:
                return time.monotonic() - start
            time.sleep(0.1)
        raise RuntimeError(f"not delivered in {timeout}s: {self.settled()}")

    def calls(self, timeline: bool = False) -> dict[str, Any]:
        params = {"timeline": "1"} if timeline else {}
        return dict(self.http.get(f"{self.sandbox_url}/_sandbox/calls", params=params).json())

    def close(self) -> None:
        for proc in (self.relay, self.sandbox):
            proc.terminate()
            proc.wait(30)


def expected_minimum(messages: list[dict[str, Any]]) -> dict[str, int]:
    contacts: set[str] = set()
    events = 0
    names: set[str] = set()
    for m in messages:
        if m["type"] == "identify":
            traits = m.get("traits") or {}
            contacts.add(str(traits.get("email") or m.get("userId")).lower())
        elif m["type"] in ("track", "page", "screen"):
            events += 1
            names.add(m.get("event") or m["type"])
    setup = 2 + len(names)  # property catalog, definitions list, one definition per event name
    return {
        "contacts": len(contacts),
        "events": events,
        "event_names": len(names),
        "minimum": math.ceil(len(contacts) / 100) + math.ceil(events / 500) + setup,
    }


def api_calls(calls: dict[str, Any]) -> int:
    return int(calls["total"])


def bulk(messages: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    stack = Stack(tmp / "bulk", sandbox_args=["--limit-10s", "1000"], per_10s=1000, per_second=None)
    try:
        t = time.monotonic()
        stack.post(messages)
        seconds = stack.wait(len(messages)) + 0.0
        calls = stack.calls()
        minimum = expected_minimum(messages)
        return {
            "messages": len(messages),
            **minimum,
            "calls": api_calls(calls),
            "calls_vs_minimum": round(api_calls(calls) / minimum["minimum"], 2),
            "calls_vs_one_per_message": round(api_calls(calls) / len(messages), 4),
            "seconds": round(time.monotonic() - t, 1),
            "delivery_seconds": round(seconds, 1),
            "by_endpoint": {k: sum(v.values()) for k, v in calls["by_endpoint"].items()},
            "dead": stack.settled().get(4, 0),
        }
    finally:
        stack.close()


def trickle(messages: list[dict[str, Any]], tmp: Path, seconds: int) -> dict[str, Any]:
    stack = Stack(tmp / "trickle", sandbox_args=[], per_10s=100, per_second=None)
    try:
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds and sent < len(messages):
            due = int((time.monotonic() - start) * 20)  # 20 messages per second
            if due > sent:
                stack.post(messages[sent:due])
                sent = due
            time.sleep(0.05)
        stack.wait(sent)
        calls = stack.calls()
        return {
            "messages": sent,
            "rate_per_s": 20,
            "calls": api_calls(calls),
            "calls_per_message": round(api_calls(calls) / sent, 3),
            "minimum": expected_minimum(messages[:sent])["minimum"],
        }
    finally:
        stack.close()


def limited(contacts: int, tmp: Path) -> dict[str, Any]:
    stack = Stack(
        tmp / "limited", sandbox_args=["--limit-1s", "10", "--limit-10s", "100"], per_10s=100, per_second=10
    )
    try:
        messages = [
            {
                "type": "identify",
                "userId": f"c{i}@example.com",
                "messageId": f"lim-{i}",
                "traits": {"firstName": f"C{i}", "plan": "pro"},
            }
            for i in range(contacts)
        ]
        stack.post(messages)
        stack.wait(len(messages))
        calls = stack.calls()
        first, last = calls["first_last"][UPSERT]
        upserts = sum(calls["by_endpoint"][UPSERT].values())
        # n calls spread at 10 per second span (n - 1) / 10 s: count the interval for the last one too
        span = (last - first) * upserts / max(1, upserts - 1)
        per_s = contacts / span if span else float("inf")
        return {
            "contacts": contacts,
            "upserts": upserts,
            "peak_calls_in_1s": calls["peak_1s"],
            "peak_calls_in_10s": calls["peak_10s"],
            "status_429": calls["by_status"].get("429", 0),
            "contacts_per_second": round(per_s),
            "vs_10x100": round(per_s / 1000, 3),
            # the relay may use 9 of the 10 calls a second: 10% is left for other integrations
            "vs_usable_9x100": round(per_s / 900, 3),
        }
    finally:
        stack.close()


def budget_workload(kind: str, scale: float = 1.0) -> list[dict[str, Any]]:
    """contacts: 60,000 identifies; mixed: 2,000 identifies and 100,000 tracks about them."""
    if kind == "contacts":
        n_contacts, n_events = int(60_000 * scale), 0
    else:
        n_contacts, n_events = int(2_000 * scale), int(100_000 * scale)
    messages: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": f"b{i}@example.com",
            "messageId": f"bi-{i}",
            "traits": {"firstName": "B"},
        }
        for i in range(n_contacts)
    ]
    messages += [
        {
            "type": "track",
            "userId": f"b{i % max(1, n_contacts)}@example.com",
            "event": "Budget Step",
            "messageId": f"bt-{i}",
            "properties": {"email": f"b{i % max(1, n_contacts)}@example.com", "i": i},
        }
        for i in range(n_events)
    ]
    return messages


def budget_run(
    kind: str,
    latency_ms: int,
    tmp: Path,
    *,
    scale: float = 1.0,
    account_toml: str | None,
    timeline: Path | None = None,
) -> dict[str, Any]:
    """A Professional portal (190 calls per 10 s at the sandbox), HubSpot answering in
    `latency_ms`: how much of the usable budget (less the 10% reserve) the relay turns into work.

    The share of the ceiling is the time the work needs at the usable budget (the minimum calls
    for these messages, at per_10s / 10 calls a second) over the time it took, from the first to
    the last call at the sandbox. A rolling window lets a first burst through, so a short run can
    pass 1.0; the peak calls in any 10 s show the budget was never exceeded.
    """
    stack = Stack(
        tmp / f"budget-{kind}-{latency_ms}",
        sandbox_args=["--limit-10s", "190"],
        per_10s=190,
        per_second=None,
        account_toml=account_toml,
    )
    try:
        if latency_ms:
            stack.http.post(
                f"{stack.sandbox_url}/_sandbox/faults",
                json={"rules": [{"match": "*", "latency_ms": latency_ms}]},
            ).raise_for_status()
        messages = budget_workload(kind, scale)
        n_contacts = sum(1 for m in messages if m["type"] == "identify")
        n_events = len(messages) - n_contacts
        wait_quiet(stack.sandbox_url)  # the relay's start-up reads are not this run's work
        started, since = time.monotonic(), time.time()
        stack.post(messages)
        print("posted in", time.monotonic() - started, file=sys.stderr)
        stack.wait(len(messages), timeout=1800)
        wall = time.monotonic() - started
        calls = stack.calls(timeline=True)
        work = [c for c in calls.pop("timeline") if c[0] >= since]
        if timeline is not None:
            timeline.mkdir(parents=True, exist_ok=True)
            (timeline / f"{kind}-{latency_ms}ms.json").write_text(json.dumps(work))
        span = max(work[-1][0] - work[0][0], 0.001)
        usable = int(190 * 0.9) if account_toml else 190
        minimum = math.ceil(n_contacts / 100) + math.ceil(n_events / 500)
        needed = minimum / (usable / 10)
        return {
            "workload": kind,
            "latency_ms": latency_ms,
            "contacts": n_contacts,
            "events": n_events,
            "calls": len(work),
            "minimum_calls": minimum,
            "span_s": round(span, 1),
            "wall_s": round(wall, 1),
            "usable_per_10s": usable,
            "contacts_per_s": round(n_contacts / span) if n_contacts else None,
            "events_per_s": round(n_events / span) if n_events else None,
            "share_of_ceiling": round(needed / span, 3),
            "peak_calls_in_10s": calls["peak_10s"],
            "status_429": calls["by_status"].get("429", 0),
            "dead": stack.settled().get(4, 0),
        }
    finally:
        stack.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--workload", type=Path)
    ap.add_argument("--trickle-seconds", type=int, default=30)
    ap.add_argument("--limited-contacts", type=int, default=20_000)
    ap.add_argument("--only", choices=["bulk", "trickle", "limited", "budget"])
    ap.add_argument(
        "--latency-ms", type=int, action="append", help="budget runs: HubSpot's added latency (repeatable)"
    )
    ap.add_argument("--budget-workload", choices=["contacts", "mixed"], action="append")
    ap.add_argument(
        "--fixed-limits",
        action="store_true",
        help="budget runs: limits = { per_10s = 190 } instead of tier = professional (for older relays)",
    )
    ap.add_argument(
        "--scale", type=float, default=1.0, help="budget runs: workload size (1: 60,000 contacts)"
    )
    ap.add_argument("--plot", type=Path, help="budget runs: share of the ceiling against latency (PNG)")
    ap.add_argument("--timeline", type=Path, help="budget runs: save each run's calls at the sandbox here")
    args = ap.parse_args()
    messages = load(args.workload) if args.workload else generate(args.users)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "bulk"):
            out["bulk"] = bulk(messages, tmp)
            print(json.dumps(out["bulk"]), file=sys.stderr)
        if args.only in (None, "trickle"):
            out["trickle"] = trickle(generate(200, seed=2), tmp, args.trickle_seconds)
            print(json.dumps(out["trickle"]), file=sys.stderr)
        if args.only in (None, "limited"):
            out["limited"] = limited(args.limited_contacts, tmp)
            print(json.dumps(out["limited"]), file=sys.stderr)
        if args.only in (None, "budget"):
            out["budget"] = []
            toml = None if args.fixed_limits else 'tier = "professional"'
            for kind in args.budget_workload or ["contacts", "mixed"]:
                for latency in args.latency_ms or [0, 300, 1000]:
                    result = budget_run(
                        kind, latency, tmp, scale=args.scale, account_toml=toml, timeline=args.timeline
                    )
                    out["budget"].append(result)
                    print(json.dumps(result), file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
