#!/usr/bin/env python3
"""Scale-out on Redis: what 1, 2 and 3 relay processes on one Redis do, against one process on
the embedded SQLite queue measured in the same run.

  ingest    `serve --no-deliver` processes, one `wrk` per process posting /v1/batch (100 messages a
            request, fresh messageIds), all at once for `--seconds`: messages per second stored,
            summed over the processes; rounds alternate the set-ups. Ratios against SQLite.
  delivery  the budget bench of bench/delivery.py (a Professional portal at the sandbox, 190 calls
            per 10 s, HubSpot answering in `--latency-ms`), the workload posted across the
            processes: the share of the usable budget turned into work (first to last call at
            the sandbox), the peak calls in any 10 s, 429s.

This machine has 2 cores: the relay processes, Redis, the sandbox and the load generator share
them, so ingest cannot scale here the way it would on separate machines; the figures say what
the shared queue costs and what the shared budget holds.

usage: bench/scale.py [--only ingest|delivery] [--processes 1 2 3] [--seconds 8] [--rounds 2]
                      [--latency-ms 300] [--workload mixed|contacts] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.cluster import WRITE_KEY, Cluster  # noqa: E402
from tests.helpers import RelayProcess  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

import ingest as ingest_bench  # noqa: E402
from delivery import budget_run  # noqa: E402


def wrk_scripts(tmp: Path, count: int) -> list[Path]:
    """One wrk script per process, each with its own messageId prefix (the queue is shared)."""
    bodies = ingest_bench.make_bodies(ingest_bench.generated_messages(2_000), 100)
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    out = []
    for i in range(count):
        script = ingest_bench.lua_script("/v1/batch", bodies, auth).replace('"b" .. tid', f'"p{i}-" .. tid')
        path = tmp / f"batch-{i}.lua"
        path.write_text(script)
        out.append(path)
    return out


def drive(urls: list[str], scripts: list[Path], seconds: int, connections: int) -> list[dict[str, float]]:
    results: list[dict[str, float]] = [{} for _ in urls]

    def one(i: int) -> None:
        results[i] = ingest_bench.run_wrk(urls[i], scripts[i], seconds, connections)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def ingest(processes: list[int], seconds: int, rounds: int, tmp: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/scale.py needs wrk: apt-get install wrk")
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("bench/scale.py needs redis-server: apt-get install redis-server")
    setups = ["sqlite-1", *(f"redis-{n}" for n in processes)]
    samples: dict[str, list[float]] = {s: [] for s in setups}
    errors: dict[str, float] = {s: 0.0 for s in setups}
    for r in range(rounds):
        for setup in setups if r % 2 == 0 else list(reversed(setups)):
            kind, n = setup.split("-")
            run_dir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{setup}-"))
            redis = None
            relays: list[RelayProcess] = []
            try:
                env = {"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY}
                args: tuple[str, ...] = ("--no-deliver",)
                if kind == "redis":
                    redis = RedisServer(run_dir / "redis", redis_bin).start()
                    args += ("--queue", redis.url)
                for i in range(int(n)):
                    relays.append(RelayProcess(run_dir / f"relay{i}", env=env, args=args).start())
                scripts = wrk_scripts(run_dir, int(n))
                results = drive([p.url for p in relays], scripts, seconds, 32 // int(n))
                samples[setup].append(sum(x["rps"] for x in results) * 100)
                errors[setup] += sum(x["non2xx"] + x["socket_errors"] for x in results)
            finally:
                for p in relays:
                    p.stop()
                if redis is not None:
                    redis.stop()
            print(f"round {r + 1} {setup}: {samples[setup][-1]:,.0f} messages/s", file=sys.stderr)
    base = statistics.median(samples["sqlite-1"])
    return {
        setup: {
            "messages_per_s": round(statistics.median(v)),
            "vs_sqlite_1": round(statistics.median(v) / base, 3),
            "runs": [round(x) for x in v],
            "errors": errors[setup],
        }
        for setup, v in samples.items()
    }


def cluster_budget(n: int, kind: str, latency_ms: int, tmp: Path) -> dict[str, Any]:
    """The budget bench's workload posted across `n` processes on one Redis."""
    redis_bin = shutil.which("redis-server")
    assert redis_bin
    redis = RedisServer(tmp / f"redis-{n}", redis_bin).start()
    cluster = Cluster(tmp / f"cluster-{n}", redis.url, n, per_10s=190, latency_ms=latency_ms).start()
    try:
        if kind == "contacts":
            n_contacts, n_events = 60_000, 0
        else:
            n_contacts, n_events = 2_000, 100_000
        messages: list[dict[str, Any]] = [
            {
                "type": "identify",
                "userId": f"b{i}",
                "messageId": f"bi-{i}",
                "traits": {"email": f"b{i}@example.com"},
            }
            for i in range(n_contacts)
        ]
        messages += [
            {
                "type": "track",
                "userId": f"b{i % n_contacts}",
                "event": "Budget Step",
                "messageId": f"bt-{i}",
                "properties": {"email": f"b{i % n_contacts}@example.com", "i": i},
            }
            for i in range(n_events)
        ]
        started = time.monotonic()
        with httpx.Client(timeout=30, auth=(WRITE_KEY, "")) as http:
            for k, start in enumerate(range(0, len(messages), 100)):
                url = cluster.urls[k % n]
                http.post(f"{url}/v1/batch", json={"batch": messages[start : start + 100]}).raise_for_status()
        cluster.wait_delivered(len(messages), timeout=1800)
        wall = time.monotonic() - started
        calls = cluster.calls()
        spans = list(calls["first_last"].values())
        span = max(max(b for _, b in spans) - min(a for a, _ in spans), 0.001)
        usable = int(190 * 0.9)
        minimum = math.ceil(n_contacts / 100) + math.ceil(n_events / 500)
        web = cluster.web()
        return {
            "processes": n,
            "queue": "redis",
            "workload": kind,
            "latency_ms": latency_ms,
            "calls": sum(sum(v.values()) for v in calls["by_endpoint"].values()),
            "minimum_calls": minimum,
            "span_s": round(span, 1),
            "wall_s": round(wall, 1),
            "usable_per_10s": usable,
            "share_of_ceiling": round(minimum / (usable / 10) / span, 3),
            "peak_calls_in_10s": calls["peak_10s"],
            "status_429": calls["by_status"].get("429", 0),
            "delivered": web["delivered"],
            "dead": web["dead"],
        }
    finally:
        cluster.stop()
        redis.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["ingest", "delivery"])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--workload", choices=["mixed", "contacts"], action="append")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "ingest"):
            out["ingest"] = ingest(args.processes, args.seconds, args.rounds, tmp)
            print(json.dumps(out["ingest"]), file=sys.stderr)
        if args.only in (None, "delivery"):
            out["delivery"] = []
            for kind in args.workload or ["mixed", "contacts"]:
                baseline = budget_run(kind, args.latency_ms, tmp, account_toml='tier = "professional"')
                baseline.update(processes=1, queue="sqlite")
                out["delivery"].append(baseline)
                print(json.dumps(baseline), file=sys.stderr)
                for n in args.processes:
                    result = cluster_budget(n, kind, args.latency_ms, tmp / f"{kind}")
                    out["delivery"].append(result)
                    print(json.dumps(result), file=sys.stderr)
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
