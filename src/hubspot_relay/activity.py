"""What happened lately, kept for the people watching: counts per minute over the last hour (the
console's charts, the terminal's periodic summary) and what became of the latest messages (the
console's live debugger: the HubSpot calls each went into, HubSpot's answer, or why it was
skipped).

Both are in memory and bounded, and cost a dictionary update per message or call. With a Redis
queue, each process keeps its own; the console says which process answered.
"""

from __future__ import annotations

import contextvars
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

MINUTES = 60
TRACED = 500  # messages the debugger remembers


class Activity:
    """Counts per minute, by key (`received:<source>`, `delivered:<source>`, `calls:<account>:<status>`
    and so on), for the last `MINUTES` minutes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._minutes: OrderedDict[int, Counter[str]] = OrderedDict()
        self.total: Counter[str] = Counter()  # since the start: the summary tells the difference
        self.started = clock()

    def add(self, key: str, n: int = 1) -> None:
        if n <= 0:
            return
        minute = int(self.clock() // 60)
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = Counter()
            while len(self._minutes) > MINUTES + 1:
                self._minutes.popitem(last=False)
        bucket[key] += n
        self.total[key] += n

    def series(self, minutes: int = MINUTES) -> dict[str, Any]:
        """{"start": the first minute's start (epoch s), "keys": {key: [count per minute, oldest first]}}."""
        now = int(self.clock() // 60)
        first = now - minutes + 1
        keys: dict[str, list[int]] = {}
        for minute, bucket in self._minutes.items():
            if minute < first:
                continue
            for key, n in bucket.items():
                keys.setdefault(key, [0] * minutes)[minute - first] += n
        return {"start": first * 60, "minutes": minutes, "keys": keys}

    def since(self, seconds: float) -> Counter[str]:
        """Totals over about the last `seconds` (whole minutes: the summary's period)."""
        now = self.clock()
        out: Counter[str] = Counter()
        for minute, bucket in self._minutes.items():
            if (minute + 1) * 60 > now - seconds:
                out.update(bucket)
        return out


_SUMMARY = ("received", "delivered", "skipped", "waiting", "retrying", "dead")


def summary(delta: Counter[str], seconds: float) -> str | None:
    """The terminal's one line about the last `seconds` (None when nothing happened)."""
    if not +delta:
        return None
    by_kind: Counter[str] = Counter()
    refused = 0
    for key, n in delta.items():
        kind, _, rest = key.partition(":")
        if kind == "calls":
            by_kind["calls"] += n
            status = rest.rpartition(":")[2]
            refused += n if status == "error" or (status.isdigit() and int(status) >= 400) else 0
        elif kind in _SUMMARY or kind == "refused":
            by_kind[kind] += n
    parts = [f"{kind} {by_kind[kind]:,}" for kind in _SUMMARY]
    if by_kind["refused"]:
        parts.append(f"refused at ingest {by_kind['refused']:,}")
    calls = f"HubSpot calls {by_kind['calls']:,}" + (f" ({refused:,} failed)" if refused else "")
    return f"last {seconds:.0f} s: " + ", ".join(parts) + "; " + calls


@dataclass
class Traced:
    """One message as the debugger shows it."""

    source: str
    message_id: str
    type: str
    at: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = ""  # delivered, skipped, waiting, retrying, dead
    reason: str = ""


class Trace:
    """The latest messages delivery handled, with the calls each went into."""

    def __init__(self, size: int = TRACED, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._by_id: OrderedDict[tuple[str, str], Traced] = OrderedDict()

    def _get(self, source: str, message_id: str, mtype: str) -> Traced:
        key = (source, message_id)
        t = self._by_id.get(key)
        if t is None:
            t = self._by_id[key] = Traced(source, message_id, mtype, self.clock())
            while len(self._by_id) > self.size:
                self._by_id.popitem(last=False)
        else:
            self._by_id.move_to_end(key)
        return t

    def call(self, messages: Iterable[tuple[str, str, str]], step: dict[str, Any]) -> None:
        for source, message_id, mtype in messages:
            self._get(source, message_id, mtype).steps.append(step)

    def settled(self, source: str, message_id: str, mtype: str, outcome: str, reason: str = "") -> None:
        t = self._get(source, message_id, mtype)
        t.outcome, t.reason, t.at = outcome, reason, self.clock()

    def forget(self, source: str, message_id: str) -> None:
        """A forgotten person's message leaves the debugger too."""
        self._by_id.pop((source, message_id), None)

    def get(self, source: str, message_id: str) -> Traced | None:
        return self._by_id.get((source, message_id))

    def latest(self, limit: int = 100) -> list[Traced]:
        return list(reversed(self._by_id.values()))[:limit]


ACTIVITY = Activity()
TRACE = Trace()

# The messages (source, messageId, type) the HubSpot call being made carries: set by the sender
# around a batch call, read by the client when HubSpot answers.
_carrying: contextvars.ContextVar[Sequence[tuple[str, str, str]]] = contextvars.ContextVar(
    "carrying", default=()
)


@contextmanager
def carrying(messages: Sequence[tuple[str, str, str]]) -> Any:
    token = _carrying.set(messages)
    try:
        yield
    finally:
        _carrying.reset(token)


def record_call(account: str, method: str, path: str, status: int | str, inputs: int, note: str = "") -> None:
    """One answered (or failed) HubSpot call: counted per minute, and traced on its messages."""
    ACTIVITY.add(f"calls:{account}:{status}")
    ACTIVITY.add(f"endpoint:{account}:{method} {_generic(path)}:{status}")
    messages = _carrying.get()
    if messages:
        step = {"call": f"{method} {path}", "status": status, "inputs": inputs, "at": time.time()}
        if note:
            step["answer"] = note[:300]
        TRACE.call(messages, step)


def _generic(path: str) -> str:
    """A path without the ids in it, so that endpoints group (`/crm/v4/objects/companies/{id}/...`)."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))
