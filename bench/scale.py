#!/usr/bin/env python3
"""Scale-out on Redis: what 1, 2 and 3 relay processes on one Redis do, against one process on
the embedded SQLite queue measured in the same run.

  ingest    `serve --no-deliver` processes, one `wrk` per process posting /v1/batch (100 messages a
            request, fresh messageIds), all at once for `--seconds`: messages per second stored,
            summed over the processes; rounds alternate the set-ups. Ratios against SQLite.
  delivery  a backlog drained: bench/delivery.py's budget workloads posted across the processes
            while the account is paused, then resumed; a Professional portal at the sandbox (190
            calls per 10 s, HubSpot answering in `--latency-ms`): the share of the usable budget
            turned into work (first to last call at the sandbox), the peak calls in any 10 s, 429s
  scenario  the end-to-end test's: three processes, 30,000 messages from Segment's Python SDK,
            one process killed with -9 once 15% is delivered: the same share, and what arrived

This machine has 2 cores: the relay processes, Redis, the sandbox and the load generator share
them, so ingest cannot scale here the way it would on separate machines; the figures say what
the shared queue costs and what the shared budget holds.

usage: bench/scale.py [--only ingest|delivery|scenario] [--processes 1 2 3] [--seconds 8] [--rounds 2]
                      [--latency-ms 300] [--workload mixed|contacts] [--runs 1] [--no-kill-runs 0]
                      [--plot OUT.png] [--json OUT.json]
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
from delivery import budget_workload  # noqa: E402
from hubspot_relay.config import DEFAULT_RESERVE  # noqa: E402


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


TIMELINES: Path | None = None  # --timeline: every call at the sandbox, per run


def share(cluster: Cluster, minimum: int, name: str, since: float) -> dict[str, Any]:
    """The time the work needs at the usable budget over the time it took at the sandbox: from
    the first call answered after `since` (when the work was there: the clients started, the
    account resumed) to the last. Calls before it (the reads each relay makes as it starts) are
    counted apart."""
    calls = cluster.calls(timeline=True)
    timeline = calls.pop("timeline")
    if TIMELINES is not None:
        TIMELINES.mkdir(parents=True, exist_ok=True)
        (TIMELINES / f"{name}.json").write_text(json.dumps({"since": since, "calls": timeline}))
    work = [(t, label) for t, label, *_ in timeline if t >= since]
    span = max(work[-1][0] - work[0][0], 0.001)
    usable = int(190 * (1 - (cluster.reserve if cluster.reserve is not None else DEFAULT_RESERVE)))
    by_endpoint: dict[str, int] = {}
    for _, label in work:
        by_endpoint[label.split(" ", 1)[1]] = by_endpoint.get(label.split(" ", 1)[1], 0) + 1
    return {
        "calls": len(work),
        "calls_at_start_up": len(timeline) - len(work),
        # batch calls the sandbox counted but could not read: a killed process's calls in flight
        "calls_cut_off": sum(
            1
            for _, label, _, records in timeline[len(timeline) - len(work) :]
            if "batch" in label and not records
        ),
        "minimum_calls": minimum,
        "span_s": round(span, 1),
        "usable_per_10s": usable,
        "share_of_ceiling": round(minimum / (usable / 10) / span, 3),
        # the literal combined rate: every call made (set-up, redone, partial) over HubSpot's 190
        "calls_rate_of_190": round(len(work) / span / 19, 3),
        "peak_calls_in_10s": calls["peak_10s"],
        "status_429": calls["by_status"].get("429", 0),
        "by_endpoint": by_endpoint,
        "_work": [(t - since, label) for t, label in work],  # for --plot, not saved
    }


def drain(n: int, redis: bool, kind: str, latency_ms: int, tmp: Path) -> dict[str, Any]:
    """A backlog drained: the workload posted across the processes while the account is paused,
    then resumed; `redis` False is one process on its SQLite queue (the baseline)."""
    label = f"redis-{n}" if redis else "sqlite-1"
    server = RedisServer(tmp / f"redis-{label}-{kind}", shutil.which("redis-server") or "") if redis else None
    url = server.start().url if server else None
    cluster = Cluster(tmp / f"{label}-{kind}", url, n, per_10s=190, latency_ms=latency_ms).start().quiet()
    try:
        cluster.pause(True)
        messages = budget_workload(kind)
        with httpx.Client(timeout=30, auth=(WRITE_KEY, "")) as http:
            for k, start in enumerate(range(0, len(messages), 100)):
                url = cluster.urls[k % n]
                http.post(f"{url}/v1/batch", json={"batch": messages[start : start + 100]}).raise_for_status()
        resumed = time.time()  # the sandbox's clock (same machine)
        cluster.pause(False)
        started = time.monotonic()
        cluster.wait_delivered(len(messages), timeout=1800)
        n_contacts = sum(1 for m in messages if m["type"] == "identify")
        minimum = math.ceil(n_contacts / 100) + math.ceil((len(messages) - n_contacts) / 500)
        web = cluster.web()
        return {
            "setup": label,
            "workload": kind,
            "latency_ms": latency_ms,
            **share(cluster, minimum, f"{label}-{kind}-{latency_ms}ms", since=resumed),
            "wall_s": round(time.monotonic() - started, 1),
            "delivered": web["delivered"],
            "dead": web["dead"],
        }
    finally:
        cluster.stop()
        if server is not None:
            server.stop()


def scenario(
    latency_ms: int, tmp: Path, users: int = 15_000, kill: bool = True, reserve: float | None = None
) -> dict[str, Any]:
    """The end-to-end test's scenario, measured: three processes on one Redis, Segment's Python
    SDK sending an identify and a track per user across them, one process killed with -9 once 15%
    is delivered."""
    from segment.analytics import Client

    tmp = Path(tempfile.mkdtemp(prefix="scenario-", dir=tmp))  # each run its own Redis and relays
    server = RedisServer(tmp / "redis", shutil.which("redis-server") or "").start()
    cluster = Cluster(tmp / "relays", server.url, 3, per_10s=190, latency_ms=latency_ms, reserve=reserve)
    cluster.start().quiet()
    try:
        errors: list[str] = []

        def send(url: str, ids: range) -> None:
            client = Client(
                WRITE_KEY,
                host=url,
                max_queue_size=100_000,
                upload_size=250,
                on_error=lambda e, b: errors.append(str(e)),
            )
            for i in ids:
                client.identify(user_id=f"user{i}", traits={"email": f"user{i}@example.com"})
                client.track(user_id=f"user{i}", event="Scaled Out", properties={"n": i})
            client.flush()
            client.shutdown()

        share_of = users // 6
        threads = [
            threading.Thread(target=send, args=(cluster.urls[k % 3], range(k * share_of, (k + 1) * share_of)))
            for k in range(6)
        ]
        started, sending = time.monotonic(), time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_at = time.time()  # the clients have flushed everything (the sandbox's clock)
        total = 2 * users
        while cluster.web()["delivered"] < total * 0.15:
            time.sleep(0.05)
        delivered_at_kill = cluster.web()["delivered"]
        if kill:
            cluster.relays[1].kill9()
        killed, killed_at = time.monotonic(), time.time() - sending
        cluster.wait_delivered(total, timeout=600)
        minimum = math.ceil(users / 100) + math.ceil(users / 500)
        web = cluster.web()
        portal = cluster.portal()
        return {
            "setup": ("redis-3, kill -9 of one" if kill else "redis-3")
            + (f", reserve {reserve}" if reserve is not None else ""),
            "latency_ms": latency_ms,
            "messages": total,
            "client_errors": len(errors),
            **share(cluster, minimum, f"scenario-{latency_ms}ms", since=sending),
            # how long the clients took to send everything (delivery is ingest-bound until then)
            "clients_sending_s": round(sent_at - sending, 1),
            "wall_s": round(time.monotonic() - started, 1),
            "delivered_at_kill": delivered_at_kill,
            "killed_at_s": round(killed_at, 1) if kill else None,
            "after_kill_s": round(time.monotonic() - killed, 1),
            "delivered": web["delivered"],
            "dead": web["dead"],
            "contacts_at_hubspot": portal["contacts"],
            "events_at_hubspot": portal["events"],
        }
    finally:
        cluster.stop()
        server.stop()


def plot(work: list[tuple[float, str]], result: dict[str, Any], path: Path) -> None:
    """Calls at the sandbox over time, by kind, against what the usable budget allows (171 in any
    10 s, each slot held 10.5 s by the relay), with the kill -9."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = work[0][0]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    kinds = {"contact upserts": "contacts/batch/upsert", "event batches": "send/batch"}
    for name, needle in kinds.items():
        times = [t - start for t, label in work if needle in label]
        ax.step(times, range(1, len(times) + 1), where="post", label=f"{name} ({len(times)})")
    times = [t - start for t, _ in work]
    ax.step(
        times, range(1, len(times) + 1), where="post", color="black", lw=2, label=f"all calls ({len(times)})"
    )
    usable = result["usable_per_10s"]
    ax.axhline(usable, color="grey", ls=":", lw=1)
    ax.text(0.1, usable + 3, f"{usable}: the usable budget in one window", color="grey", fontsize=8)
    if result.get("killed_at_s") is not None:
        at = result["killed_at_s"] - start
        ax.axvline(at, color="crimson", ls="--", lw=1)
        ax.text(at + 0.1, 10, "kill -9", color="crimson", fontsize=8)
    ax.set_xlabel("seconds since the first call")
    ax.set_ylabel("calls at the sandbox (cumulative)")
    ax.set_title(
        f"3 relay processes, one Redis, {result['messages']:,} messages, HubSpot answering in "
        f"{result['latency_ms']} ms: {result['share_of_ceiling']:.0%} of the usable budget",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["ingest", "delivery", "scenario"])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--workload", choices=["mixed", "contacts"], action="append")
    ap.add_argument(
        "--runs", type=int, default=1, help="scenario: runs with a kill -9 (the figure is their median)"
    )
    ap.add_argument("--no-kill-runs", type=int, default=0, help="scenario: runs without the kill, apart")
    ap.add_argument("--plot", type=Path, help="scenario: the first run's calls over time (PNG)")
    ap.add_argument(
        "--reserve", type=float, help="scenario: limits.reserve (default 0.1: 171 of 190 calls usable)"
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--timeline", type=Path, help="save every call at the sandbox, per run, here")
    args = ap.parse_args()
    global TIMELINES
    TIMELINES = args.timeline
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "ingest"):
            out["ingest"] = ingest(args.processes, args.seconds, args.rounds, tmp)
            print(json.dumps(out["ingest"]), file=sys.stderr)
        if args.only in (None, "delivery"):
            out["delivery"] = []
            for kind in args.workload or ["mixed", "contacts"]:
                for label in ["sqlite-1", *(f"redis-{n}" for n in args.processes)]:
                    n = int(label.split("-")[1])
                    result = drain(n, label.startswith("redis"), kind, args.latency_ms, tmp)
                    result.pop("_work")
                    out["delivery"].append(result)
                    print(json.dumps(result), file=sys.stderr)
        if args.only in (None, "scenario"):
            for key, kill, runs in (
                ("scenario", True, args.runs),
                ("scenario_no_kill", False, args.no_kill_runs),
            ):
                results = []
                for _ in range(runs):
                    results.append(scenario(args.latency_ms, tmp, kill=kill, reserve=args.reserve))
                    work = results[-1].pop("_work")
                    print(json.dumps(results[-1]), file=sys.stderr)
                    if kill and args.plot and len(results) == 1:
                        plot(work, results[-1], args.plot)
                if results:
                    shares = sorted(r["share_of_ceiling"] for r in results)
                    out[key] = {
                        **results[-1],
                        "share_of_ceiling_runs": shares,
                        "share_of_ceiling_median": statistics.median(shares),
                        "calls_cut_off_runs": [r["calls_cut_off"] for r in results],
                    }
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
