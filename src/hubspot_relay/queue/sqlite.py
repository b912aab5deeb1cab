"""The embedded queue: one SQLite file in WAL mode, with group commit.

Appends are inserted by a child process (`sqlite_writer`), which takes every append waiting
when it is free into one transaction: a burst of requests shares one fsync, and each caller
returns only once its messages are committed. That is what lets ingest answer 200 only for
messages that survive `kill -9` (and, with synchronous=FULL, power loss). Leases, acks and
reads are few and go through one thread of this process.

A client that retries a request it already got through sends the same messageIds again. Those
are recognised by a window of recent (source, messageId) pairs kept in memory (rebuilt from
the file at start-up) rather than by a unique index: random UUID keys make every insert touch a
random index page, which tripled the cost of a write. The window holds the last
`dedupe_window` messages (200,000 by default, about 40 MB), far more than clients send while
they retry a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import pickle
import sqlite3
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from ..errors import QueueWriteError
from .dedupe import RecentKeys
from .protocol import OUTCOMES, DeadLetter, Envelope, Leased, Outcome, ReplayFilter, SourceCounts, State

log = structlog.get_logger("hubspot_relay.queue")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    received_at REAL    NOT NULL,
    sent_at     TEXT,
    state       INTEGER NOT NULL DEFAULT 0,
    visible_at  REAL    NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  REAL    NOT NULL DEFAULT 0
);
-- Only undelivered rows are scanned when leasing, however many delivered ones are retained.
CREATE INDEX IF NOT EXISTS messages_pending ON messages (id) WHERE state < 3;
CREATE TABLE IF NOT EXISTS source_totals (
    source    TEXT PRIMARY KEY,
    delivered INTEGER NOT NULL DEFAULT 0,
    skipped   INTEGER NOT NULL DEFAULT 0,
    waiting   INTEGER NOT NULL DEFAULT 0
);
"""

_LEN = struct.Struct(">I")
_TXN = struct.Struct(">Q")

T = TypeVar("T")


