"""The embedded queue: one SQLite file in WAL mode, written by one thread with group commit.

Concurrent `append` calls wait together for the next transaction, so a burst of requests shares
one fsync: each caller returns only once its messages are committed, which is what lets ingest
answer 200 only for messages that survive `kill -9` (and, with synchronous=FULL, power loss).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
-- A client that retries a request it already got through sends the same messageIds again.
CREATE UNIQUE INDEX IF NOT EXISTS messages_identity ON messages (source, message_id);
-- Only undelivered rows are scanned when leasing, however many delivered ones are retained.
CREATE INDEX IF NOT EXISTS messages_pending ON messages (id) WHERE state < 3;
CREATE TABLE IF NOT EXISTS source_totals (
    source    TEXT PRIMARY KEY,
    delivered INTEGER NOT NULL DEFAULT 0
);
"""

_INSERT = (
    "INSERT OR IGNORE INTO messages (source, message_id, type, body, received_at, state, visible_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?)"
)


class SQLiteQueue:
    """`Queue` on a local SQLite file; one instance per process owns the file's writes."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Sequence[Envelope], asyncio.Future[int]]] = []
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0  # transactions that carried appends: group commit makes this << requests

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-queue")
        await self._run(self._connect)
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-queue-writer")

    async def close(self) -> None:
        if self._writer is not None and self._wakeup is not None:
            self._closing = True
            self._wakeup.set()
            await self._writer
            self._writer = None
        if self._executor is not None:
            await self._run(self._disconnect)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
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
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("queue is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("queue is not open")
        return self._conn

    # ---- append with group commit ---------------------------------------------------------

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        if not envelopes:
            return 0
        if self._wakeup is None or self._closing:
            raise RuntimeError("queue is not open")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((envelopes, fut))
        self._wakeup.set()
        return await asyncio.shield(fut)

    async def _write_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    stored = await self._run(self._insert_group, [envs for envs, _ in group])
                except Exception as exc:  # every waiter learns its messages were not stored
                    for _, fut in group:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), n in zip(group, stored, strict=True):
                    if not fut.done():
                        fut.set_result(n)
            if self._closing and not self._pending:
                return

    def _insert_group(self, groups: list[Sequence[Envelope]]) -> list[int]:
        db = self._db
        now = self._clock()
        stored: list[int] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for envelopes in groups:
                before = db.total_changes
                db.executemany(
                    _INSERT,
                    [(e.source, e.message_id, e.type, e.body, e.received_at, now) for e in envelopes],
                )
                stored.append(db.total_changes - before)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
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


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
