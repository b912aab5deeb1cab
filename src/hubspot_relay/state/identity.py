"""What the relay has learned about people and HubSpot: persistent, one SQLite file.

- ids -> email: a userId or anonymousId is tied to an email by identify and alias, so that a
  later track without an email reaches the right contact;
- traits waiting for an email: an identify without one is remembered and sent with the
  contact's first upsert once the email is known;
- HubSpot ids of contacts and companies (by email, by groupId), and the lifecycle stage last set;
- what delivery dropped (keys that are not properties) and account problems, for `status`.

Every method is synchronous and quick; the delivery worker calls them from one thread. The
ids -> email ties this process has read or written are also kept in memory (write-through), so
that the usual track, whose email is already tied to its userId, costs no transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..delivery.identities import Known

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (source TEXT, id TEXT, email TEXT NOT NULL, updated_at REAL,
                                PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS pending (source TEXT, id TEXT, traits BLOB NOT NULL, updated_at REAL,
                                    PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS contacts (account TEXT, email TEXT, contact_id TEXT, lifecyclestage TEXT,
                                     PRIMARY KEY (account, email));
CREATE TABLE IF NOT EXISTS companies (account TEXT, group_id TEXT, company_id TEXT NOT NULL,
                                      PRIMARY KEY (account, group_id));
CREATE TABLE IF NOT EXISTS dropped (account TEXT, object_type TEXT, key TEXT, reason TEXT, count INTEGER,
                                    PRIMARY KEY (account, object_type, key, reason));
CREATE TABLE IF NOT EXISTS skipped (account TEXT, source TEXT, reason TEXT, count INTEGER,
                                    PRIMARY KEY (account, source, reason));
CREATE TABLE IF NOT EXISTS problems (account TEXT, kind TEXT, message TEXT, since REAL,
                                     PRIMARY KEY (account, kind));
"""


@dataclass(frozen=True)
class Forgot:
    """What forgetting a person removed that HubSpot must hear of: the emails their ids were
    tied to (with the ones given), and the HubSpot ids of their contacts, by account."""

    emails: frozenset[str] = frozenset()
    contact_ids: Mapping[str, frozenset[str]] = field(default_factory=dict)


# Ids -> email ties kept in memory; past this many the memory starts again (the file has them all).
KNOWN_IDS_MAX = 200_000


class Ties(Protocol):
    """Who is who: ids tied to emails by identify and alias, and traits kept for an id with none."""

    def email_for(self, source: str, ids: Sequence[str]) -> str | None: ...
    def link(
        self, source: str, ids: Sequence[str], email: str | None
    ) -> tuple[str | None, dict[str, Any]]: ...
    def remember(self, source: str, ids: Sequence[str], traits: dict[str, Any]) -> str | None: ...
    def snapshot(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Known]: ...
    def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, Any]]: ...


class RecordIds(Protocol):
    """HubSpot's ids of the contacts (by email) and companies (by groupId) delivery made."""

    def contact(self, account: str, email: str) -> tuple[str | None, str | None]: ...
    def save_contacts(self, account: str, rows: Iterable[tuple[str, str | None, str | None]]) -> None: ...
    def company(self, account: str, group_id: str) -> str | None: ...
    def save_company(self, account: str, group_id: str, company_id: str) -> None: ...
    def record_ids(self, account: str, keys: Sequence[str], *, companies: bool = False) -> dict[str, str]: ...


class AccountState(Protocol):
    """What status shows of an account and what an operator sets: keys dropped, messages
    skipped and why, problems, pauses."""

    def count_dropped(
        self, account: str, object_type: str, dropped: Mapping[tuple[str, str], int]
    ) -> None: ...
    def dropped(self, account: str | None = None) -> list[tuple[str, str, str, str, int]]: ...
    def count_skipped(self, account: str, skipped: Mapping[tuple[str, str], int]) -> None: ...
    def skipped(self, account: str | None = None) -> list[tuple[str, str, str, int]]: ...
    def set_problem(self, account: str, kind: str, message: str | None) -> None: ...
    def set_paused(self, account: str, paused: bool, note: str = ...) -> None: ...
    def is_paused(self, account: str) -> bool: ...
    def problems(self) -> list[tuple[str, str, str, float]]: ...


class Forgetting(Protocol):
    """The right to be forgotten: everything held of a person, gone."""

    def forget(self, ids: Sequence[str], emails: Sequence[str]) -> Forgot: ...


class Identities(Ties, RecordIds, AccountState, Forgetting, Protocol):
    """The identity map as delivery holds it: this file's (one process) or Redis's (shared).
    Code that needs one concern asks for that protocol alone."""

    def close(self) -> None: ...


