"""What becomes of each leased message, and the one place that acks, hands back, retries and
dead-letters: delivery records outcomes in a `Settlement` while it works, then `settle` applies
them to the queue, as `hubspot/verdicts.py` (what HubSpot's answers mean) says."""

from __future__ import annotations

import asyncio
import random
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter

from ..activity import ACTIVITY, TRACE
from ..hubspot.errors import HubSpotError
from ..hubspot.verdicts import Verdict, problem, verdict
from ..queue.protocol import Leased, Outcome, Queue
from ..translate.subjects import FORGOTTEN

log = structlog.get_logger("hubspot_relay.deliver")

SETTLED = Counter("hubspot_relay_settled_messages", "Messages settled by delivery", ["account", "outcome"])
SKIPPED_BECAUSE = Counter(
    "hubspot_relay_skipped_because",
    "Messages skipped, by why (end-user consent, integrations off, sent by the browser, ...)",
    ["account", "reason"],
)


@dataclass
class Settlement:
    """What becomes of each leased message: ok unless something says otherwise."""

    retry: dict[int, tuple[float, str]] = field(default_factory=dict)  # id -> (delay, reason)
    dead: dict[int, str] = field(default_factory=dict)
    patient: set[int] = field(default_factory=set)  # retries that do not age (a daily limit)
    carried: set[int] = field(default_factory=set)  # to hand back for a later cycle (see `busy`)
    deferred: set[int] = field(default_factory=set)  # of those, a partial call's: they wait for more
    released: set[int] = field(default_factory=set)  # handed back already, right after planning
    acked: set[int] = field(default_factory=set)  # delivered and acked already, call by call
    planned: asyncio.Event | None = None  # set once planned: the next lease may go ahead
    touched: set[str] = field(default_factory=set)  # contacts and companies this batch holds
    more_waiting: bool = False  # its lease was full: more is queued behind it
    messages: dict[int, Leased] = field(default_factory=dict)  # what the batch carries, by id
    skipped: set[int] = field(default_factory=set)  # nothing for HubSpot (sent by the browser, ...)
    skip_reasons: dict[int, str] = field(default_factory=dict)  # of those, why when not the usual
    waiting: set[int] = field(default_factory=set)  # traits kept until the user's email is known
    owed: Tally[int] = field(default_factory=Tally)  # calls a message's delivery needs
    paid: Tally[int] = field(default_factory=Tally)  # of those, the ones that went through

    def absorb(self, other: Settlement) -> None:
        """Take what planning decided (`Plan.verdicts`) into the batch's settlement."""
        for mid, (delay, reason) in other.retry.items():
            self.fail([mid], reason, retry_in=delay, patient=mid in other.patient)
        for mid, reason in other.dead.items():
            self.fail([mid], reason)
        self.carried |= other.carried
        self.deferred |= other.deferred
        self.skipped |= other.skipped
        self.skip_reasons |= other.skip_reasons
        self.waiting |= other.waiting

    def outcome(self, mid: int) -> Outcome:
        """How a finished message is counted: delivered when it needed a call (or a tie in the
        identity map), else waiting for an email, else skipped."""
        if self.owed[mid] or (mid not in self.waiting and mid not in self.skipped):
            return "delivered"
        return "waiting" if mid in self.waiting else "skipped"

    def skip(self, mid: int, reason: str) -> None:
        """Nothing for HubSpot, for a reason people should see (end-user consent)."""
        self.skipped.add(mid)
        self.skip_reasons[mid] = reason

    def owe(self, ids: Sequence[int]) -> None:
        self.owed.update(set(ids))

    def pay(self, ids: Sequence[int]) -> None:
        self.paid.update(set(ids))

    def unfinished(self, ids: Sequence[int]) -> list[int]:
        """Messages not yet wholly delivered (a message that needed no call is finished)."""
        return [i for i in ids if self.paid[i] < self.owed[i]]

    def fail(
        self, ids: Sequence[int], reason: str, *, retry_in: float | None = None, patient: bool = False
    ) -> None:
        for i in ids:
            if retry_in is not None:
                self.retry[i] = (max(retry_in, self.retry.get(i, (0.0, ""))[0]), reason)
                self.dead.pop(i, None)
                if patient:
                    self.patient.add(i)
            elif i not in self.retry:
                self.dead.setdefault(i, reason)


def refuse(
    e: HubSpotError,
    ids: Sequence[int],
    s: Settlement,
    *,
    report: Callable[[str, str], None] | None = None,
) -> Verdict:
    """Settle `ids` as the table says for `e`; an account's refusal is also handed to `report`
    (its problem's name, the reason in words), so that operators see it once, not per message."""
    v = verdict(e)
    name, reason = problem(e)
    if v.account and report is not None:
        report(name, reason)
    s.fail(ids, reason, retry_in=0.0 if v.retry else None, patient=v.patient)
    return v


async def ack_paid(queue: Queue, account: str, s: Settlement, ids: Sequence[int]) -> None:
    """Ack at once the messages among `ids` whose every call has gone through: a crash then
    redoes only what was not delivered, and a partition changes hands sooner. An optimisation
    only: if it fails, the batch's settlement acks them (or says why not)."""
    finished = [
        i for i in ids if s.paid[i] >= s.owed[i] and i not in s.retry and i not in s.dead and i not in s.acked
    ]
    if not finished:
        return
    try:
        await queue.ack(finished)
    except Exception:
        log.warning("acking delivered messages early failed", account=account, exc_info=True)
        return
    s.acked.update(finished)


