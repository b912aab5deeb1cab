"""What the screenshot scripts share: a relay with its bundled sandbox on free ports, and
headless Chromium (Debian's)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def relay(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`hubspot-relay serve` (and its sandbox) in a temporary data folder; yields its base URL."""
    port, sandbox_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        child_env.update(
            HUBSPOT_RELAY_PORT=str(port), HUBSPOT_SANDBOX_PORT=str(sandbox_port), HUBSPOT_RELAY_DATA_DIR=data
        )
        child_env.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubspot_relay", "serve", "--log-level", "warning", *args],
            env=child_env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(20)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
