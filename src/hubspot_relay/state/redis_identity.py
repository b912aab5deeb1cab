"""The identity map shared by every relay process, in Redis: the same methods as `IdentityMap`
(the planner runs them in a worker thread, so this one uses a synchronous client).

Ties read or written are kept in memory for `KNOWN_TTL_S` only, since another process may tie an
id anew; linking and remembering are Lua scripts, so that traits waiting for an email are never
left behind when two processes see the identify and the email at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis
from redis.typing import EncodableT

from ..delivery.identities import Known
from ..redis_values import text
from .identity import Forgot

KNOWN_TTL_S = 30.0
KNOWN_MAX = 200_000
_SEP = "\x1f"

# KEYS: ties hash, pending hash. ARGV: email, now, ids... Ties the ids; returns the traits that
# were waiting for them (JSON texts, in id order), taken.
_LINK = """
local taken = {}
for i = 3, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
  local waiting = redis.call('HGET', KEYS[2], ARGV[i])
  if waiting then
    taken[#taken + 1] = waiting
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return taken
"""

# KEYS: ties hash, pending hash. ARGV: traits JSON, ids... Keeps traits until an email is known,
# unless one of the ids has one by now: then returns it (the caller sends the traits with it).
# Waiting traits are a JSON array of the objects in arrival order, merged by the reader (Lua's
# cjson would round large numbers).
_REMEMBER = """
for i = 2, #ARGV do
  local email = redis.call('HGET', KEYS[1], ARGV[i])
  if email then return email end
end
for i = 2, #ARGV do
  local old = redis.call('HGET', KEYS[2], ARGV[i])
  if old then
    redis.call('HSET', KEYS[2], ARGV[i], string.sub(old, 1, -2) .. ',' .. ARGV[1] .. ']')
  else
    redis.call('HSET', KEYS[2], ARGV[i], '[' .. ARGV[1] .. ']')
  end
end
return false
"""


def _merged(texts: Iterable[str]) -> dict[str, Any]:
    """Waiting traits (JSON arrays of objects, oldest first) merged: later values win."""
    merged: dict[str, Any] = {}
    for chunk in texts:
        for traits in orjson.loads(chunk):
            merged.update(traits)
    return merged


# ARGV: prefix, take (1/0), then (source, id, email) triples: ties written at the end of a plan.
# Returns (source, id, traits JSON) for ids whose traits were waiting (taken, when `take`).
_LINK_MANY = """
local P, take = ARGV[1], ARGV[2] == '1'
local out = {}
for i = 3, #ARGV, 3 do
  local source, id, email = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', P .. ':id:ties:' .. source, id, email)
  if take then
    local pending = P .. ':id:pending:' .. source
    local waiting = redis.call('HGET', pending, id)
    if waiting then
      redis.call('HDEL', pending, id)
      out[#out + 1] = source
      out[#out + 1] = id
      out[#out + 1] = waiting
    end
  end
end
return out
"""


class RedisIdentityMap:
    def __init__(self, url: str, *, prefix: str = "hubspot-relay") -> None:
        self.prefix = prefix
        self._r = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self._link = self._r.register_script(_LINK)
        self._link_many = self._r.register_script(_LINK_MANY)
        self._remember = self._r.register_script(_REMEMBER)
        self._known: dict[tuple[str, str], tuple[str, float]] = {}
        # One plan's state (see `snapshot`): ties to write, ids known to have none, ids with traits waiting.
        self._buffer: dict[tuple[str, str], str] = {}
        self._absent: set[tuple[str, str]] = set()
        self._waiting: set[tuple[str, str]] = set()
        self._batching = False  # between `snapshot` and `flush`

    def close(self) -> None:
        self._r.close()

    def _key(self, *parts: str) -> str:
        return ":".join([self.prefix, "id", *parts])

    def _learn(self, source: str, id_: str, email: str) -> None:
        if len(self._known) >= KNOWN_MAX:
            self._known.clear()
        self._known[(source, id_)] = (email, time.monotonic())

    def _cached(self, source: str, id_: str) -> str | None:
        hit = self._known.get((source, id_))
        if hit is None or time.monotonic() - hit[1] > KNOWN_TTL_S:
            return None
        return hit[0]

    # ---- people ---------------------------------------------------------------------------

    def snapshot(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Known]:
        """Read the ties and waiting traits of everyone in a batch at once (two commands a
        source), and start the batch: the ties it makes are written by `flush`, at its end."""
        if self._buffer:
            self.flush(take=False)  # a plan that failed half-way: its ties stand
        self._batching = True
        out: dict[tuple[str, str], Known] = {}
        by_source: dict[str, list[str]] = {}
        for source, id_ in keys:
            by_source.setdefault(source, []).append(id_)
        for source, ids in by_source.items():
            for start in range(0, len(ids), 10_000):
                chunk = ids[start : start + 10_000]
                pipe = self._r.pipeline(transaction=False)
                pipe.hmget(self._key("ties", source), chunk)
                pipe.hmget(self._key("pending", source), chunk)
                ties, waiting = pipe.execute()
                for id_, email, traits in zip(chunk, ties, waiting, strict=True):
                    if email is not None:
                        self._learn(source, id_, email)
                    else:
                        self._absent.add((source, id_))
                    if traits is not None:
                        self._waiting.add((source, id_))
                    out[(source, id_)] = Known(email, _merged([traits]) if traits is not None else None)
        return out

    def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Write the ties buffered since `snapshot`; returns traits another process left waiting
        for those ids meanwhile (taken, unless `take` is False)."""
        buffered, self._buffer = self._buffer, {}
        self._batching = False
        self._absent.clear()
        self._waiting.clear()
        if not buffered:
            return {}
        out: dict[tuple[str, str], dict[str, Any]] = {}
        items = list(buffered.items())
        for start in range(0, len(items), 5_000):
            args: list[Any] = [self.prefix, "1" if take else "0"]
            for (source, id_), email in items[start : start + 5_000]:
                args += [source, id_, email]
            found = self._link_many(args=args)
            for i in range(0, len(found), 3):
                out[(found[i], found[i + 1])] = _merged([found[i + 2]])
        return out

    def email_for(self, source: str, ids: Sequence[str]) -> str | None:
        if not ids:
            return None
        for id_ in ids:
            if (known := self._cached(source, id_)) is not None:
                return known
        if all((source, id_) in self._absent for id_ in ids):
            return None
        for id_, email in zip(ids, self._r.hmget(self._key("ties", source), list(ids)), strict=True):
            if email is not None:
                self._learn(source, id_, text(email))
                return text(email)
        return None

    def link(self, source: str, ids: Sequence[str], email: str | None) -> tuple[str | None, dict[str, Any]]:
        email = email or self.email_for(source, ids)
        if email is None or not ids:
            return email, {}
        changed = [id_ for id_ in ids if self._cached(source, id_) != email]
        if not changed:
            return email, {}
        if self._batching and not any((source, id_) in self._waiting for id_ in changed):
            for id_ in changed:  # nothing waits for these: written with the batch's other ties
                self._buffer[(source, id_)] = email
                self._absent.discard((source, id_))
                self._learn(source, id_, email)
            return email, {}
        for id_ in changed:
            self._waiting.discard((source, id_))
        taken = self._link(
            keys=[self._key("ties", source), self._key("pending", source)],
            args=[email, time.time(), *changed],
        )
        for id_ in changed:
            self._learn(source, id_, email)
        return email, _merged(taken)

    def remember(self, source: str, ids: Sequence[str], traits: dict[str, Any]) -> str | None:
        """Keep traits until an email is known for one of `ids`; returns the email if another
        process tied one meanwhile (then nothing is kept: the caller sends the traits)."""
        email = self._remember(
            keys=[self._key("ties", source), self._key("pending", source)],
            args=[orjson.dumps(traits).decode(), *ids],
        )
        return str(email) if email else None

    def take_pending(self, source: str, ids: Sequence[str]) -> dict[str, Any]:
        texts = []
        key = self._key("pending", source)
        for id_ in ids:
            pipe = self._r.pipeline()
            pipe.hget(key, id_)
            pipe.hdel(key, id_)
            text, _ = pipe.execute()
            if text:
                texts.append(text)
        return _merged(texts)

    # ---- HubSpot ids ----------------------------------------------------------------------

    def contact(self, account: str, email: str) -> tuple[str | None, str | None]:
        pipe = self._r.pipeline(transaction=False)
        pipe.hget(self._key("contact", account), email.lower())
        pipe.hget(self._key("stage", account), email.lower())
        contact_id, stage = pipe.execute()
        return contact_id, stage

    def save_contacts(self, account: str, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        ids: dict[EncodableT, EncodableT] = {}  # redis-py's Mapping is invariant in its key
        stages: dict[EncodableT, EncodableT] = {}
        for email, contact_id, stage in rows:
            if contact_id is not None:
                ids[email.lower()] = contact_id
            if stage is not None:
                stages[email.lower()] = stage
        pipe = self._r.pipeline()
        if ids:
            pipe.hset(self._key("contact", account), mapping=ids)
        if stages:
            pipe.hset(self._key("stage", account), mapping=stages)
        pipe.execute()

    def record_ids(self, account: str, keys: Sequence[str], *, companies: bool = False) -> dict[str, str]:
        """The HubSpot ids of many contacts (by email) or companies (by groupId): one HMGET."""
        wanted = list(dict.fromkeys(keys if companies else [k.lower() for k in keys]))
        if not wanted:
            return {}
        found = self._r.hmget(self._key("company" if companies else "contact", account), wanted)
        return {k: text(v) for k, v in zip(wanted, found, strict=True) if v is not None}

    def company(self, account: str, group_id: str) -> str | None:
        value = self._r.hget(self._key("company", account), group_id)
        return str(value) if value is not None else None

    def save_company(self, account: str, group_id: str, company_id: str) -> None:
        self._r.hset(self._key("company", account), group_id, company_id)

    # ---- what status shows ----------------------------------------------------------------

    def count_dropped(self, account: str, object_type: str, dropped: Mapping[tuple[str, str], int]) -> None:
        if dropped:
            pipe = self._r.pipeline()
            for (key, reason), n in dropped.items():
                pipe.hincrby(self._key("dropped"), _SEP.join([account, object_type, key, reason]), n)
            pipe.execute()

    def count_skipped(self, account: str, skipped: Mapping[tuple[str, str], int]) -> None:
        if skipped:
            pipe = self._r.pipeline()
            for (source, reason), n in skipped.items():
                pipe.hincrby(self._key("skipped"), _SEP.join([account, source, reason]), n)
            pipe.execute()

    def skipped(self, account: str | None = None) -> list[tuple[str, str, str, int]]:
        rows = []
        for field, count in self._r.hgetall(self._key("skipped")).items():
            acct, source, reason = text(field).split(_SEP, 2)
            if account is None or acct == account:
                rows.append((acct, source, reason, int(count)))
        return sorted(rows, key=lambda r: -r[3])

    def dropped(self, account: str | None = None) -> list[tuple[str, str, str, str, int]]:
        rows = []
        for field, count in self._r.hgetall(self._key("dropped")).items():
            acct, object_type, key, reason = text(field).split(_SEP, 3)
            if account is None or acct == account:
                rows.append((acct, object_type, key, reason, int(count)))
        return sorted(rows, key=lambda r: (-r[4], r[2]))

    def set_problem(self, account: str, kind: str, message: str | None) -> None:
        field = _SEP.join([account, kind])
        if message is None:
            self._r.hdel(self._key("problems"), field)
            return
        old = self._r.hget(self._key("problems"), field)
        since = orjson.loads(old)["since"] if old else time.time()
        self._r.hset(self._key("problems"), field, orjson.dumps({"message": message, "since": since}))

    def set_paused(self, account: str, paused: bool, note: str = "paused by an operator") -> None:
        self.set_problem(account, "paused", note if paused else None)

    def is_paused(self, account: str) -> bool:
        return bool(self._r.hexists(self._key("problems"), _SEP.join([account, "paused"])))

    def forget(self, ids: Sequence[str], emails: Sequence[str]) -> Forgot:
        """The right to be forgotten (see IdentityMap.forget), in every source's hashes."""
        wanted = {e.strip().lower() for e in emails if e.strip()}
        drop = set(ids)
        sources = [k.split(":")[-1] for k in self._r.scan_iter(match=self._key("ties", "*"))]
        for source in sources:
            ties = self._key("ties", source)
            for id_, email in self._r.hscan_iter(ties):
                if id_ in drop:
                    wanted.add(str(email).lower())
        for source in sources:
            ties = self._key("ties", source)
            gone = [
                id_ for id_, email in self._r.hscan_iter(ties) if id_ in drop or str(email).lower() in wanted
            ]
            if gone:
                self._r.hdel(ties, *gone)
        for key in self._r.scan_iter(match=self._key("pending", "*")):
            if ids:
                self._r.hdel(key, *ids)
        contact_ids: dict[str, frozenset[str]] = {}
        for key in self._r.scan_iter(match=self._key("contact", "*")):
            if wanted:
                found = [text(c) for c in self._r.hmget(key, list(wanted)) if c is not None]
                if found:
                    contact_ids[text(key).removeprefix(self._key("contact", ""))] = frozenset(found)
        for key in [
            *self._r.scan_iter(match=self._key("contact", "*")),
            *self._r.scan_iter(match=self._key("stage", "*")),
        ]:
            if wanted:
                self._r.hdel(key, *wanted)
        self._known = {
            k: v for k, v in self._known.items() if k[1] not in drop and v[0].lower() not in wanted
        }
        return Forgot(frozenset(wanted), contact_ids)

    def problems(self) -> list[tuple[str, str, str, float]]:
        rows = []
        for field, value in self._r.hgetall(self._key("problems")).items():
            account, kind = text(field).split(_SEP, 1)
            data = orjson.loads(value)
            rows.append((account, kind, str(data["message"]), float(data["since"])))
        return sorted(rows, key=lambda r: r[3])
