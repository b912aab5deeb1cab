#!/usr/bin/env python3
"""Take docs/img/console.png and docs/img/console-tester.png: a relay (with its bundled sandbox)
and an admin token, Segment's Python SDK sending identifies and tracks (one with a value HubSpot
refuses, to show a dead letter), the console signed in to in headless Chromium.

usage: .venv/bin/python scripts/console_screenshot.py [--out docs/img]
(after `make test`; needs Debian's chromium)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _screens import ROOT, chromium, relay
from segment.analytics import Client

TOKEN = "console-screenshot-token"


def send(base: str) -> None:
    errors: list[str] = []
    client = Client("screenshot-key", host=base, on_error=lambda e, b: errors.append(str(e)))
    for i in range(240):
        client.identify(
            f"user{i}", {"email": f"user{i}@example.com", "firstName": f"User {i}", "plan": "pro"}
        )
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
    with relay(env={"HUBSPOT_RELAY_ADMIN_TOKEN": TOKEN}) as base, chromium() as browser:
        send(base)
        time.sleep(4)
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
    print(f"wrote {args.out / 'console.png'} and {args.out / 'console-tester.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
