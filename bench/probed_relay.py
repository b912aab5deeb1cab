#!/usr/bin/env python3
"""`hubspot-relay` with a probe on its event loop: every callback the loop runs is timed, and
each one longer than 2 ms is appended to the file `HUBSPOT_RELAY_PROBE` (its start on the
monotonic clock, its length, and for one over 50 ms where it was then: the relay's frames of
its stack), so a benchmark can read the loop's longest stall over any window and what it was.

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
import traceback
from pathlib import Path

sys.modules["uvloop"] = None  # type: ignore[assignment]  # uvicorn's "auto" loop is then asyncio's

PROBE = os.environ["HUBSPOT_RELAY_PROBE"]
THRESHOLD_S = 0.002
_slow: list[tuple[float, float, str]] = []
_lock = threading.Lock()
_run = asyncio.events.Handle._run


_running: dict[int, float] = {}  # thread id -> when its loop's current callback started
_caught: dict[float, str] = {}  # a long callback's start -> where it was when caught (a stack)


def _timed(self: asyncio.events.Handle) -> None:
    start = time.monotonic()
    me = threading.get_ident()
    _running[me] = start
    try:
        _run(self)
    finally:
        _running.pop(me, None)
        took = time.monotonic() - start
        if took > THRESHOLD_S:
            what = _caught.pop(start, "") if took > 0.05 else ""
            with _lock:
                _slow.append((start, took, what))


def _watch() -> None:
    """Where a callback is when it has run 50 ms: the innermost frames of its stack."""
    while True:
        time.sleep(0.01)
        now = time.monotonic()
        frames = sys._current_frames()
        for ident, start in list(_running.items()):
            if now - start > 0.05 and start not in _caught and ident in frames:
                stack = traceback.extract_stack(frames[ident])
                ours = [f for f in stack if "hubspot_relay" in f.filename][-8:]
                where = [f"{f.name}@{Path(f.filename).name}:{f.lineno}" for f in ours[::-1]]
                _caught[start] = " < ".join(where)


def _flush() -> None:
    while True:
        time.sleep(0.25)
        with _lock:
            found, _slow[:] = list(_slow), []
        if found:
            with open(PROBE, "a") as out:
                out.writelines(f"{start:.6f} {took:.6f} {what}\n" for start, took, what in found)


asyncio.events.Handle._run = _timed  # type: ignore[method-assign]
threading.Thread(target=_flush, daemon=True, name="loop-probe").start()
threading.Thread(target=_watch, daemon=True, name="loop-watch").start()

from hubspot_relay.cli import main  # noqa: E402  (after the probe is in place)

if __name__ == "__main__":
    sys.argv[0] = "hubspot-relay"
    main()
