"""The durable queue's contract, shared by the SQLite (embedded) and Redis (scale-out) backends:
delivery, the operations API and the demo view use only this, whichever backend runs.

A message goes: appended (ready) -> leased by a worker -> acked (delivered), or retried later,
or dead-lettered with a reason; dead letters can be replayed. A lease that is neither acked nor
retried in time (a crashed worker) makes the message visible again: delivery is at-least-once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal, NamedTuple, Protocol

# How an acked message ended: HubSpot has it; nothing was for HubSpot (the browser sent it, a
# disabled source, a call legacy mode does not make); or its traits wait for the user's email.
Outcome = Literal["delivered", "skipped", "waiting"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "skipped", "waiting")


class State(IntEnum):
    READY = 0
    LEASED = 1
    RETRYING = 2
    DELIVERED = 3
    DEAD = 4


class Envelope(NamedTuple):
    """An accepted message as ingest hands it to the queue (a tuple: ingest makes many)."""

    source: str
    message_id: str
    type: str
    body: bytes  # the message's JSON as the client sent it (see segment.messages.stamped)
    received_at: float
    sent_at: str | None = None  # the request's sentAt, for the clock-skew correction
    user: str = ""  # userId, else anonymousId: a partitioned queue keeps one user's messages together


@dataclass(frozen=True, slots=True)
class Leased:
    """A message handed to a worker, which must ack, retry or dead-letter it by `id`."""

    id: int
    source: str
    message_id: str
    type: str
    body: bytes
    received_at: float
    sent_at: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    source: str
    message_id: str
    type: str
    reason: str
    attempts: int
    failed_at: float
    body: bytes


@dataclass(slots=True)
class SourceCounts:
    queued: int = 0
    in_flight: int = 0
    retrying: int = 0
    delivered: int = 0
    dead: int = 0
    skipped: int = 0
    waiting: int = 0  # acked with their traits kept until an identify or alias gives an email
    oldest_queued_at: float | None = None  # arrival of the oldest message waiting (queued or retrying)

    def as_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "in_flight": self.in_flight,
            "retrying": self.retrying,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "waiting": self.waiting,
            "dead": self.dead,
        }


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which dead letters to re-queue; empty fields match everything."""

    source: str | None = None
    reason_contains: str | None = None
    message_ids: Sequence[str] = field(default_factory=tuple)


class Queue(Protocol):
    async def open(self, *, appends: bool = True) -> None:
        """Ready to use; `appends=False` for a reader (the CLI): no writer is started."""
        ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Write one tiny value: raises what the store raises when it cannot take writes (Redis
        unreachable or refusing writes, a disk failing), so that /health can tell."""
        ...

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        """Store messages durably; returns how many were new (a repeated messageId is not)."""
        ...

    async def lease(
        self, limit: int, lease_seconds: float, sources: Sequence[str] | None = None
    ) -> list[Leased]:
        """Take up to `limit` visible messages, oldest first, hiding them for `lease_seconds`."""
        ...

    async def ack(self, ids: Sequence[int], outcome: Outcome = "delivered") -> None:
        """Done with these messages; `outcome` says how they are counted."""
        ...

    async def release(self, ids: Sequence[int]) -> None:
        """Hand leased messages back, visible at once, the attempt not counted (a stop, or a
        message that must wait for a batch in flight)."""
        ...

    async def retry(self, ids: Sequence[int], delay_seconds: float, error: str) -> None: ...

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None: ...

    async def dead_letters(
        self, limit: int = 100, filter: ReplayFilter | None = None
    ) -> list[DeadLetter]: ...

    async def replay(self, filter: ReplayFilter | None = None) -> int:
        """Make matching dead letters ready again; returns how many."""
        ...

    async def counts(self) -> dict[str, SourceCounts]: ...

    async def pending_counts(self) -> dict[str, int]:
        """Undelivered messages per source (what back-pressure limits)."""
        ...

    async def erase(self, match: Callable[[bytes], bool]) -> list[tuple[str, str]]:
        """Delete for good the settled messages (delivered and kept for dedupe, dead-lettered) whose
        body `match`es: the right to be forgotten. Returns their (source, messageId)."""
        ...

    async def erase_ids(self, ids: Sequence[int]) -> None:
        """Delete for good these settled messages (a forgotten person's, just skipped)."""
        ...

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered messages past the window in which clients retry; returns how many."""
        ...

    async def recent(self, limit: int = 20) -> list[tuple[str, str, int, str | None, bytes]]:
        """The newest messages, newest first: (message id, type, state, last error, body)."""
        ...
