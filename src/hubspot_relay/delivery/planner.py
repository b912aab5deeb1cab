"""Planning a leased batch: translate each message, resolve who it is about, and coalesce the
lot into the calls to make (one upsert per contact in message order, one per company, events in
order). It reads and writes the identity map, so it runs in a worker thread; it makes no call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..errors import MappingError
from ..options import DeliveryOptions
from ..queue.protocol import Leased
from ..segment.messages import stamped
from ..translate import CompanyUpdate, ContactUpdate, Event, Link, Membership, Skip, consent, translate
from ..translate.mappings import Association, MappedRecord, Mapping, records
from ..translate.operations import Subscription
from ..translate.segment import message_ids
from ..translate.subjects import FORGOTTEN, Forgotten
from .identities import Late, Overlay, Snapshot, Update
from .settlement import Settlement

log = structlog.get_logger("hubspot_relay.deliver")
# Why a message is skipped, where translation does not say (status shows these per source).
SOURCE_OFF = "the source has HubSpot switched off"
LEGACY_GROUPS = "group calls are not delivered in legacy mode (API key)"


@dataclass
class CompanyBatch:
    """A company (a Segment group) as several messages describe it."""

    group_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    members: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


@dataclass
class Pending:
    """One input to a batch call, and the messages it carries."""

    key: str
    properties: dict[str, Any]
    ids: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObjectPending:
    """A record the account's mappings make (any object type), as several messages describe it."""

    mapping: str
    object: str
    id_property: str
    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    # (association, what it points at: an email, a groupId, or the keys of another mapping's records)
    associate: list[tuple[Association, str | tuple[tuple[str, str], ...]]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.object, self.id)


@dataclass
class Translated:
    """A leased batch translated: each message with its operations, and mapped records by id."""

    messages: list[tuple[Leased, list[Any]]]
    mapped: dict[int, tuple[list[MappedRecord], dict[str, Any]]]


@dataclass
class Plan:
    """The calls a leased batch becomes, and what becomes of the messages that make none."""

    contacts: dict[str, Pending] = field(default_factory=dict)  # lowercased email -> upsert
    companies: dict[str, CompanyBatch] = field(default_factory=dict)  # groupId -> company
    events: list[tuple[Leased, Event, str]] = field(default_factory=list)  # with the contact's email
    event_traits: dict[int, dict[str, Any]] = field(default_factory=dict)  # legacy: a track's traits
    objects: dict[tuple[str, str], ObjectPending] = field(default_factory=dict)  # mapped records
    writes: set[str] = field(default_factory=set)  # contacts and companies the calls write
    verdicts: Settlement = field(default_factory=Settlement)  # skipped, waiting, failed, handed back
    identity: list[Update] = field(default_factory=list)  # ties and kept traits, for the map
    # audience -> lowercased email -> the contact's membership (`extra["member"]`: the latest wins)
    memberships: dict[str, dict[str, Pending]] = field(default_factory=dict)

    # (lowercased email, subscription type) -> the status to write (`extra`: the latest wins)
    subscriptions: dict[tuple[str, int], Pending] = field(default_factory=dict)

    # audience -> groupId -> the company's membership (a company audience's list)
    company_memberships: dict[str, dict[str, Pending]] = field(default_factory=dict)

    @property
    def calls(self) -> bool:
        lists = self.memberships or self.company_memberships
        return bool(self.contacts or self.events or self.objects or lists or self.subscriptions)

    def join_company(self, audience: str, group_id: str, member: bool, mid: int) -> None:
        by_group = self.company_memberships.setdefault(audience, {})
        pending = by_group.setdefault(group_id, Pending(group_id, {}))
        pending.extra["member"] = member
        pending.ids.append(mid)

    def subscribe(self, email: str, op: Subscription, mid: int) -> None:
        pending = self.subscriptions.setdefault((email.lower(), op.subscription_id), Pending(email, {}))
        pending.extra.update(
            subscribed=op.subscribed,
            subscription_id=op.subscription_id,
            legal_basis=op.legal_basis,
            legal_basis_explanation=op.legal_basis_explanation,
        )
        pending.ids.append(mid)

    def join(self, audience: str, email: str, member: bool, mid: int) -> None:
        """The contact in or out of the audience's list (the contact upserted first, for its id)."""
        self.upsert(email, {}, mid)
        pending = self.memberships.setdefault(audience, {}).setdefault(email.lower(), Pending(email, {}))
        pending.extra["member"] = member
        pending.ids.append(mid)

    def upsert(self, email: str, props: dict[str, Any], mid: int, user_id: str | None = None) -> None:
        """`props` into the contact's one upsert (later messages' values win)."""
        pending = self.contacts.setdefault(email.lower(), Pending(email, {}))
        pending.properties.update(props)
        pending.ids.append(mid)
        if user_id is not None:  # the contact's key when the account has a user_id_property
            pending.extra["user_id"] = user_id

    def add_late(self, late: Sequence[Late]) -> None:
        """What writing the plan's `identity` found (see `identities.replay`): traits another
        process kept for an id this batch tied go under what the batch sets for the contact;
        this batch's own kept traits, for an id tied meanwhile, go with it after all."""
        for found in late:
            if found.under:
                pending = self.contacts.setdefault(found.email.lower(), Pending(found.email, {}))
                pending.properties = {**found.traits, **pending.properties}
                pending.ids.append(found.message)
            else:
                self.upsert(found.email, dict(found.traits), found.message)
                self.verdicts.waiting.discard(found.message)


