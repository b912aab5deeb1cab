#!/usr/bin/env python3
"""Durable ingest against a no-op endpoint, measured in the same run (ratios, not absolutes).

Three servers, each a single uvicorn process on loopback, driven in turn by `wrk`:
  noop     an endpoint that reads the body and answers 200: the HTTP floor
  parse    the real ingest app (auth, decode, validate, stamp) with a queue that discards
  durable  the real relay: `hubspot-relay serve --no-deliver` (ingest alone), SQLite WAL,
           synchronous=FULL, group commit
Two loads: /v1/batch with 100 messages per request (events/s) and single /v1/t messages
(requests/s). Every request carries fresh messageIds, so the durable queue stores every one.
Rounds alternate the servers so that a noisy neighbour hurts all of them alike; the ratio of
medians is reported. Needs `wrk` (Debian package wrk).

usage: bench/ingest.py [--seconds 8] [--rounds 3] [--workload FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "bench-write-key"
PLACEHOLDER = "@@MID@@"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the servers ------------------------------------------------------------------------


def serve(kind: str, port: int, data_dir: str) -> None:
    """Run one of the servers in this process (the bench starts itself in a subprocess)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    if kind == "noop":

        async def noop(request: Request) -> Response:
            await request.body()
            return Response(b'{"success":true}', media_type="application/json")

        app: Any = Starlette(
            routes=[Route("/v1/{kind}", noop, methods=["POST"]), Route("/health", noop, methods=["GET"])]
        )
    else:
        from hubspot_relay.config import load_env
        from hubspot_relay.segment.ingest import create_ingest_app

        class DiscardingQueue:
            async def append(self, envelopes: Any) -> int:
                return len(envelopes)

        config = load_env({"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY, "HUBSPOT_RELAY_DATA_DIR": data_dir})
        app = create_ingest_app(config, DiscardingQueue())  # type: ignore[arg-type]
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


class Server:
    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.data_dir = tmp / f"{kind}-{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        if self.kind == "durable":
            env.update(
                {
                    "HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY,
                    "HUBSPOT_RELAY_DATA_DIR": str(self.data_dir),
                    "HUBSPOT_RELAY_PORT": str(self.port),
                    # ingest alone (--no-deliver) fills the queue by design: no back-pressure here
                    "HUBSPOT_RELAY_MAX_QUEUED": "1000000000",
                }
            )
            cmd = [sys.executable, "-m", "hubspot_relay", "serve", "--log-level", "warning", "--no-deliver"]
        else:
            cmd = [
                sys.executable,
                __file__,
                "--serve",
                self.kind,
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ]
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} server did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)

    def stored(self) -> int:
        import sqlite3

        conn = sqlite3.connect(self.data_dir / "queue.sqlite3")
        try:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            conn.close()


# ---- the load ---------------------------------------------------------------------------


