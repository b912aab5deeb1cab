"""The embedded queue: one SQLite file in WAL mode, written by one thread with group commit.

Concurrent `append` calls wait together for the next transaction, so a burst of requests shares
one fsync: each caller returns only once its messages are committed, which is what lets ingest
answer 200 only for messages that survive `kill -9` (and, with synchronous=FULL, power loss).

A client that retries a request it already got through sends the same messageIds again. Those
are recognised by a window of recent message keys kept in memory (rebuilt from the file at
start-up) rather than by a unique index: random UUID keys make every insert touch a random
index page, which tripled the cost of a write. The window spans the retained rows (delivered
messages are kept a day) up to `dedupe_window` messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from .queue import DeadLetter, Envelope, Leased, ReplayFilter, SourceCounts, State

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
    delivered INTEGER NOT NULL DEFAULT 0
);
"""

# A group of appends is written by one multi-row INSERT, which SQLite commits on its own: one
# call into SQLite per transaction, during which it does not hold the GIL, so the event loop
# keeps parsing requests on the other core. (executemany takes the GIL back for every row, and
# each take waits for the parsing thread to let go: three times slower under load.)
_MAX_ROWS_PER_INSERT = 4096  # x 6 parameters stays under SQLite's limit of 32766


def _insert_sql(rows: int) -> str:
    return (
        "INSERT INTO messages (source, message_id, type, body, received_at, updated_at) VALUES "
        + ",".join(["(?,?,?,?,?,?)"] * rows)
    )


class _Job:
    """Work for the writer thread: an append (coalesced with its neighbours) or a call."""

    __slots__ = ("args", "envelopes", "fn", "fut", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fut: asyncio.Future[Any],
        envelopes: Sequence[Envelope] | None = None,
        fn: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
    ) -> None:
        self.loop, self.fut, self.envelopes, self.fn, self.args = loop, fut, envelopes, fn, args


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in outcomes:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


