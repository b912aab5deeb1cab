#!/usr/bin/env python3
"""Take docs/img/demo.png: a relay (with its bundled sandbox) serving analytics.js, the demo page
in headless Chromium, identify / track / page clicked, then a screenshot.

usage: .venv/bin/python scripts/demo_screenshot.py [--out docs/img/demo.png]
(after `make test` or `make run`
installed assets/analytics-js; needs Debian's chromium)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _screens import ROOT, chromium, relay

ANALYTICS_JS = ROOT / "assets/analytics-js/node_modules/@segment/analytics-next/dist/umd"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/img/demo.png")
    args = ap.parse_args()
    with relay("--analytics-js-dir", str(ANALYTICS_JS)) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 760})
        page.goto(f"{base}/demo")
        page.wait_for_function("window.analytics && window.analytics.initialized === true", timeout=20_000)
        for button in ("identify", "track", "page", "track"):
            page.click(f"#{button}")
            time.sleep(0.4)
        time.sleep(2.0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
