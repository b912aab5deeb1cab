"""What only the SQLite queue has: group commit through the writer process, its failures, pruning,
reclaiming a crashed run's leases. The contract both backends keep is in test_queue_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubspot_relay.errors import QueueWriteError
from hubspot_relay.queue.protocol import Envelope
from hubspot_relay.queue.sqlite import SQLiteQueue
from tests.helpers import StillClock as Clock

pytestmark = pytest.mark.anyio


def env(mid: str, source: str = "web", mtype: str = "track") -> Envelope:
    return Envelope(source, mid, mtype, f'{{"messageId":"{mid}"}}'.encode(), 1.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def queue(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteQueue]:
    q = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock)
    await q.open()
    yield q
    await q.close()


async def test_concurrent_appends_share_commits(queue: SQLiteQueue) -> None:
    before = queue.commits
    results = await asyncio.gather(*(queue.append([env(f"m{i}")]) for i in range(200)))
    assert results == [1] * 200
    assert queue.commits - before < 200  # group commit: waiters share transactions
    assert (await queue.counts())["web"].queued == 200


async def test_prune_forgets_only_old_delivered(queue: SQLiteQueue, clock: Clock) -> None:
    await queue.append([env("a"), env("b")])
    leased = await queue.lease(1, 30)
    await queue.ack([leased[0].id])
    clock.now += 100
    assert await queue.prune_delivered(older_than_seconds=50) == 1
    assert [m.message_id for m in await queue.messages()] == ["b"]
    assert (await queue.counts())["web"].delivered == 1  # the total is kept


async def test_append_after_close_fails(tmp_path: Path) -> None:
    q = SQLiteQueue(tmp_path / "q.sqlite3")
    await q.open()
    await q.close()
    with pytest.raises(RuntimeError, match="not open"):
        await q.append([env("a")])


async def test_a_failed_write_is_not_remembered_as_seen(queue: SQLiteQueue) -> None:
    db = sqlite3.connect(queue.path)
    db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON messages WHEN NEW.message_id = 'a'"
        " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    db.commit()
    with pytest.raises(QueueWriteError, match="disk is full"):
        await queue.append([env("a"), env("b")])
    assert await queue.messages() == []  # nothing of a refused append is half-written
    db.execute("DROP TRIGGER full")
    db.commit()
    db.close()
    assert await queue.append([env("a"), env("b")]) == 2  # the retry is stored, not taken for a duplicate


async def test_a_dead_writer_fails_its_appends_and_is_replaced(queue: SQLiteQueue) -> None:
    assert await queue.append([env("a")]) == 1
    writer = queue._writer
    assert writer is not None
    writer.proc.kill()
    await writer.proc.wait()
    for _ in range(100):  # the replacement starts in the background
        if queue._writer is not writer:
            break
        await asyncio.sleep(0.02)
    assert await queue.append([env("b")]) == 1
    assert [m.message_id for m in await queue.messages()] == ["a", "b"]


async def test_dedupe_survives_restart_and_is_bounded(tmp_path: Path, clock: Clock) -> None:
    q = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock, dedupe_window=3)
    await q.open()
    await q.append([env(f"m{i}") for i in range(5)])
    await q.close()
    q2 = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock, dedupe_window=3)
    await q2.open()
    try:
        assert await q2.append([env("m4"), env("m2")]) == 0  # the newest three are remembered
        assert await q2.append([env("m0")]) == 1  # past the window: stored again
    finally:
        await q2.close()


async def test_leases_of_a_crashed_run_are_reclaimed_on_open(tmp_path: Path, clock: Clock) -> None:
    q = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock)
    await q.open()
    await q.append([env("a"), env("b")])
    assert len(await q.lease(10, lease_seconds=900)) == 2
    await q.close()  # as if the process had died holding the leases
    q2 = SQLiteQueue(tmp_path / "q.sqlite3", clock=clock)
    await q2.open()
    try:
        assert [m.message_id for m in await q2.lease(10, 900)] == ["a", "b"]  # no 15-minute wait
    finally:
        await q2.close()


# ---- a retry racing the commit it repeats (issue 9, finding 1) ------------------------------


def _writer_signal(queue: SQLiteQueue, sig: int) -> None:
    import os

    assert queue._writer is not None
    os.kill(queue._writer.proc.pid, sig)


async def test_a_retry_waits_for_the_commit_of_the_request_it_repeats(queue: SQLiteQueue) -> None:
    import signal

    _writer_signal(queue, signal.SIGSTOP)  # the first request's commit is slow
    try:
        first = asyncio.create_task(queue.append([env("a"), env("b")]))
        await asyncio.sleep(0.05)
        retry = asyncio.create_task(queue.append([env("a"), env("b")]))  # the client timed out
        await asyncio.sleep(0.2)
        assert not retry.done(), "the retry answered before the messages it repeats were on disk"
    finally:
        _writer_signal(queue, signal.SIGCONT)
    assert (await first, await retry) == (2, 0)
    assert len(await queue.messages()) == 2


async def test_a_retry_of_a_request_whose_commit_fails_is_not_acknowledged(queue: SQLiteQueue) -> None:
    import signal

    _writer_signal(queue, signal.SIGSTOP)
    first = asyncio.create_task(queue.append([env("a")]))
    await asyncio.sleep(0.05)
    retry = asyncio.create_task(queue.append([env("a")]))
    await asyncio.sleep(0.05)
    _writer_signal(queue, signal.SIGKILL)  # the relay's writer dies before committing
    with pytest.raises(QueueWriteError):
        await first
    with pytest.raises(QueueWriteError):
        await retry  # on main this returned 0 at once: a 200 for a message never stored
    # The client's next retry is stored (the writer was restarted).
    for _ in range(100):
        if queue._writer is not None and queue._writer.alive:
            break
        await asyncio.sleep(0.05)
    assert await queue.append([env("a")]) == 1


async def test_pending_counts_and_oldest_queued(queue: SQLiteQueue, clock: Clock) -> None:
    await queue.append([env("a"), env("b"), env("c", source="app")])
    (m, *_) = await queue.lease(1, 60)
    await queue.ack([m.id])
    assert await queue.pending_counts() == {"web": 1, "app": 1}
    counts = await queue.counts()
    assert counts["web"].oldest_queued_at == 1.0


async def test_a_queue_file_from_before_outcomes_were_counted_apart_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE source_totals (source TEXT PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO source_totals VALUES ('web', 7);"
    )
    db.close()
    q = SQLiteQueue(path)
    await q.open()
    try:
        counts = (await q.counts())["web"]
        assert (counts.delivered, counts.skipped, counts.waiting) == (7, 0, 0)
    finally:
        await q.close()
