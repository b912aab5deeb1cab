"""The right to be forgotten: deletion and suppression requests (Segment's regulation types), kept
durably with their status, and the set of people suppressed at ingest. In a SQLite file beside
the queue for one process, in Redis for every process sharing it (a suppression holds in all of
them at once).

Subjects are kept as `user:<userId>` and `email:<lowercased email>`."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
import redis

from ..redis_values import text
from ..translate.subjects import subject_key

# Segment's regulation types (its Public API): what each asks of the relay.
SUPPRESSING = ("SUPPRESS_WITH_DELETE", "SUPPRESS_ONLY")
DELETING = ("SUPPRESS_WITH_DELETE", "DELETE_ONLY")
TYPES = ("SUPPRESS_WITH_DELETE", "DELETE_ONLY", "SUPPRESS_ONLY", "UNSUPPRESS")
SUBJECT_TYPES = ("USER_ID", "EMAIL")
OPEN = ("INITIALIZED", "RUNNING")


@dataclass
class Regulation:
    id: str
    type: str
    subject_type: str
    subjects: list[str]
    status: str = "INITIALIZED"  # RUNNING, FINISHED, FAILED, PARTIAL_SUCCESS
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)  # what was done, and what failed

    @classmethod
    def new(cls, type_: str, subject_type: str, subjects: Iterable[str]) -> Regulation:
        return cls(uuid.uuid4().hex[:20], type_, subject_type, [s.strip() for s in subjects if s.strip()])

    @property
    def keys(self) -> list[str]:
        if self.subject_type == "DIGEST":  # done: only the digests were kept
            return list(self.subjects)
        return [subject_key(self.subject_type, s) for s in self.subjects]


class Regulations(Protocol):
    def save(self, reg: Regulation) -> None: ...
    def get(self, reg_id: str) -> Regulation | None: ...
    def unfinished(self) -> list[Regulation]: ...
    def suppress(self, keys: Iterable[str]) -> None: ...
    def unsuppress(self, keys: Iterable[str]) -> None: ...
    def suppressed(self) -> frozenset[str]: ...
    def erase_before(self, keys: Iterable[str], at: float) -> None: ...
    def erased(self) -> dict[str, float]: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS regulations (id TEXT PRIMARY KEY, status TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS suppressed (subject TEXT PRIMARY KEY, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS erased (subject TEXT PRIMARY KEY, before REAL NOT NULL);
"""


class SQLiteRegulations:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def save(self, reg: Regulation) -> None:
        reg.updated_at = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO regulations (id, status, body) VALUES (?, ?, ?)",
                (reg.id, reg.status, orjson.dumps(asdict(reg))),
            )
            if reg.status not in OPEN:  # the identifiers it held leave the write-ahead log too
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def get(self, reg_id: str) -> Regulation | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM regulations WHERE id = ?", (reg_id,)).fetchone()
        return Regulation(**orjson.loads(row[0])) if row else None

    def unfinished(self) -> list[Regulation]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM regulations WHERE status IN (?, ?)", OPEN).fetchall()
        return sorted((Regulation(**orjson.loads(r[0])) for r in rows), key=lambda r: r.created_at)

    def suppress(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO suppressed (subject, since) VALUES (?, ?)",
                [(k, time.time()) for k in keys],
            )

    def unsuppress(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM suppressed WHERE subject = ?", [(k,) for k in keys])

    def suppressed(self) -> frozenset[str]:
        with self._lock:
            return frozenset(r[0] for r in self._db.execute("SELECT subject FROM suppressed"))

    def erase_before(self, keys: Iterable[str], at: float) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT INTO erased (subject, before) VALUES (?, ?) ON CONFLICT (subject)"
                " DO UPDATE SET before = max(before, excluded.before)",
                [(k, at) for k in keys],
            )

    def erased(self) -> dict[str, float]:
        with self._lock:
            return {k: float(t) for k, t in self._db.execute("SELECT subject, before FROM erased")}

    def close(self) -> None:
        self._db.close()


class RedisRegulations:
    def __init__(self, url: str, *, prefix: str = "hubspot-relay") -> None:
        self._r = redis.Redis.from_url(url, health_check_interval=30)
        self._k = f"{prefix}:regulations"

    def save(self, reg: Regulation) -> None:
        reg.updated_at = time.time()
        pipe = self._r.pipeline()
        pipe.hset(self._k, reg.id, orjson.dumps(asdict(reg)))
        if reg.status in OPEN:
            pipe.sadd(f"{self._k}:open", reg.id)
        else:
            pipe.srem(f"{self._k}:open", reg.id)
        pipe.execute()

    def get(self, reg_id: str) -> Regulation | None:
        raw = self._r.hget(self._k, reg_id)
        return Regulation(**orjson.loads(raw)) if raw else None

    def unfinished(self) -> list[Regulation]:
        ids = [text(i) for i in self._r.smembers(f"{self._k}:open")]
        found = [self.get(i) for i in ids]
        return sorted((r for r in found if r is not None and r.status in OPEN), key=lambda r: r.created_at)

    def suppress(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self._r.sadd(f"{self._k}:suppressed", *keys)

    def unsuppress(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self._r.srem(f"{self._k}:suppressed", *keys)

    def suppressed(self) -> frozenset[str]:
        return frozenset(text(k) for k in self._r.smembers(f"{self._k}:suppressed"))

    def erase_before(self, keys: Iterable[str], at: float) -> None:
        pipe = self._r.pipeline()
        for k in keys:
            pipe.zadd(f"{self._k}:erased", {k: at}, gt=True)
        pipe.execute()

    def erased(self) -> dict[str, float]:
        # WITHSCORES answers (member, score) pairs; redis-py types the reply of every option at once
        pairs = cast("list[tuple[bytes, float]]", self._r.zrange(f"{self._k}:erased", 0, -1, withscores=True))
        return {text(k): float(t) for k, t in pairs}

    def close(self) -> None:
        self._r.close()