def _ids_of(op: Any) -> tuple[str, ...]:
    if isinstance(op, Link):
        return tuple(op.ids)
    if isinstance(op, ContactUpdate | Event | Membership | Subscription):
        return tuple(op.ref.ids)
    if isinstance(op, CompanyUpdate):
        return tuple(op.member.ids)
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
        mapped: dict[int, tuple[list[MappedRecord], dict[str, Any]]] = {}
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
                ops = translate(msg, self.options)
                matching = [mp for mp in self.mappings if mp.matches(msg)]
                if matching:
                    mapped[m.id] = ([r for mp in matching for r in records(mp, msg)], msg)
                    if any(mp.replace for mp in matching):  # only Link ops stay: who is who
                        ops = [op for op in ops if isinstance(op, Link)]
                translated.append((m, ops))
            except MappingError as e:
                s.fail([m.id], str(e)[:500])
            except Exception as e:
                s.fail([m.id], f"could not translate the message: {type(e).__name__}: {e}"[:500])
        return Translated(translated, mapped)

    @staticmethod
    def ids_of(batch: Translated) -> set[tuple[str, str]]:
        """Every (source, id) the batch is about: what to read from the identity map first."""
        keys = {(m.source, i) for m, ops in batch.messages for op in ops for i in _ids_of(op)}
        for m, _ in batch.messages:  # a mapped record's buyer may be known by the message's ids only
            if m.id in batch.mapped:
                keys |= {(m.source, i) for i in message_ids(batch.mapped[m.id][1])}
        return keys

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
        translated, mapped = batch.messages, batch.mapped
        now = self.clock()
        tail = self._partial_tail(identities, translated, s, now, held)
        for m, _ in translated[tail:]:
            s.carried.add(m.id)
            s.deferred.add(m.id)
        for m, ops in translated[:tail]:
            writes, reads = self._keys_of(identities, m.source, ops)
            writes |= {f"object:{r.object}:{r.id}" for r in mapped.get(m.id, ([], {}))[0]}
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
                        plan.upsert(email, waiting, m.id)
            # The seed's legacy mode sets a track's contact properties with the event itself (its
            # "Setting Contact Properties on Track"), saving the contact call.
            on_event = self.legacy and any(isinstance(op, Event) for op in ops)
            for op in ops:
                self._operation(identities, m, op, plan, on_event=on_event, now=now)
            if m.id in mapped:
                self._map(identities, m, ops, mapped[m.id], plan.objects, s, now)
        return plan

    def _operation(
        self, identities: Overlay, m: Leased, op: Any, plan: Plan, *, on_event: bool, now: float
    ) -> None:
        """One operation of a message into the plan (a `Link` is applied before, see `plan`)."""
        s = plan.verdicts
        if isinstance(op, ContactUpdate) and on_event:
            plan.event_traits.setdefault(m.id, {}).update(op.properties)
        elif isinstance(op, ContactUpdate):
            email = op.ref.email or identities.email_for(m.source, op.ref.ids)
            if not email:  # kept until an email is known
                identities.keep(m.source, op.ref.ids, op.properties, m.id)
                s.waiting.add(m.id)
            else:
                plan.upsert(email, op.properties, m.id, op.ref.user_id)
        elif isinstance(op, CompanyUpdate) and self.legacy:
            s.skip(m.id, LEGACY_GROUPS)
            log.info("group calls are not delivered in legacy mode", account=self.account_name)
        elif isinstance(op, CompanyUpdate):
            group = plan.companies.setdefault(op.group_id, CompanyBatch(op.group_id))
            group.properties.update(op.properties)
            group.domain = op.domain or group.domain
            group.ids.append(m.id)
            email = op.member.email or identities.email_for(m.source, op.member.ids)
            if email:
                group.members.append(email)
                plan.upsert(email, {}, m.id)  # so that the contact exists, and its id is known
        elif isinstance(op, Event):
            email = op.ref.email or identities.email_for(m.source, op.ref.ids)
            if email:
                plan.events.append((m, op, email))
            elif now - m.received_at < self.options.unresolved_event_wait_s:
                # Backoff from 1 s: an identify usually follows within seconds.
                s.fail([m.id], "waiting for an identify or alias that gives this user's email", retry_in=0.0)
            else:
                s.fail(
                    [m.id],
                    "no email is known for this user: send an identify with an email "
                    "(or properties.email) and replay",
                )
        elif isinstance(op, Membership | Subscription) and self.legacy:
            s.skip(m.id, "lists and subscriptions need a private app or OAuth token (not an API key)")
        elif isinstance(op, Subscription):
            email = op.ref.email or identities.email_for(m.source, op.ref.ids)
            if email:
                plan.subscribe(email, op, m.id)
            else:
                s.fail([m.id], "no email is known for this user: a subscription change needs one")
        elif isinstance(op, Membership) and op.group_id is not None:
            plan.join_company(op.audience, op.group_id, op.member, m.id)
        elif isinstance(op, Membership):
            email = op.ref.email or identities.email_for(m.source, op.ref.ids)
            if email:
                plan.join(op.audience, email, op.member, m.id)
            else:
                s.fail(
                    [m.id],
                    "no email is known for this user: an audience's membership needs the contact "
                    "(send an identify with an email) and replay",
                )
        elif isinstance(op, Skip):
            s.skip(m.id, op.reason)

    def _map(
        self,
        identities: Overlay,
        m: Leased,
        ops: list[Any],
        made: tuple[list[MappedRecord], dict[str, Any]],
        objects: dict[tuple[str, str], ObjectPending],
        s: Settlement,
        now: float,
    ) -> None:
        """This message's mapped records, coalesced by (object, id), their associations resolved
        to what the send step needs: the buyer's email, the company's groupId, the records of
        another mapping made from the same message."""
        records_made, msg = made
        email = next((op.email for op in ops if isinstance(op, Link) and op.email), None)
        if email is None:
            email = identities.email_for(m.source, message_ids(msg))
        if email is None and any(a.to == "contact" for r in records_made for a, _ in r.associate):
            if now - m.received_at < self.options.unresolved_event_wait_s:
                s.fail([m.id], "waiting for an identify or alias that gives this user's email", retry_in=0.0)
            else:
                s.fail(
                    [m.id], "no email is known for this user, to associate the records with: send an identify"
                )
            return
        by_mapping: dict[str, list[tuple[str, str]]] = {}
        for r in records_made:
            by_mapping.setdefault(r.mapping, []).append((r.object, r.id))
        for r in records_made:
            pending = objects.setdefault(
                (r.object, r.id), ObjectPending(r.mapping, r.object, r.id_property, r.id)
            )
            pending.properties.update(r.properties)
            pending.ids.append(m.id)
            for association, target in r.associate:
                if association.to == "contact":
                    pending.associate.append((association, str(email)))
                elif association.to == "company":
                    if target is not None:
                        pending.associate.append((association, target))
                else:
                    pending.associate.append((association, tuple(by_mapping.get(association.to, []))))

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
        about), read without changing anything; an email not known yet is not a key (that
        message waits anyway). Events are not ordered among themselves (each has its time), so
        they only wait for a contact's upsert in flight; property updates wait for each other."""
        writes: set[str] = set()
        reads: set[str] = set()
        for op in ops:
            if isinstance(op, Link):
                email = op.email or identities.email_for(source, op.ids)
                if email:
                    writes.add(email.lower())
            elif isinstance(op, Membership) and op.group_id is not None:
                writes.add(f"company:{op.group_id}")
            elif isinstance(op, ContactUpdate | Membership | Subscription):
                email = op.ref.email or identities.email_for(source, op.ref.ids)
                if email:
                    writes.add(email.lower())
            elif isinstance(op, Event):
                email = op.ref.email or identities.email_for(source, op.ref.ids)
                if email:
                    reads.add(email.lower())
            elif isinstance(op, CompanyUpdate):
                writes.add(f"company:{op.group_id}")
                email = op.member.email or identities.email_for(source, op.member.ids)
                if email:
                    writes.add(email.lower())
        return writes, reads
