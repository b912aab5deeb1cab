#!/usr/bin/env python3
"""Take docs/img/console.png and docs/img/console-tester.png: a relay (with its bundled sandbox)
and an admin token, Segment's Python SDK sending identifies and tracks (one with a value HubSpot
refuses, to show a dead letter), the console signed in to in headless Chromium.

usage: .venv/bin/python scripts/console_screenshot.py [--out docs/img]
(after `make test`; needs Debian's chromium)
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from segment.analytics import Client

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "console-screenshot-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(base: str) -> None:
    errors: list[str] = []
    client = Client("screenshot-key", host=base, on_error=lambda e, b: errors.append(str(e)))
    for i in range(240):
        client.identify(f"user{i}", {"email": f"user{i}@example.com", "firstName": f"User {i}", "plan": "pro"})
        client.track(f"user{i}", "Signed Up", {"plan": "pro", "seats": i % 7 + 1})
        if i % 3 == 0:
            client.page(f"user{i}", "Docs", "Quick start", {"path": "/docs/start"})
    client.identify("gold-buyer", {"email": "gold@example.com", "plan": "gold"})  # not a plan HubSpot has
    client.identify(anonymous_id="anon-1", traits={"firstName": "Anonymous"})
    client.flush()
    client.shutdown()
    if errors:
        raise RuntimeError(errors[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/img")
    args = ap.parse_args()
    port, sandbox_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        env.update(
            HUBSPOT_RELAY_PORT=str(port),
            HUBSPOT_SANDBOX_PORT=str(sandbox_port),
            HUBSPOT_RELAY_DATA_DIR=data,
            HUBSPOT_RELAY_ADMIN_TOKEN=TOKEN,
        )
        relay = subprocess.Popen(
            [sys.executable, "-m", "hubspot_relay", "serve", "--log-level", "warning"],
            env=env,
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
            send(base)
            time.sleep(4)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{base}/admin")
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_selector("#charts .chart")
                time.sleep(1)
                args.out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out / "console.png"))
                page.click("nav button[data-tab=tester]")
                page.click("#tester-preview")
                page.wait_for_selector("#tester-outcome")
                page.screenshot(path=str(args.out / "console-tester.png"))
                browser.close()
        finally:
            relay.terminate()
            relay.wait(20)
    print(f"wrote {args.out / 'console.png'} and {args.out / 'console-tester.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