class IdentityMap:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # forgotten ties are overwritten, not left behind
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], str] = {}  # (source, id) -> email, as stored

    def _learn(self, source: str, id_: str, email: str) -> None:
        if len(self._known) >= KNOWN_IDS_MAX:
            self._known.clear()
        self._known[(source, id_)] = email

    def close(self) -> None:
        self._db.close()

    def _tx(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ---- people ---------------------------------------------------------------------------

    def forget(self, ids: Sequence[str], emails: Sequence[str]) -> Forgot:
        """The right to be forgotten: every tie of these ids and emails, traits kept for them and
        their contacts' ids go. Returns the emails they were tied to (and the ones given) and the
        contacts' HubSpot ids, for HubSpot's deletion."""
        wanted = {e.strip().lower() for e in emails if e.strip()}
        with self._lock:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                wanted |= {
                    r[0] for r in self._db.execute(f"SELECT email FROM ids WHERE id IN ({marks})", chunk)
                }
        found = sorted(wanted)
        contact_ids: dict[str, set[str]] = {}
        with self._lock:
            for chunk in _chunks(found):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT account, contact_id FROM contacts WHERE email IN ({marks})"
                for account, contact_id in self._db.execute(sql, chunk):
                    if contact_id:
                        contact_ids.setdefault(account, set()).add(str(contact_id))
        self._tx("DELETE FROM ids WHERE id = ?", [(i,) for i in ids])
        self._tx("DELETE FROM ids WHERE email = ?", [(e,) for e in found])
        self._tx("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])
        self._tx("DELETE FROM contacts WHERE email = ?", [(e,) for e in found])
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._known = {k: v for k, v in self._known.items() if k[1] not in ids and v.lower() not in wanted}
        return Forgot(frozenset(wanted), {a: frozenset(c) for a, c in contact_ids.items()})

    def email_for(self, source: str, ids: Sequence[str]) -> str | None:
        for id_ in ids:
            known = self._known.get((source, id_))
            if known is not None:
                return known
            row = self._one("SELECT email FROM ids WHERE source = ? AND id = ?", (source, id_))
            if row:
                self._learn(source, id_, str(row[0]))
                return str(row[0])
        return None

    def link(self, source: str, ids: Sequence[str], email: str | None) -> tuple[str | None, dict[str, Any]]:
        """Tie `ids` together (to `email`, or to the email one of them already has).

        Returns the email now known for them and the traits that were waiting for it (taken).
        """
        email = email or self.email_for(source, ids)
        if email is None or not ids:
            return email, {}
        # An id already tied to this email has nothing waiting (traits wait only for ids with no
        # email), so only the ids whose tie is new or changed are written and looked up.
        changed = [id_ for id_ in ids if self._known.get((source, id_)) != email]
        if not changed:
            return email, {}
        now = time.time()
        self._tx(
            "INSERT INTO ids (source, id, email, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source, id) DO UPDATE SET email = excluded.email, updated_at = excluded.updated_at",
            [(source, id_, email, now) for id_ in changed],
        )
        for id_ in changed:
            self._learn(source, id_, email)
        return email, self.take_pending(source, changed)

    def remember(self, source: str, ids: Sequence[str], traits: dict[str, Any]) -> str | None:
        """Keep traits until an email is known for one of `ids` (later values win). Returns None:
        one process owns this map, so no email can appear between the caller's look-up and this
        (the shared map in Redis may return one)."""
        now = time.time()
        rows = []
        for id_ in ids:
            row = self._one("SELECT traits FROM pending WHERE source = ? AND id = ?", (source, id_))
            merged = {**(orjson.loads(row[0]) if row else {}), **traits}
            rows.append((source, id_, orjson.dumps(merged), now))
        self._tx("INSERT OR REPLACE INTO pending (source, id, traits, updated_at) VALUES (?, ?, ?, ?)", rows)
        return None

    def take_pending(self, source: str, ids: Sequence[str]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        found = []
        for id_ in ids:
            row = self._one("SELECT traits FROM pending WHERE source = ? AND id = ?", (source, id_))
            if row:
                merged.update(orjson.loads(row[0]))
                found.append((source, id_))
        if found:
            self._tx("DELETE FROM pending WHERE source = ? AND id = ?", found)
        return merged

    def snapshot(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Known]:
        """What the map knows of each id: its email, or the traits kept for it (an id that has an
        email has none waiting)."""
        out: dict[tuple[str, str], Known] = {}
        for source, id_ in keys:
            email = self.email_for(source, [id_])
            waiting = None
            if email is None:
                row = self._one("SELECT traits FROM pending WHERE source = ? AND id = ?", (source, id_))
                waiting = orjson.loads(row[0]) if row else None
            out[(source, id_)] = Known(email, waiting)
        return out

    def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Nothing is buffered here: ties are written as they are made (the shared map writes a
        batch's ties at once)."""
        return {}

    # ---- HubSpot ids ----------------------------------------------------------------------

    def contact(self, account: str, email: str) -> tuple[str | None, str | None]:
        row = self._one(
            "SELECT contact_id, lifecyclestage FROM contacts WHERE account = ? AND email = ?",
            (account, email.lower()),
        )
        return (row[0], row[1]) if row else (None, None)

    def save_contacts(self, account: str, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """(email, contact id, lifecycle stage set) for contacts HubSpot answered about."""
        self._tx(
            "INSERT INTO contacts (account, email, contact_id, lifecyclestage) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account, email) DO UPDATE SET"
            " contact_id = coalesce(excluded.contact_id, contact_id),"
            " lifecyclestage = coalesce(excluded.lifecyclestage, lifecyclestage)",
            [(account, e.lower(), cid, stage) for e, cid, stage in rows],
        )

    def record_ids(self, account: str, keys: Sequence[str], *, companies: bool = False) -> dict[str, str]:
        """The HubSpot ids of many contacts (by email) or companies (by groupId), at once."""
        table, key, column = (
            ("companies", "group_id", "company_id") if companies else ("contacts", "email", "contact_id")
        )
        wanted = list(dict.fromkeys(keys if companies else [k.lower() for k in keys]))
        out: dict[str, str] = {}
        with self._lock:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {key}, {column} FROM {table} "
                sql += f"WHERE account = ? AND {key} IN ({marks})"
                for found, record_id in self._db.execute(sql, [account, *chunk]):
                    if record_id:
                        out[found] = str(record_id)
        return out

    def company(self, account: str, group_id: str) -> str | None:
        row = self._one(
            "SELECT company_id FROM companies WHERE account = ? AND group_id = ?", (account, group_id)
        )
        return str(row[0]) if row else None

    def save_company(self, account: str, group_id: str, company_id: str) -> None:
        self._tx(
            "INSERT OR REPLACE INTO companies (account, group_id, company_id) VALUES (?, ?, ?)",
            [(account, group_id, company_id)],
        )

    # ---- what status shows ----------------------------------------------------------------

    def count_dropped(self, account: str, object_type: str, dropped: Mapping[tuple[str, str], int]) -> None:
        """Keys dropped from records, by (key, reason): a batch's, counted at once."""
        if dropped:
            self._tx(
                "INSERT INTO dropped (account, object_type, key, reason, count) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET count = count + excluded.count",
                [(account, object_type, k, r, n) for (k, r), n in dropped.items()],
            )

    def count_skipped(self, account: str, skipped: Mapping[tuple[str, str], int]) -> None:
        """Messages skipped, by (source, reason): status shows why, per source and account."""
        self._tx(
            "INSERT INTO skipped (account, source, reason, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET count = count + excluded.count",
            [(account, source, reason, n) for (source, reason), n in skipped.items()],
        )

    def skipped(self, account: str | None = None) -> list[tuple[str, str, str, int]]:
        sql = "SELECT account, source, reason, count FROM skipped"
        params: tuple[Any, ...] = ()
        if account:
            sql, params = sql + " WHERE account = ?", (account,)
        return sorted(((a, s, r, int(n)) for a, s, r, n in self._all(sql, params)), key=lambda r: -r[3])

    def dropped(self, account: str | None = None) -> list[tuple[str, str, str, str, int]]:
        sql = "SELECT account, object_type, key, reason, count FROM dropped"
        params: tuple[Any, ...] = ()
        if account:
            sql, params = sql + " WHERE account = ?", (account,)
        return [tuple(r) for r in self._all(sql + " ORDER BY count DESC, key", params)]

    def set_problem(self, account: str, kind: str, message: str | None) -> None:
        if message is None:
            self._tx("DELETE FROM problems WHERE account = ? AND kind = ?", [(account, kind)])
        else:
            self._tx(
                "INSERT INTO problems (account, kind, message, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET message = excluded.message",
                [(account, kind, message, time.time())],
            )

    def set_paused(self, account: str, paused: bool, note: str = "paused by an operator") -> None:
        """An operator's pause survives restarts: it is kept as the account's `paused` problem."""
        self.set_problem(account, "paused", note if paused else None)

    def is_paused(self, account: str) -> bool:
        return (
            self._one("SELECT 1 FROM problems WHERE account = ? AND kind = 'paused'", (account,)) is not None
        )

    def problems(self) -> list[tuple[str, str, str, float]]:
        return [
            tuple(r) for r in self._all("SELECT account, kind, message, since FROM problems ORDER BY since")
        ]


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
