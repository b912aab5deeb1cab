#!/usr/bin/env python3
"""`hubspot-relay` with a probe on its event loop: every callback the loop runs is timed, and
each one longer than 2 ms is appended to the file `HUBSPOT_RELAY_PROBE` (its start on the
monotonic clock, its length), so a benchmark can read the loop's longest stall over any window.

Made to measure any version of the relay the same way (it changes nothing in the relay): the
loop is asyncio's (uvloop is hidden, its callbacks cannot be timed from Python), and the
relay's own code is whatever `PYTHONPATH` puts first.

usage: HUBSPOT_RELAY_PROBE=FILE bench/probed_relay.py serve [OPTIONS]
"""

from __future__ import annotations

import asyncio.events
import os
import sys
import threading
import time

sys.modules["uvloop"] = None  # type: ignore[assignment]  # uvicorn's "auto" loop is then asyncio's

PROBE = os.environ["HUBSPOT_RELAY_PROBE"]
THRESHOLD_S = 0.002
_slow: list[tuple[float, float]] = []
_lock = threading.Lock()
_run = asyncio.events.Handle._run


def _timed(self: asyncio.events.Handle) -> None:
    start = time.monotonic()
    try:
        _run(self)
    finally:
        took = time.monotonic() - start
        if took > THRESHOLD_S:
            with _lock:
                _slow.append((start, took))


def _flush() -> None:
    while True:
        time.sleep(0.25)
        with _lock:
            found, _slow[:] = list(_slow), []
        if found:
            with open(PROBE, "a") as out:
                out.writelines(f"{start:.6f} {took:.6f}\n" for start, took in found)


asyncio.events.Handle._run = _timed  # type: ignore[method-assign]
threading.Thread(target=_flush, daemon=True, name="loop-probe").start()

from hubspot_relay.cli import main  # noqa: E402  (after the probe is in place)

if __name__ == "__main__":
    sys.argv[0] = "hubspot-relay"
    main()