def generated_messages(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Messages shaped like a real site's: mostly track and page, some identify."""
    rnd = random.Random(seed)
    ctx = {
        "library": {"name": "analytics.js", "version": "next-1.84.3"},
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0",
        "page": {"path": "/", "url": "https://shop.example/"},
    }
    out: list[dict[str, Any]] = []
    for i in range(n):
        uid = f"user-{rnd.randrange(1000)}"
        kind = rnd.choices(["track", "page", "identify"], [6, 3, 1])[0]
        msg: dict[str, Any] = {
            "type": kind,
            "userId": uid,
            "context": ctx,
            "timestamp": "2026-11-01T00:00:00.000Z",
        }
        if kind == "track":
            msg.update(
                event="Viewed Product", properties={"sku": f"SKU-{i}", "category": "Tools", "price": 9.5}
            )
        elif kind == "page":
            msg.update(
                name="Pricing",
                properties={
                    "path": "/pricing",
                    "url": "https://shop.example/pricing",
                    "title": "Pricing",
                    "referrer": "https://shop.example/",
                },
            )
        else:
            msg.update(traits={"email": f"{uid}@example.com", "firstName": "Ann", "plan": "pro"})
        out.append(msg)
    return out


def workload_messages(path: Path, n: int) -> list[dict[str, Any]]:
    msgs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return (msgs * (n // len(msgs) + 1))[:n]


def lua_script(path: str, bodies: list[str], auth: str) -> str:
    """A wrk script posting the bodies in turn, each with messageIds made unique per request."""
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    return f"""
local bodies = {{ {quoted} }}
local n = 0
local tid = 0
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("tid", counter) end
init = function(args) tid = tid or 1 end
request = function()
  n = n + 1
  local body = bodies[(n % #bodies) + 1]
  local prefix = "b" .. tid .. "-" .. n .. "-"
  body = string.gsub(body, "{PLACEHOLDER}", prefix)
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json",
                                        ["Authorization"] = "Basic {auth}"}}, body)
end
"""


def make_bodies(msgs: list[dict[str, Any]], per_request: int) -> list[str]:
    bodies = []
    for start in range(0, len(msgs), per_request):
        chunk = []
        for j, m in enumerate(msgs[start : start + per_request]):
            m = {k: v for k, v in m.items() if k not in ("messageId", "writeKey")}
            m["messageId"] = f"{PLACEHOLDER}{j}"
            chunk.append(m)
        body: Any = {"batch": chunk} if per_request > 1 else chunk[0]
        bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rps,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "socket_errors": 1.0 if errors else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workload", type=Path, help="JSONL of Segment messages to replay instead")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.data_dir)
        return 0
    if shutil.which("wrk") is None:
        print("bench/ingest.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    msgs = workload_messages(args.workload, 2000) if args.workload else generated_messages(2000)
    import base64

    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    scenarios = {
        # name: (path, messages per request, connections)
        "batch": ("/v1/batch", 100, 16),
        "single": ("/v1/t", 1, 64),
    }
    results: dict[str, dict[str, list[dict[str, float]]]] = {s: {} for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        scripts = {}
        for name, (path, per, _) in scenarios.items():
            chosen = [m for m in msgs if m["type"] == "track"] if per == 1 else msgs
            bodies = make_bodies(chosen[: 200 if per == 1 else 2000], per)
            scripts[name] = tmp / f"{name}.lua"
            scripts[name].write_text(lua_script(path, bodies, auth))
        stored_total = 0
        sent_total = 0
        for rnd in range(args.rounds):
            for kind in ("noop", "parse", "durable"):
                with Server(kind, tmp) as server:
                    for name, (_, per, conns) in scenarios.items():
                        r = run_wrk(f"http://127.0.0.1:{server.port}", scripts[name], args.seconds, conns)
                        r["events"] = r["rps"] * per
                        results[name].setdefault(kind, []).append(r)
                        print(
                            f"round {rnd + 1} {kind:8s} {name:6s} {r['rps']:9.0f} req/s "
                            f"{r['events']:9.0f} events/s  p99 {r['p99_ms']:.1f} ms"
                            f"  non-2xx {r['non2xx']:.0f}",
                            file=sys.stderr,
                        )
                    if kind == "durable":
                        stored_total += server.stored()
                        sent_total += 1
        summary: dict[str, Any] = {"uuid": str(uuid.uuid4()), "rounds": args.rounds, "seconds": args.seconds}
        for name, (_, per, conns) in scenarios.items():
            med = {k: statistics.median(r["events"] for r in rs) for k, rs in results[name].items()}
            p99 = {k: statistics.median(r["p99_ms"] for r in rs) for k, rs in results[name].items()}
            non2xx = sum(r["non2xx"] for rs in results[name].values() for r in rs)
            unit = "events/s" if per > 1 else "requests/s"
            summary[name] = {
                "unit": unit,
                "connections": conns,
                "messages_per_request": per,
                "noop": round(med["noop"] / per * (per if per > 1 else 1)),
                "parse": round(med["parse"] / per * (per if per > 1 else 1)),
                "durable": round(med["durable"] / per * (per if per > 1 else 1)),
                "durable_vs_noop": round(med["durable"] / med["noop"], 3),
                "durable_vs_parse": round(med["durable"] / med["parse"], 3),
                "p99_ms": {k: round(v, 1) for k, v in p99.items()},
                "non_2xx": int(non2xx),
            }
        summary["durable_messages_stored"] = stored_total
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