class SQLiteQueue:
    """`Queue` on a local SQLite file; one instance per process owns the file's writes.

    One thread owns the connection. Appends that arrive while it is committing are taken
    together into the next transaction; the thread starts on the first one at once, so the
    event loop never has to schedule the writer before requests get their answers.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Callable[[], float] = time.time,
        dedupe_window: int = 1_000_000,
    ) -> None:
        self.path = Path(path)
        self._dedupe_window = dedupe_window
        self._recent: dict[bytes, None] = {}  # insertion-ordered: the oldest key comes first
        self._synchronous = synchronous.upper()
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._open = False
        self.commits = 0  # transactions that carried appends: group commit makes this << requests

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._thread_main, name="sqlite-queue", daemon=True)
        self._thread.start()
        self._open = True
        try:
            await self._run(self._connect)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._thread is None:
            return
        self._open = False
        await self._submit(_Job(asyncio.get_running_loop(), asyncio.get_running_loop().create_future()))
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, cached_statements=32)
        conn.execute("PRAGMA page_size=16384")  # takes effect only on a new file: fewer, fuller pages
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-32768")
        conn.executescript(_SCHEMA)
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
        self._recent = {_key(source, mid): None for source, mid in reversed(rows)}
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _submit(self, job: _Job) -> asyncio.Future[Any]:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()
        return job.fut

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self._open:
            raise RuntimeError("queue is not open")
        loop = asyncio.get_running_loop()
        return await self._submit(_Job(loop, loop.create_future(), fn=fn, args=args))

    def _thread_main(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                jobs = list(self._jobs)
                self._jobs.clear()
            outcomes: dict[
                asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
            ]
            outcomes = {}
            i = 0
            stop = False
            while i < len(jobs):
                job = jobs[i]
                if job.envelopes is not None:  # a run of appends: one transaction
                    run = [job]
                    i += 1
                    while i < len(jobs) and jobs[i].envelopes is not None:
                        run.append(jobs[i])
                        i += 1
                    try:
                        stored = self._insert_group([j.envelopes for j in run])  # type: ignore[misc]
                        for j, n in zip(run, stored, strict=True):
                            outcomes.setdefault(j.loop, []).append((j.fut, n, None))
                    except Exception as exc:  # every waiter learns its messages were not stored
                        for j in run:
                            outcomes.setdefault(j.loop, []).append((j.fut, None, exc))
                            j.loop.call_soon_threadsafe(self._forget, j.envelopes)
                    continue
                i += 1
                if job.fn is None:  # close
                    self._disconnect()
                    outcomes.setdefault(job.loop, []).append((job.fut, None, None))
                    stop = True
                    continue
                try:
                    outcomes.setdefault(job.loop, []).append((job.fut, job.fn(*job.args), None))
                except Exception as exc:
                    outcomes.setdefault(job.loop, []).append((job.fut, None, exc))
            for loop, settled in outcomes.items():
                loop.call_soon_threadsafe(_settle, settled)
            if stop:
                return

    def _forget(self, envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            self._recent.pop(_key(env.source, env.message_id), None)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("queue is not open")
        return self._conn

    # ---- append with group commit ---------------------------------------------------------

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        if not self._open:
            raise RuntimeError("queue is not open")
        # Claimed synchronously on the event loop, so two requests carrying the same messageId
        # cannot both get through; released again if the write fails.
        recent = self._recent
        fresh: list[Envelope] = []
        for env in envelopes:
            key = _key(env.source, env.message_id)
            if key not in recent:
                recent[key] = None
                fresh.append(env)
        overflow = len(recent) - self._dedupe_window
        if overflow > 0:
            for key in list(itertools.islice(recent, overflow)):
                del recent[key]
        if not fresh:
            return 0
        loop = asyncio.get_running_loop()
        return await asyncio.shield(self._submit(_Job(loop, loop.create_future(), envelopes=fresh)))

    def _insert_group(self, groups: list[Sequence[Envelope]]) -> list[int]:
        now = self._clock()
        params = [
            value
            for envelopes in groups
            for e in envelopes
            for value in (e.source, e.message_id, e.type, e.body, e.received_at, now)
        ]
        rows = len(params) // 6
        db = self._db
        if rows <= _MAX_ROWS_PER_INSERT:
            db.execute(_insert_sql(rows), params)
        else:  # a burst larger than one statement: several statements, one transaction
            step = _MAX_ROWS_PER_INSERT * 6
            db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(params), step):
                    chunk = params[start : start + step]
                    db.execute(_insert_sql(len(chunk) // 6), chunk)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        stored = [len(envelopes) for envelopes in groups]
        self.commits += 1
        return stored

    # ---- leasing and outcomes -------------------------------------------------------------

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
            " RETURNING id, source, message_id, type, body, received_at, attempts",
            params,
        ).fetchall()
        rows.sort(key=lambda r: r[0])
        return [Leased(*r) for r in rows]

    async def ack(self, ids: Sequence[int]) -> None:
        if ids:
            await self._run(self._ack, list(ids))

    def _ack(self, ids: list[int]) -> None:
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
            db.executemany(
                "INSERT INTO source_totals (source, delivered) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET delivered = delivered + excluded.delivered",
                list(delivered.items()),
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
        for source, n in self._db.execute("SELECT source, delivered FROM source_totals"):
            out.setdefault(source, SourceCounts()).delivered = n
        return out

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered messages once they are past the window in which clients retry."""
        cutoff = self._clock() - older_than_seconds

        def delete() -> int:
            return self._db.execute(
                f"DELETE FROM messages WHERE state = {State.DELIVERED} AND updated_at < ?", (cutoff,)
            ).rowcount

        return await self._run(delete)

    async def messages(self, source: str | None = None, limit: int = 1000) -> list[Leased]:
        """Every stored message, oldest first, whatever its state (for inspection and tests)."""

        def query() -> list[Leased]:
            sql = "SELECT id, source, message_id, type, body, received_at, attempts FROM messages"
            params: list[Any] = []
            if source is not None:
                sql += " WHERE source = ?"
                params.append(source)
            rows = self._db.execute(sql + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
            return [Leased(*r) for r in rows]

        return await self._run(query)


def _key(source: str, message_id: str) -> bytes:
    """A compact, collision-proof key for the dedupe window (16 bytes instead of two strings)."""
    return hashlib.blake2b(f"{source}\x00{message_id}".encode(), digest_size=16).digest()


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
