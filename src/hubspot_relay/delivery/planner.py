"""Planning a leased batch: translate each message, resolve who it is about, and coalesce the
lot into the calls to make (one upsert per contact in message order, one per company, events in
order). It reads and writes the identity map, so it runs in a worker thread; it makes no call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ..errors import MappingError
from ..options import DeliveryOptions
from ..queue.protocol import Leased
from ..segment.messages import stamped
from ..translate import CompanyUpdate, ContactUpdate, Event, Link, Membership, Skip, consent, translate
from ..translate.mappings import Mapping, records
from ..translate.operations import ContactRef, Subscription
from ..translate.segment import message_ids
from ..translate.subjects import FORGOTTEN, Forgotten
from .identities import Overlay, Snapshot
from .plan import Plan, Taking
from .settlement import Settlement
from .stages import not_here, stages_for
from .stages.companies import LEGACY_GROUPS
from .stages.contacts import upsert
from .stages.objects import Mapped

log = structlog.get_logger("hubspot_relay.deliver")
# Why a message is skipped, where translation does not say (status shows these per source).
SOURCE_OFF = "the source has HubSpot switched off"
__all__ = ["LEGACY_GROUPS", "SOURCE_OFF", "Plan", "Planner", "Translated"]


@dataclass
class Translated:
    """A leased batch translated: each message with its operations (a `Mapped` last, for the
    records the account's mappings make of it)."""

    messages: list[tuple[Leased, list[Any]]]


def _ids_of(op: Any) -> tuple[str, ...]:
    if isinstance(op, Link):
        return tuple(op.ids)
    if isinstance(op, ContactUpdate | Event | Membership | Subscription):
        return tuple(op.ref.ids)
    if isinstance(op, CompanyUpdate):
        return tuple(op.member.ids)
    if isinstance(op, Mapped):  # a mapped record's buyer may be known by the message's ids only
        return tuple(message_ids(op.message))
    return ()


class Planner:
    def __init__(
        self,
        account_name: str,
        options: DeliveryOptions,
        *,
        legacy: bool = False,
        disabled: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        mappings: Sequence[Mapping] = (),
        consent: dict[str, tuple[str, ...]] | None = None,
        forgotten: Callable[[], Forgotten] | None = None,
    ) -> None:
        self.mappings = tuple(mappings)
        self.consent = consent or {}  # source -> the consent categories HubSpot is mapped to
        self.forgotten = forgotten  # who the right to be forgotten covers (a snapshot a call)
        self.account_name = account_name
        self.options = options
        self.legacy = legacy
        self.disabled = set(disabled)
        self.clock = clock

    def translate(self, leased: list[Leased], s: Settlement) -> Translated:
        """Each message's operations (a message that cannot be translated fails in `s`), and the
        records the account's mappings make of it."""
        translated: list[tuple[Leased, list[Any]]] = []
        forgotten = self.forgotten() if self.forgotten is not None else None
        for m in leased:
            if m.source in self.disabled:
                s.skip(m.id, SOURCE_OFF)
                continue
            try:
                msg = stamped(m.body, m.received_at, m.sent_at)
                if forgotten and forgotten.covers(msg, m.received_at):
                    s.skip(m.id, FORGOTTEN)
                    continue
                if not consent.allowed(msg, self.consent.get(m.source, ())):
                    s.skip(m.id, consent.REASON)
                    continue
                ops: list[Any] = list(translate(msg, self.options))
                matching = [mp for mp in self.mappings if mp.matches(msg)]
                if matching:
                    if any(mp.replace for mp in matching):  # only Link ops stay: who is who
                        ops = [op for op in ops if isinstance(op, Link)]
                    ops.append(Mapped(tuple(r for mp in matching for r in records(mp, msg)), msg))
                translated.append((m, ops))
            except MappingError as e:
                s.fail([m.id], str(e)[:500])
            except Exception as e:
                s.fail([m.id], f"could not translate the message: {type(e).__name__}: {e}"[:500])
        return Translated(translated)

    @staticmethod
    def ids_of(batch: Translated) -> set[tuple[str, str]]:
        """Every (source, id) the batch is about: what to read from the identity map first."""
        return {(m.source, i) for m, ops in batch.messages for op in ops for i in _ids_of(op)}

    def plan(
        self,
        leased: list[Leased],
        snapshot: Snapshot,
        held: frozenset[str] = frozenset(),
        *,
        more_waiting: bool = False,
    ) -> Plan:
        """A leased batch as the calls to make (`Plan`): translated, who each message is about
        resolved, coalesced per contact and company. A message about a contact or company `held`
        by a batch still in flight is handed back for later (`verdicts.carried`), and so is every
        later one about the same, so that order is kept. Makes no call and opens no store."""
        verdicts = Settlement(more_waiting=more_waiting)
        return self.plan_translated(self.translate(leased, verdicts), snapshot, held, verdicts)

    def plan_translated(
        self,
        batch: Translated,
        snapshot: Snapshot,
        held: frozenset[str],
        s: Settlement,
    ) -> Plan:
        """`plan`, once the batch is translated and what the map knows of its ids read (see
        `ids_of`). The ties and kept traits it makes are in `Plan.identity`, for delivery to write."""
        identities = Overlay(snapshot)
        plan = Plan(verdicts=s, identity=identities.updates)
        translated = batch.messages
        now = self.clock()
        tail = self._partial_tail(identities, translated, s, now, held)
        for m, _ in translated[tail:]:
            s.carried.add(m.id)
            s.deferred.add(m.id)
        for m, ops in translated[:tail]:
            writes, reads = self._keys_of(identities, m.source, ops)
            if held and (writes | reads) & held:  # before any side effect (a link, traits taken)
                s.carried.add(m.id)
                held = held | writes | reads
                continue
            plan.writes |= writes
            # Identities first, so that this batch's identify resolves this batch's earlier tracks.
            for op in ops:
                if isinstance(op, Link):
                    email, waiting = identities.link(m.source, op.ids, op.email, m.id)
                    if email and waiting:
                        upsert(plan, email, waiting, m.id)
            taking = Taking(
                plan, identities, m, ops, self.legacy, now, self.options.unresolved_event_wait_s
            )
            on_event = self._on_event(ops)
            for op in ops:
                self._operation(taking, op, on_event)
        return plan

    def _on_event(self, ops: Sequence[Any]) -> bool:
        """Segment's legacy mode sets a track's contact properties with the event itself (its
        "Setting Contact Properties on Track"), saving the contact call."""
        return self.legacy and any(isinstance(op, Event) for op in ops)

    def _operation(self, t: Taking, op: Any, on_event: bool) -> None:
        """One operation of a message into the plan, by every stage that takes it (a `Link` is
        applied before, see `plan`)."""
        if isinstance(op, Link):
            return
        if isinstance(op, Skip):
            t.verdicts.skip(t.message.id, op.reason)
            return
        stages = stages_for(op, legacy=self.legacy, on_event=on_event)
        for stage in stages:
            if stage.take is not None:
                stage.take(t, op)
        if stages:
            return
        reason = not_here(op, legacy=self.legacy)
        if reason is None:  # a new operation no stage takes: a bug, not the message's fault
            raise TypeError(f"no stage of delivery takes {type(op).__name__}")
        t.verdicts.skip(t.message.id, reason)

    def _partial_tail(
        self,
        identities: Overlay,
        translated: list[tuple[Leased, list[Any]]],
        s: Settlement,
        now: float,
        held: frozenset[str],
    ) -> int:
        """Where the messages that would make a last, partial upsert call start, when they should
        wait for the next cycle instead (else the end of the batch).

        As a partial event call does (see `EventSender`): while those messages are younger than
        `batch_wait_ms`, or when the lease was full (more is queued) and this batch fills calls
        of its own. They are a tail of the batch in queue order, so handing them back keeps each
        contact's order (a contact this batch writes is `busy` until its upsert is done). Under
        HubSpot's rolling window every call counts: a burst arriving over a few seconds would
        otherwise cost one partial call per cycle. The contacts are counted before the batch
        ties any ids (a count, not the plan): a miscount only leaves one call less full."""
        size = self.options.contact_batch
        newcomers: list[int] = []  # the message that brings each contact, in order
        seen: set[str] = set()
        going: list[int] = []  # the messages not handed back as `plan` will (for a call in flight)
        for index, (m, ops) in enumerate(translated):
            writes, reads = self._keys_of(identities, m.source, ops)
            if held and (writes | reads) & held:
                held = held | writes | reads
                continue
            going.append(index)
            for key in writes - seen:
                if not key.startswith("company:"):
                    newcomers.append(index)
            seen |= writes
        full = len(newcomers) // size * size
        if full == len(newcomers):
            return len(translated)
        cut = newcomers[full]
        oldest = min(translated[i][0].received_at for i in going if i >= cut)
        young = now - oldest < self.options.batch_wait_ms / 1000
        if young or (s.more_waiting and full > 0):
            return cut
        return len(translated)

    def _keys_of(
        self, identities: Overlay, source: str, ops: Sequence[Any]
    ) -> tuple[set[str], set[str]]:
        """(the contacts and companies a message's operations write, the contacts its events are
        about), read without changing anything, as each operation's stage says; an email not
        known yet is not a key (that message waits anyway)."""
        writes: set[str] = set()
        reads: set[str] = set()
        on_event = self._on_event(ops)

        def resolve(ref: ContactRef) -> str | None:
            return ref.email or identities.email_for(source, ref.ids)

        for op in ops:
            if isinstance(op, Link):
                email = op.email or identities.email_for(source, op.ids)
                if email:
                    writes.add(email.lower())
                continue
            for stage in stages_for(op, legacy=self.legacy, on_event=on_event):
                w, r = stage.keys(op, resolve)
                writes |= w
                reads |= r
        return writes, reads
