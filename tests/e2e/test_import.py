"""`hubspot-relay import` of 100,000 archived messages into a running relay: the progress bar and
the summary, then an import interrupted with Ctrl-C and resumed, storing nothing twice."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, RelayProcess

pytestmark = pytest.mark.e2e

LINES = 100_000


def write_archive(path: Path) -> int:
    """Segment-archive-shaped lines; every 10,000th is broken. Returns the number of good ones."""
    good = 0
    with gzip.open(path, "wt") as f:
        for i in range(LINES):
            if i % 10_000 == 9_999:
                f.write('{"type": "identify", "traits": {}}\n')
                continue
            msg = {
                "type": "track" if i % 2 else "identify",
                "userId": f"user{i % 20_000}",
                "timestamp": "2026-03-01T12:00:00.000Z",
                "sentAt": "2026-03-01T12:00:01.000Z",
                "receivedAt": "2026-03-01T12:00:02.000Z",
                "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
            }
            if i % 2:
                msg |= {"event": "Order Completed", "properties": {"revenue": i % 90, "orderId": f"o{i}"}}
            else:
                msg |= {"traits": {"email": f"user{i % 20_000}@example.com"}}
            if i % 3:
                msg["messageId"] = f"archive-{i}"
            f.write(json.dumps(msg) + "\n")
            good += 1
    return good


def stored(relay: RelayProcess) -> tuple[int, int]:
    with sqlite3.connect(f"file:{relay.queue_path}?mode=ro", uri=True) as db:
        total, distinct = db.execute("SELECT count(*), count(DISTINCT message_id) FROM messages").fetchone()
    return int(total), int(distinct)


def importer(relay: RelayProcess, file: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env |= {"HUBSPOT_RELAY_URL": relay.url, "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "hubspot_relay", "import", str(file), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_import_of_100000_messages_resumed_after_an_interruption(tmp_path: Path) -> None:
    file = tmp_path / "segment-archive.jsonl.gz"
    good = write_archive(file)
    state = file.with_name(file.name + ".import-state")
    with RelayProcess(tmp_path / "relay", args=("--no-deliver",)) as relay:
        first = importer(relay, file)
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        first.send_signal(signal.SIGINT)  # Ctrl-C, a batch or a few in
        out, errors = first.communicate(timeout=60)
        assert first.returncode == 130, out + errors
        assert "run the same command again to resume" in errors
        done = json.loads(state.read_text())["lines_done"]
        assert 0 < done < LINES
        partial, _ = stored(relay)
        assert 0 < partial < good

        second = importer(relay, file)
        out, errors = second.communicate(timeout=300)
        assert second.returncode == 0, out + errors
        assert "importing segment-archive.jsonl.gz" in errors and "accepted" in errors  # the progress bar
        assert f"resumed after line {done:,}" in out
        assert f"{LINES:,} lines" in out and f"{LINES - good} refused" in out
        assert "identify requires 'userId' or 'anonymousId'" in out
        total, distinct = stored(relay)
        assert total == distinct == good  # every good line once, none twice

        again = importer(relay, file, "--restart")  # all of it again: recognised, nothing stored
        out, errors = again.communicate(timeout=300)
        assert again.returncode == 0, out + errors
        assert stored(relay) == (good, good)