async def hand_back(queue: Queue, ids: Sequence[int]) -> None:
    """Leased messages back in line, visible at once, the attempt not counted: what must wait for
    a batch in flight, a stop, or what a store failure left leased."""
    if ids:
        await queue.release(sorted(ids))


async def hand_back_carried(queue: Queue, s: Settlement) -> None:
    """What planning handed back, in line again now (ahead of whatever the next lease takes)."""
    if s.carried:
        await hand_back(queue, list(s.carried))
        s.released |= s.carried
        s.carried = set()


def backoff(attempts: int, jitter: float | None = None) -> float:
    """Exponential, with jitter: 1 s, 2 s, 4 s ... up to an hour (`jitter` in [0, 1), drawn
    when not given)."""
    jitter = random.random() if jitter is None else jitter
    return min(3600.0, 2.0 ** max(0, min(attempts - 1, 12))) * (0.5 + jitter)


async def settle(
    queue: Queue, account: str, leased: list[Leased], s: Settlement, *, retry_max_age_s: float, now: float
) -> Tally[tuple[str, str]]:
    """Ack, hand back, retry (with backoff, dead once past `retry_max_age_s`) or dead-letter each
    leased message as `s` says. The messages of one batch that failed alike come back together
    (one jitter per batch: jitter spreads batches apart, not the messages of one), so that they
    fill a call again, in one write each. Returns how many were skipped, by (source, reason)."""
    await hand_back(queue, list(s.carried))
    skipped_because: Tally[tuple[str, str]] = Tally()
    done = s.carried | s.released | s.acked
    ok = [m.id for m in leased if m.id not in s.retry and m.id not in s.dead and m.id not in done]
    by_outcome: dict[Outcome, list[int]] = {}
    for i in ok:
        by_outcome.setdefault(s.outcome(i), []).append(i)
    by_id = {m.id: m for m in leased}
    for outcome, ids in by_outcome.items():
        await queue.ack(ids, outcome=outcome)
        SETTLED.labels(account, outcome).inc(len(ids))
        if outcome != "skipped":
            _note(by_id, ids, outcome)
            continue
        for reason in {s.skip_reasons.get(i, "") for i in ids}:
            because = [i for i in ids if s.skip_reasons.get(i, "") == reason]
            SKIPPED_BECAUSE.labels(account, reason or "nothing for HubSpot").inc(len(because))
            skipped_because.update((by_id[i].source, reason or "nothing for HubSpot") for i in because)
            _note(by_id, because, outcome, reason)
    forgotten = [i for i, reason in s.skip_reasons.items() if reason == FORGOTTEN]
    if forgotten:  # acked as skipped, then deleted for good (the right to be forgotten)
        await queue.erase_ids(forgotten)
    SETTLED.labels(account, "delivered").inc(len(s.acked))
    _note(by_id, [i for i in s.acked if i in by_id], "delivered")
    jitter = random.random()
    too_old: dict[str, list[int]] = {}
    later: dict[tuple[float, str], list[int]] = {}
    for mid, (delay, reason) in s.retry.items():
        m = by_id[mid]
        if mid not in s.patient and now - m.received_at > retry_max_age_s:
            too_old.setdefault(f"gave up after {m.attempts} attempts: {reason}", []).append(mid)
        else:
            later.setdefault((max(delay, backoff(m.attempts, jitter)), reason), []).append(mid)
    for (delay, reason), ids in later.items():
        await queue.retry(ids, delay, reason)
        SETTLED.labels(account, "retried").inc(len(ids))
        _note(by_id, ids, "retrying", f"{reason} (again in {delay:.0f} s)")
    for reason, ids in too_old.items():
        await queue.dead_letter(ids, reason)
        SETTLED.labels(account, "dead").inc(len(ids))
        _note(by_id, ids, "dead", reason)
    for reason in set(s.dead.values()):
        ids = [i for i, r in s.dead.items() if r == reason]
        await queue.dead_letter(ids, reason)
        _note(by_id, ids, "dead", reason)
    SETTLED.labels(account, "dead").inc(len(s.dead))
    if s.dead:
        log.warning(
            "messages dead-lettered",
            account=account,
            count=len(s.dead),
            first_reason=next(iter(s.dead.values()))[:300],
        )
    return skipped_because


_WHY = {
    "skipped": "nothing for HubSpot: sent by HubSpot's script in the browser, a source with HubSpot off, "
    "or a call this mode does not make",
    "waiting": "traits kept until an identify or alias gives this user's email",
}


def _note(by_id: dict[int, Leased], ids: Sequence[int], outcome: str, reason: str = "") -> None:
    """For the people watching: counted per minute, and on the debugger's line for each message."""
    sources: Tally[str] = Tally()
    for i in ids:
        m = by_id.get(i)
        if m is None:
            continue
        sources[m.source] += 1
        TRACE.settled(m.source, m.message_id, m.type, outcome, reason or _WHY.get(outcome, ""))
    for source, n in sources.items():
        ACTIVITY.add(f"{outcome}:{source}", n)