class _WriterProcess:
    """One run of the `sqlite_writer` child: the frames sent to it await its replies in order."""

    def __init__(self, proc: asyncio.subprocess.Process, queue: SQLiteQueue) -> None:
        self.proc = proc
        self.queue = queue
        self.alive = True
        self.in_flight: deque[tuple[asyncio.Future[int], list[Envelope]]] = deque()
        self.replies = asyncio.create_task(self._read_replies(), name="sqlite-writer-replies")

    @classmethod
    async def start(cls, path: Path, synchronous: str, queue: SQLiteQueue) -> _WriterProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hubspot_relay.queue.sqlite_writer",
            str(path),
            synchronous,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        pipe = proc.stdin.get_extra_info("pipe") if proc.stdin else None
        if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: room for a burst of batches
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        return cls(proc, queue)

    def send(self, payload: bytes, envelopes: list[Envelope]) -> asyncio.Future[int]:
        assert self.proc.stdin is not None
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.in_flight.append((fut, envelopes))
        self.proc.stdin.write(_LEN.pack(len(payload)) + payload)
        return fut

    async def stop(self) -> None:
        """End of input: the writer commits what it has, answers, and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        with contextlib.suppress(Exception):
            await self.proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await self.replies

    async def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                status = await stdout.readexactly(1)
                if status == b"\x00":
                    (txn,) = _TXN.unpack(await stdout.readexactly(8))
                    self.queue.commits = max(self.queue.commits, txn)
                    fut, envelopes = self.in_flight.popleft()
                    if not fut.done():
                        fut.set_result(len(envelopes))
                else:
                    (size,) = _LEN.unpack(await stdout.readexactly(4))
                    message = (await stdout.readexactly(size)).decode(errors="replace")
                    fut, envelopes = self.in_flight.popleft()
                    self.queue._forget(envelopes)
                    if not fut.done():
                        fut.set_exception(QueueWriteError(f"{self.queue.path}: {message}"))
        except asyncio.IncompleteReadError:
            pass  # the writer has exited
        self.alive = False
        # Whatever was in flight is not known to be stored: say so, so that clients retry.
        while self.in_flight:
            fut, envelopes = self.in_flight.popleft()
            self.queue._forget(envelopes)
            if not fut.done():
                fut.set_exception(QueueWriteError("the queue writer stopped before committing"))
        code = await self.proc.wait()
        await self.queue._writer_exited(self, code)


class SQLiteQueue:
    """`Queue` on a local SQLite file; one instance per process owns the file's writes."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Callable[[], float] = time.time,
        dedupe_window: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._clock = clock
        self._dedupe_window = dedupe_window
        self._recent = RecentKeys(dedupe_window)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._writer: _WriterProcess | None = None
        self._open = False
        self.commits = 0  # transactions that carried appends: group commit makes this << requests

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self, *, appends: bool = True) -> None:
        """Open the file; `appends=False` (for inspection) starts no writer process."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-queue")
        self._open = True
        try:
            await self._run(self._connect)
            if appends:
                await self._run(self._reclaim_leases)
                await self._start_writer()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._open = False
        await self._stop_writer()
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA page_size=16384")  # takes effect only on a new file: fewer, fuller pages
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        # Deleted rows are overwritten, not left in free pages (the right to be forgotten).
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(source_totals)")}
        for added in ("skipped", "waiting"):  # a file from before outcomes were counted apart
            if added not in columns:
                conn.execute(f"ALTER TABLE source_totals ADD COLUMN {added} INTEGER NOT NULL DEFAULT 0")
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        version = int(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            conn.close()
            raise RuntimeError(
                f"{self.path} was written by a newer hubspot-relay (schema {version}); upgrade to read it"
            )
        rows = conn.execute(
            "SELECT source, message_id FROM messages ORDER BY id DESC LIMIT ?", (self._dedupe_window,)
        ).fetchall()
        self._recent = RecentKeys(self._dedupe_window, reversed(rows))
        self._conn = conn

    def _reclaim_leases(self) -> int:
        """The process that opens the file for appends owns it: leases left by a previous run
        (a crash, a kill -9) belong to no one, so their messages are made visible at once."""
        return self._db.execute(
            f"UPDATE messages SET state = {State.READY}, visible_at = 0 WHERE state = {State.LEASED}"
        ).rowcount

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None or not self._open:
            raise RuntimeError("queue is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("queue is not open")
        return self._conn

    # ---- the writer process ---------------------------------------------------------------

    async def _start_writer(self) -> None:
        self._writer = await _WriterProcess.start(self.path, self._synchronous, self)

    async def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()

    async def _writer_exited(self, writer: _WriterProcess, code: int) -> None:
        if self._open and self._writer is writer:  # it died under us: start another
            log.error("queue writer exited; restarting it", code=code, queue=str(self.path))
            await self._start_writer()

    def _forget(self, envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            self._recent.release((env.source, env.message_id))

    # ---- append with group commit ---------------------------------------------------------

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        if not self._open:
            raise RuntimeError("queue is not open")
        writer = self._writer
        if writer is None or not writer.alive:
            raise QueueWriteError("the queue writer is restarting; retry")
        # Claimed synchronously on the event loop, so two requests carrying the same messageId
        # cannot both get through; released again if the write fails.
        keys = [(env.source, env.message_id) for env in envelopes]
        new = self._recent.claim_new(keys)
        fresh = [env for env, is_new in zip(envelopes, new, strict=True) if is_new]
        if len(fresh) < len(envelopes):
            # A retry of a request still being committed (the client timed out and sent it
            # again): its answer must wait for that commit, or a 200 could precede the disk.
            await self._committed([k for k, is_new in zip(keys, new, strict=True) if not is_new], writer)
        if not fresh:
            return 0
        payload = pickle.dumps(
            (
                self._clock(),
                [tuple(e)[:6] for e in fresh],  # (source, message_id, type, body, received_at, sent_at)
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return await asyncio.shield(writer.send(payload, fresh))

    async def _committed(self, keys: list[tuple[str, str]], writer: _WriterProcess) -> None:
        """Wait until every append carrying one of `keys` is committed; raise if one was not.

        Claimed keys are either on disk or in a frame the writer has not answered yet; only this
        rare path (a duplicate) looks through the frames in flight, so the usual append pays nothing.
        """
        wanted = set(keys)
        waits = [
            fut
            for fut, envelopes in list(writer.in_flight)
            if any((env.source, env.message_id) in wanted for env in envelopes)
        ]
        if waits:
            await asyncio.gather(*(asyncio.shield(f) for f in waits))

    # ---- leasing and outcomes -------------------------------------------------------------

    async def check(self) -> None:
        def write() -> None:  # autocommit: one statement, one transaction
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)", (repr(self._clock()),)
            )

        await self._run(write)

    async def lease(
        self, limit: int, lease_seconds: float, sources: Sequence[str] | None = None
    ) -> list[Leased]:
        return await self._run(self._lease, limit, lease_seconds, tuple(sources or ()))

    def _lease(self, limit: int, lease_seconds: float, sources: tuple[str, ...]) -> list[Leased]:
        now = self._clock()
        where = "state < 3 AND visible_at <= ?"
        params: list[Any] = [now + lease_seconds, now, now]
        if sources:
            where += f" AND source IN ({','.join('?' * len(sources))})"
            params.extend(sources)
        params.append(limit)
        rows = self._db.execute(
            f"UPDATE messages SET state = {State.LEASED}, visible_at = ?, attempts = attempts + 1,"
            f" updated_at = ? WHERE id IN (SELECT id FROM messages WHERE {where} ORDER BY id LIMIT ?)"
            " RETURNING id, source, message_id, type, body, received_at, sent_at, attempts",
            params,
        ).fetchall()
        rows.sort(key=lambda r: r[0])
        return [Leased(*r) for r in rows]

    async def ack(self, ids: Sequence[int], outcome: Outcome = "delivered") -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if ids:
            await self._run(self._ack, list(ids), outcome)

    def _ack(self, ids: list[int], outcome: Outcome = "delivered") -> None:
        db = self._db
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            delivered: dict[str, int] = {}
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for source, n in db.execute(
                    f"SELECT source, count(*) FROM messages WHERE id IN ({marks}) AND state < 3"
                    " GROUP BY source",
                    chunk,
                ):
                    delivered[source] = delivered.get(source, 0) + n
                db.execute(
                    f"UPDATE messages SET state = {State.DELIVERED}, updated_at = ?, last_error = NULL"
                    f" WHERE id IN ({marks}) AND state < 3",
                    [now, *chunk],
                )
            db.executemany(  # `outcome` is one of OUTCOMES, a column name
                f"INSERT INTO source_totals (source, {outcome}) VALUES (?, ?)"
                f" ON CONFLICT (source) DO UPDATE SET {outcome} = {outcome} + excluded.{outcome}",
                list(delivered.items()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def release(self, ids: Sequence[int]) -> None:
        """Give leased messages back untouched (a stop mid-cycle, or a batch handing back what must
        wait for another): visible at once, and the attempt is not counted."""
        if ids:
            await self._run(self._release, list(ids))

    def _release(self, ids: list[int]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for chunk in _chunks(ids):
                db.execute(
                    f"UPDATE messages SET state = {State.READY}, visible_at = 0,"
                    f" attempts = max(attempts - 1, 0) WHERE id IN ({','.join('?' * len(chunk))})"
                    f" AND state = {State.LEASED}",
                    chunk,
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def retry(self, ids: Sequence[int], delay_seconds: float, error: str) -> None:
        if ids:
            await self._run(self._set_state, list(ids), State.RETRYING, error, delay_seconds)

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        if ids:
            await self._run(self._set_state, list(ids), State.DEAD, reason, 0.0)

    def _set_state(self, ids: list[int], state: State, error: str, delay: float) -> None:
        db = self._db
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            for chunk in _chunks(ids):
                db.execute(
                    f"UPDATE messages SET state = ?, visible_at = ?, last_error = ?, updated_at = ?"
                    f" WHERE id IN ({','.join('?' * len(chunk))}) AND state < 3",
                    [int(state), now + delay, error, now, *chunk],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---- dead letters ---------------------------------------------------------------------

    @staticmethod
    def _dead_where(filter: ReplayFilter | None) -> tuple[str, list[Any]]:
        where, params = [f"state = {State.DEAD}"], []
        if filter is not None:
            if filter.source:
                where.append("source = ?")
                params.append(filter.source)
            if filter.reason_contains:
                where.append("instr(lower(last_error), lower(?)) > 0")
                params.append(filter.reason_contains)
            if filter.message_ids:
                where.append(f"message_id IN ({','.join('?' * len(filter.message_ids))})")
                params.extend(filter.message_ids)
        return " AND ".join(where), params

    async def dead_letters(self, limit: int = 100, filter: ReplayFilter | None = None) -> list[DeadLetter]:
        where, params = self._dead_where(filter)

        def query() -> list[DeadLetter]:
            rows = self._db.execute(
                "SELECT id, source, message_id, type, coalesce(last_error, ''), attempts, updated_at, body"
                f" FROM messages WHERE {where} ORDER BY id LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [DeadLetter(*r) for r in rows]

        return await self._run(query)

    async def replay(self, filter: ReplayFilter | None = None) -> int:
        where, params = self._dead_where(filter)

        def update() -> int:
            cur = self._db.execute(
                f"UPDATE messages SET state = {State.READY}, visible_at = 0, attempts = 0, updated_at = ?"
                f" WHERE {where}",
                [self._clock(), *params],
            )
            return cur.rowcount

        return await self._run(update)

    # ---- inspection and upkeep ------------------------------------------------------------

    async def counts(self) -> dict[str, SourceCounts]:
        return await self._run(self._counts)

    def _counts(self) -> dict[str, SourceCounts]:
        out: dict[str, SourceCounts] = {}
        attr = {
            State.READY: "queued",
            State.LEASED: "in_flight",
            State.RETRYING: "retrying",
            State.DEAD: "dead",
        }
        for source, state, n in self._db.execute(
            f"SELECT source, state, count(*) FROM messages WHERE state != {State.DELIVERED}"
            " GROUP BY source, state"
        ):
            counts = out.setdefault(source, SourceCounts())
            setattr(counts, attr[State(state)], n)
        for source, delivered, skipped, waiting in self._db.execute(
            "SELECT source, delivered, skipped, waiting FROM source_totals"
        ):
            counts = out.setdefault(source, SourceCounts())
            counts.delivered, counts.skipped, counts.waiting = delivered, skipped, waiting
        for source, oldest in self._db.execute(
            f"SELECT source, min(received_at) FROM messages WHERE state IN ({State.READY}, {State.RETRYING})"
            " GROUP BY source"
        ):
            out.setdefault(source, SourceCounts()).oldest_queued_at = oldest
        return out

    async def pending_counts(self) -> dict[str, int]:
        """Undelivered messages (queued, in flight or retrying) per source: what back-pressure counts."""

        def query() -> dict[str, int]:
            return dict(
                self._db.execute(
                    "SELECT source, count(*) FROM messages WHERE state < 3 GROUP BY source"
                ).fetchall()
            )

        return await self._run(query)

    async def erase(self, match: Callable[[bytes], bool]) -> list[tuple[str, str]]:
        def delete() -> list[tuple[str, str]]:
            rows = self._db.execute(
                "SELECT id, source, message_id, body FROM messages"
                f" WHERE state IN ({State.DELIVERED}, {State.DEAD})"
            ).fetchall()
            chosen = [(i, src, mid) for i, src, mid, body in rows if match(bytes(body))]
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i, _, _ in chosen])
            if chosen:  # the old pages leave the write-ahead log too
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return [(src, mid) for _, src, mid in chosen]

        return await self._run(delete)

    async def erase_ids(self, ids: Sequence[int]) -> None:
        def delete() -> None:
            self._db.executemany(
                f"DELETE FROM messages WHERE id = ? AND state IN ({State.DELIVERED}, {State.DEAD})",
                [(i,) for i in ids],
            )
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        if ids:
            await self._run(delete)

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered messages once they are past the window in which clients retry."""
        cutoff = self._clock() - older_than_seconds

        def delete() -> int:
            return self._db.execute(
                f"DELETE FROM messages WHERE state = {State.DELIVERED} AND updated_at < ?", (cutoff,)
            ).rowcount

        return await self._run(delete)

    async def recent(self, limit: int = 20) -> list[tuple[str, str, int, str | None, bytes]]:
        """The newest messages: (message id, type, state, last error, body), newest first."""

        def query() -> list[tuple[str, str, int, str | None, bytes]]:
            return [
                (r[0], r[1], r[2], r[3], r[4])
                for r in self._db.execute(
                    "SELECT message_id, type, state, last_error, body FROM messages ORDER BY id DESC LIMIT ?",
                    (limit,),
                )
            ]

        return await self._run(query)

    async def messages(self, source: str | None = None, limit: int = 1000) -> list[Leased]:
        """Every stored message, oldest first, whatever its state (for inspection and tests)."""

        def query() -> list[Leased]:
            sql = "SELECT id, source, message_id, type, body, received_at, sent_at, attempts FROM messages"
            params: list[Any] = []
            if source is not None:
                sql += " WHERE source = ?"
                params.append(source)
            rows = self._db.execute(sql + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
            return [Leased(*r) for r in rows]

        return await self._run(query)


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
