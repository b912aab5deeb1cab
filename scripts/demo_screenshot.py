#!/usr/bin/env python3
"""Take docs/img/demo.png: a relay (with its bundled sandbox) serving analytics.js, the demo page
in headless Chromium, identify / track / page clicked, then a screenshot.

usage: .venv/bin/python scripts/demo_screenshot.py [--out docs/img/demo.png]
(after `make test` or `make run`
installed assets/analytics-js; needs Debian's chromium)
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

ROOT = Path(__file__).resolve().parents[1]
ANALYTICS_JS = ROOT / "assets/analytics-js/node_modules/@segment/analytics-next/dist/umd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/img/demo.png")
    args = ap.parse_args()
    port, sandbox_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        env.update(
            HUBSPOT_RELAY_PORT=str(port), HUBSPOT_SANDBOX_PORT=str(sandbox_port), HUBSPOT_RELAY_DATA_DIR=data
        )
        relay = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubspot_relay",
                "serve",
                "--analytics-js-dir",
                str(ANALYTICS_JS),
                "--log-level",
                "warning",
            ],
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
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 760})
                page.goto(f"{base}/demo")
                page.wait_for_function(
                    "window.analytics && window.analytics.initialized === true", timeout=20_000
                )
                for button in ("identify", "track", "page", "track"):
                    page.click(f"#{button}")
                    time.sleep(0.4)
                time.sleep(2.0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            relay.terminate()
            relay.wait(20)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
