"""Several relay processes sharing one Redis, delivering to one sandbox: the scale-out set-up the
README describes, on loopback, for the end-to-end tests and `bench/scale.py` (with no Redis URL:
one process on its SQLite queue, the baseline)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hubspot_relay.delivery.loop import PAUSE_RECHECK_S
from tests.helpers import ROOT, RelayProcess, free_port, wait_quiet

WRITE_KEY = "cluster-write-key"
OAUTH_APP = "app-1:app-secret:refresh-1"  # client id, client secret, refresh token


class Cluster:
    def __init__(
        self,
        tmp: Path,
        redis_url: str | None,
        processes: int,
        *,
        per_10s: int = 190,
        latency_ms: int = 300,
        deliver: bool = True,
        reserve: float | None = None,
        oauth_lifetime_s: float | None = None,
    ) -> None:
        self.tmp = tmp
        self.reserve = reserve  # the share of the budget left to other integrations (default 10%)
        self.redis_url = redis_url
        self.count = processes
        self.per_10s = per_10s
        self.latency_ms = latency_ms
        self.deliver = deliver
        # an OAuth app instead of the private app token, its access tokens living this long
        self.oauth_lifetime_s = oauth_lifetime_s
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.relays: list[RelayProcess] = []
        self.http = httpx.Client(timeout=30)

    def start(self) -> Cluster:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.sandbox = subprocess.Popen(
            [
                sys.executable, "-m", "hubspot_relay", "sandbox",
                "--port", str(self.sandbox_port), "--log-level", "warning",
                "--limit-10s", str(self.per_10s),
                *(
                    ("--oauth-app", OAUTH_APP, "--oauth-token-lifetime", str(self.oauth_lifetime_s))
                    if self.oauth_lifetime_s else ()
                ),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                self.http.get(f"{self.sandbox_url}/_sandbox/portals", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if self.sandbox.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.05)
        if self.latency_ms:
            self.http.post(
                f"{self.sandbox_url}/_sandbox/faults",
                json={"rules": [{"match": "*", "latency_ms": self.latency_ms}]},
            ).raise_for_status()
        config = self.tmp / "relay.toml"
        queue = f'queue_url = "{self.redis_url}"' if self.redis_url else ""
        config.write_text(f"""
[relay]
{queue}

[[accounts]]
name = "cluster"
hub_id = 997086
{self._credentials()}
api_base = "{self.sandbox_url}"
tier = "professional"
{f"limits = {{ reserve = {self.reserve} }}" if self.reserve is not None else ""}

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "cluster"
""")
        args: tuple[str, ...] = ("--config", str(config))
        if not self.deliver:
            args += ("--no-deliver",)
        for i in range(self.count):
            self.relays.append(RelayProcess(self.tmp / f"relay{i}", args=args).start())
        return self

    def _credentials(self) -> str:
        if not self.oauth_lifetime_s:
            return 'access_token = "sandbox-token"'
        client_id, secret, refresh = OAUTH_APP.split(":")
        table = f'client_id = "{client_id}", client_secret = "{secret}", refresh_token = "{refresh}"'
        return f"oauth = {{ {table} }}"

    def quiet(self) -> Cluster:
        """Once the relays' start-up reads are made (see `wait_quiet`)."""
        wait_quiet(self.sandbox_url)
        return self

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.relays]

    def status(self) -> dict[str, Any]:
        """The operations API of the first relay still running (every one reads the same Redis)."""
        for relay in self.relays:
            if relay.proc is not None and relay.proc.poll() is None:
                return dict(self.http.get(f"{relay.url}/admin/api/status").json())
        raise RuntimeError("no relay is running")

    def web(self) -> dict[str, Any]:
        return dict(self.status()["sources"]["web"])

    def wait_delivered(self, total: int, timeout: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            web = self.web()
            if web["delivered"] + web["dead"] >= total:
                return time.monotonic() - start
            time.sleep(0.25)
        raise RuntimeError(f"not delivered in {timeout}s: {self.web()}")

    def pause(self, paused: bool = True) -> None:
        """An operator's pause or resume of the account, told to one process; returns once every
        process has seen it (they re-read it every `PAUSE_RECHECK_S`)."""
        verb = "pause" if paused else "resume"
        self.http.post(f"{self.relays[0].url}/admin/api/accounts/cluster/{verb}").raise_for_status()
        if paused and self.count > 1:
            time.sleep(PAUSE_RECHECK_S + 0.5)

    def calls(self, timeline: bool = False) -> dict[str, Any]:
        params = {"timeline": "1"} if timeline else {}
        return dict(self.http.get(f"{self.sandbox_url}/_sandbox/calls", params=params).json())

    def portal(self) -> dict[str, Any]:
        portals = self.http.get(f"{self.sandbox_url}/_sandbox/portals").json()
        return dict(next(p for p in portals if p["hub_id"] == "997086"))

    def stop(self) -> None:
        for relay in self.relays:
            relay.stop()
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.terminate()
            try:
                self.sandbox.wait(10)
            except subprocess.TimeoutExpired:
                self.sandbox.kill()
        self.http.close()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
