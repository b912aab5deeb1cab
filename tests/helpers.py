"""Test helpers: free ports, and a relay started as a real process the way users run it."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hubspot import HubSpot

from hubspot_relay.config import Config, Source, sandbox_account
from hubspot_relay.secrets import Secret
from hubspot_relay.segment.messages import stamped

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_quiet(sandbox_url: str, for_s: float = 0.6, timeout: float = 30) -> None:
    """Wait until the relays have made the reads they make as they start (no new call at the
    sandbox for `for_s`), so that a measured run counts only its own calls."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        total = int(httpx.get(f"{sandbox_url}/_sandbox/calls", timeout=10).json()["total"])
        if total == seen:
            return
        seen = total
        time.sleep(for_s)


@dataclass
class RelayProcess:
    """`hubspot-relay serve` in a subprocess on a free loopback port."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    new_session: bool = False  # its own process group, as a terminal gives it (for Ctrl-C tests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.sqlite3"

    def start(self, timeout: float = 20.0) -> RelayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        env.update(
            {
                "HUBSPOT_RELAY_DATA_DIR": str(self.data_dir),
                "HUBSPOT_RELAY_PORT": str(self.port),
                "HUBSPOT_SANDBOX_PORT": str(self.sandbox_port),
            }
        )
        env.update(self.env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"relay-{self.port}-{time.monotonic_ns()}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hubspot_relay", "serve", "--log-level", "warning", *self.args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=self.new_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"relay did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> RelayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sandbox_config(data_dir: Path, write_key: str, **settings: Any) -> Config:
    """One source ("web") routed to the bundled sandbox's account, for in-process app tests."""
    return Config(
        data_dir=data_dir,
        host="127.0.0.1",
        port=0,
        accounts=(sandbox_account(),),
        sources=(Source("web", Secret(write_key), "sandbox"),),
        **settings,
    )


def stored_messages(queue_path: Path, source: str | None = None) -> list[dict[str, Any]]:
    """Every message in a queue file, decoded, oldest first (read-only, beside a live relay)."""
    conn = sqlite3.connect(f"file:{queue_path}?mode=ro", uri=True)
    try:
        sql, params = "SELECT body, received_at, sent_at FROM messages", ()
        if source is not None:
            sql, params = sql + " WHERE source = ?", (source,)
        return [stamped(*row) for row in conn.execute(sql + " ORDER BY id", params)]
    finally:
        conn.close()


class StillClock:
    """A clock that moves only when a test moves it (`now`)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SandboxProcess:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubspot_relay",
                "sandbox",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *args,
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_sandbox/portals", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sandbox did not start")

    def client(self, token: str = "sandbox-token") -> HubSpot:
        return HubSpot(access_token=token, host=self.url, base_url=self.url)

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return out.decode()


def wait_delivered(relay: RelayProcess, expected: int, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{relay.queue_path}?mode=ro", uri=True) as db:
            counts = dict(db.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        if counts.get(3, 0) + counts.get(4, 0) >= expected or time.monotonic() > deadline:
            return {
                "delivered": counts.get(3, 0),
                "dead": counts.get(4, 0),
                "other": sum(n for s, n in counts.items() if s not in (3, 4)),
            }
        time.sleep(0.2)


# A shop's page loading analytics.js from the relay with Segment's stock snippet (`write_key`,
# `relay`), for the browser tests.
STOCK_SNIPPET_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head>
<body><h1>Shop</h1>
<script>
  (function () {
    var a = (window.analytics = window.analytics || [])
    a.methods = ['identify', 'track', 'page', 'group', 'alias', 'reset', 'ready']
    a.methods.forEach(function (m) {
      a[m] = function () {
        var args = Array.prototype.slice.call(arguments); args.unshift(m); a.push(args); return a
      }
    })
    a._writeKey = '%(write_key)s'
    a._cdn = '%(relay)s'
    var s = document.createElement('script')
    s.async = true
    s.src = a._cdn + '/analytics.js/v1/' + a._writeKey + '/analytics.min.js'
    document.head.appendChild(s)
    a.page()
  })()
</script></body></html>"""

# Chromium's flags on these machines: no sandbox as root, and none of its own network traffic
# (the closed network refuses it, many connections at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
