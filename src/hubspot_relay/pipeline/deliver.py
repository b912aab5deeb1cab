"""Delivery for one HubSpot account: lease, translate, coalesce, batch, send, settle.

A cycle leases what is queued for the account's sources (up to `lease_batch`), translates each
message, and turns the lot into the fewest calls: one upsert per contact however many messages
touched it (in message order), 100 contacts per call, 500 events per call. Each message is
then acked, retried later (HubSpot or the network failed; backoff with jitter, up to a maximum
age) or dead-lettered with HubSpot's reason (a record HubSpot refuses for good: a rejected
batch is split until the offender is alone, so the others still go through).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter

from ..config import Account
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError, Kind
from ..hubspot.lifecycle import LIFECYCLE_STAGES, is_backwards
from ..hubspot.ratelimit import DailyLimitReached
from ..options import DeliveryOptions
from ..segment.messages import stamped
from ..translate import CompanyUpdate, ContactUpdate, Event, Link, PropertyInfo, Skip, prepare, translate
from .identity import IdentityMap
from .queue import Leased, Queue

log = structlog.get_logger("hubspot_relay.deliver")

INLINE_RETRIES = 3
SETTLED = Counter("hubspot_relay_settled_messages", "Messages settled by delivery", ["account", "outcome"])
EVENTS_RECHECK_S = 600.0


@dataclass
class Settlement:
    """What becomes of each leased message: ok unless something says otherwise."""

    retry: dict[int, tuple[float, str]] = field(default_factory=dict)  # id -> (delay, reason)
    dead: dict[int, str] = field(default_factory=dict)
    patient: set[int] = field(default_factory=set)  # retries that do not age (a daily limit)
    carried: set[int] = field(default_factory=set)  # handed back for a later cycle (see `busy`)
    touched: set[str] = field(default_factory=set)  # contacts and companies this batch holds
    skipped: int = 0
    owed: Tally[int] = field(default_factory=Tally)  # calls a message's delivery needs
    paid: Tally[int] = field(default_factory=Tally)  # of those, the ones that went through

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


class Delivery:
    def __init__(
        self,
        account: Account,
        options: DeliveryOptions,
        sources: Sequence[str],
        queue: Queue,
        identity: IdentityMap,
        client: HubSpotClient,
        *,
        clock: Callable[[], float] = time.time,
        disabled_sources: Sequence[str] = (),
    ) -> None:
        self.account = account
        self.options = options
        self.sources = list(sources) + list(disabled_sources)
        self.disabled = set(disabled_sources)
        self.queue = queue
        self.identity = identity
        self.client = client
        self.clock = clock
        self.catalogs: dict[str, tuple[float, dict[str, PropertyInfo]]] = {}
        self.definitions: dict[str, set[str]] | None = None  # fully qualified name -> property names
        self.events_refused: tuple[float, str] | None = None  # (since, HubSpot's reason)
        self.paused_until = 0.0
        self.operator_paused = identity.is_paused(account.name)
        self.more_waiting = False
        # Contacts (by email) and companies ("company:" + groupId) that a batch still in flight
        # holds: a later batch leaves their messages for after it, so that order is kept while
        # batches overlap. Counted, since two batches may hold the same key (one defers to the other).
        self.busy: Tally[str] = Tally()
        self._planning = asyncio.Lock()
        self.legacy = account.api_mode == "legacy"

    def pause(self, paused: bool) -> None:
        """An operator's pause (kept across restarts): nothing is leased until resumed."""
        self.operator_paused = paused
        self.identity.set_paused(self.account.name, paused)
        log.warning(
            "delivery paused by an operator" if paused else "delivery resumed", account=self.account.name
        )

    # ---- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and deliver until `stop`, with up to `pipeline_depth` batches in flight: the next
        batch is planned and sent while the last one's calls are still out, and a call that hangs
        holds up only the contacts it carries (see `busy`)."""
        log.info(
            "delivery started", account=self.account.name, hub_id=self.account.hub_id, sources=self.sources
        )
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                if len(running) >= self.options.pipeline_depth:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    leased = await self.lease()
                except Exception:
                    log.exception("leasing failed", account=self.account.name)
                    leased = []
                if leased:
                    task = asyncio.create_task(
                        self.process(leased), name=f"deliver-{self.account.name}-batch"
                    )
                    running.add(task)
                    task.add_done_callback(running.discard)
                # A lease that was not full means the queue is drained: wait a flush window so
                # that the next batch gathers what arrives meanwhile (fuller batches, fewer calls).
                if len(leased) < self.options.lease_batch:
                    delay = self.options.flush_ms / 1000
                    if self.paused_until > self.clock():
                        delay = min(60.0, self.paused_until - self.clock())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
            if running:  # a clean stop: let the batches in flight finish (the server bounds this)
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def cycle(self) -> int:
        """Deliver one leased batch; returns how many messages it settled.

        Nothing leased is left in flight: a stop mid-cycle hands the lease back, and a cycle that
        fails anyway (the queue itself failing) retries its messages with backoff.
        """
        leased = await self.lease()
        if leased:
            await self.process(leased)
        return len(leased)

    async def lease(self) -> list[Leased]:
        if self.paused_until > self.clock() or self.operator_paused:
            return []
        leased = await self.queue.lease(self.options.lease_batch, lease_seconds=900, sources=self.sources)
        # A full lease means more is waiting: a batch call that is not full can wait for it.
        self.more_waiting = len(leased) >= self.options.lease_batch
        return leased

    async def process(self, leased: list[Leased]) -> None:
        """Deliver and settle one leased batch."""
        try:
            await self.deliver_isolated(leased)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release([m.id for m in leased]))
            raise
        except Exception as e:
            log.exception("delivery cycle failed", account=self.account.name)
            await self.give_back(leased, f"delivery failed: {type(e).__name__}: {e}")

    async def give_back(self, leased: list[Leased], reason: str) -> None:
        """Retry with backoff; a message that keeps failing past its maximum age is a dead letter."""
        s = Settlement()
        s.fail([m.id for m in leased], reason[:500], retry_in=0.0)
        await self.settle(leased, s)

    async def deliver_isolated(self, leased: list[Leased]) -> None:
        """Deliver and settle `leased`; an unforeseen error is narrowed down by halving the batch
        until the message that causes it is alone, and only that one is dead-lettered."""
        settlement = Settlement()
        try:
            await self.deliver_batch(leased, settlement)
        except (OSError, sqlite3.Error) as e:  # the machine, not a message: all of them wait
            log.exception("delivery failed", account=self.account.name)
            self.release_keys(settlement)
            settlement = Settlement()  # re-sending what went through is harmless (upserts, event uuids)
            settlement.fail([m.id for m in leased], f"{type(e).__name__}: {e}"[:500], retry_in=0.0)
        except BaseException as e:
            self.release_keys(settlement)
            if not isinstance(e, Exception):
                raise
            if len(leased) > 1:
                half = len(leased) // 2
                await self.deliver_isolated(leased[:half])
                await self.deliver_isolated(leased[half:])
                return
            log.exception("message could not be delivered", account=self.account.name)
            settlement = Settlement()
            settlement.fail(
                [leased[0].id], f"hubspot-relay could not deliver this message: {type(e).__name__}: {e}"[:500]
            )
        try:
            await self.settle(leased, settlement)
        finally:
            self.release_keys(settlement)

    def hold_keys(self, s: Settlement, keys: set[str]) -> None:
        s.touched |= keys
        self.busy.update(keys)

    def release_keys(self, s: Settlement) -> None:
        """The batch is settled (or failed): its contacts and companies are free for later batches."""
        self.busy.subtract(s.touched)
        for key in s.touched:
            if self.busy[key] <= 0:
                del self.busy[key]
        s.touched = set()

    async def deliver_batch(self, leased: list[Leased], settlement: Settlement) -> None:
        """One batch's calls, with the refusals that concern the whole account settled here."""
        try:
            await self.deliver(leased, settlement)
        except HubSpotError as e:  # a call outside the batches (the catalog, definitions) failed
            self.failed(e, settlement.unfinished([m.id for m in leased]), settlement)
        except DailyLimitReached as e:
            self.paused_until = e.resets_at
            self.identity.set_problem(self.account.name, "daily_limit", str(e))
            log.warning(
                "daily limit reached: delivery paused", account=self.account.name, resumes_at=e.resets_at
            )
            wait = max(1.0, e.resets_at - self.clock())
            settlement.fail(
                settlement.unfinished([m.id for m in leased]), str(e), retry_in=wait, patient=True
            )

    async def settle(self, leased: list[Leased], s: Settlement) -> None:
        if s.carried:
            await self.queue.release(sorted(s.carried))
        ok = [m.id for m in leased if m.id not in s.retry and m.id not in s.dead and m.id not in s.carried]
        if ok:
            await self.queue.ack(ok)
        SETTLED.labels(self.account.name, "delivered").inc(len(ok))
        now = self.clock()
        by_id = {m.id: m for m in leased}
        for mid, (delay, reason) in s.retry.items():
            m = by_id[mid]
            if mid not in s.patient and now - m.received_at > self.options.retry_max_age_s:
                await self.queue.dead_letter([mid], f"gave up after {m.attempts} attempts: {reason}")
                SETTLED.labels(self.account.name, "dead").inc()
            else:
                await self.queue.retry([mid], max(delay, self.backoff(m.attempts)), reason)
                SETTLED.labels(self.account.name, "retried").inc()
        for reason in set(s.dead.values()):
            await self.queue.dead_letter([i for i, r in s.dead.items() if r == reason], reason)
        SETTLED.labels(self.account.name, "dead").inc(len(s.dead))
        if s.dead:
            log.warning(
                "messages dead-lettered",
                account=self.account.name,
                count=len(s.dead),
                first_reason=next(iter(s.dead.values()))[:300],
            )

    def failed(self, e: HubSpotError, ids: Sequence[int], s: Settlement) -> None:
        """A refusal that is not about the content: permanent ones (401, 403) stop retrying, are
        reported as the account's problem and dead-letter the messages; the rest are retried."""
        if e.kind is Kind.PERMANENT:
            reason = e.describe()
            if e.status == 401:
                reason = f"{reason} (the account's access token or API key is refused: fix it, then replay)"
            self.identity.set_problem(self.account.name, f"http_{e.status}", reason)
            log.error("HubSpot refuses the account's calls", account=self.account.name, error=reason)
            s.fail(ids, reason)
        else:
            s.fail(ids, e.describe(), retry_in=0.0)

    def backoff(self, attempts: int) -> float:
        """Exponential, with jitter: 1 s, 2 s, 4 s ... up to an hour."""
        return min(3600.0, 2.0 ** max(0, min(attempts - 1, 12))) * (0.5 + random.random())

    # ---- one batch ------------------------------------------------------------------------

    async def deliver(self, leased: list[Leased], s: Settlement) -> None:
        # Translating and resolving identities reads and writes the identity map: done in a thread,
        # so that ingest keeps answering while a large batch is prepared. One batch plans at a
        # time, seeing what the batches before it hold.
        async with self._planning:
            held = frozenset(self.busy)
            plan, keys = await asyncio.to_thread(self.plan, leased, s, held)
            self.hold_keys(s, keys)
        contacts, companies, events, event_traits = plan
        # Everything each message needs is owed before anything is sent: a daily limit that
        # stops the batch half-way then knows exactly which messages are not finished.
        for p in contacts.values():
            s.owe(p.ids)
        for group in companies.values():
            s.owe(group.ids)
        for m, _, _ in events:
            s.owe([m.id])
        if contacts:
            await self.send_contacts(list(contacts.values()), s)
        if companies:
            await self.send_companies(list(companies.values()), s)
        if events and self.legacy:
            await self.send_legacy_events(events, event_traits, s)
        elif events:
            await self.send_events(events, s)

    def plan(
        self, leased: list[Leased], s: Settlement, held: frozenset[str] = frozenset()
    ) -> tuple[
        tuple[
            dict[str, Pending],
            dict[str, CompanyBatch],
            list[tuple[Leased, Event, str]],
            dict[int, dict[str, Any]],
        ],
        set[str],
    ]:
        """Translate a leased batch and coalesce it: ((contacts by email, companies by groupId,
        events with their email, legacy tracks' contact properties), the contacts and companies it
        holds). Messages that cannot go yet are settled in `s`; a message about a contact or
        company `held` by a batch still in flight is handed back for later (`s.carried`), and so
        is every later one about the same, so that order is kept."""
        keys: set[str] = set()
        contacts: dict[str, Pending] = {}  # lowercased email -> upsert
        event_traits: dict[int, dict[str, Any]] = {}  # legacy mode: a track's context.traits
        companies: dict[str, CompanyBatch] = {}
        events: list[tuple[Leased, Event, str]] = []
        now = self.clock()

        def upsert(email: str, props: dict[str, Any], mid: int) -> None:
            pending = contacts.setdefault(email.lower(), Pending(email, {}))
            pending.properties.update(props)
            pending.ids.append(mid)

        for m in leased:
            if m.source in self.disabled:
                s.skipped += 1
                continue
            try:
                ops = translate(stamped(m.body, m.received_at, m.sent_at), self.options)
            except Exception as e:
                s.fail([m.id], f"could not translate the message: {type(e).__name__}: {e}"[:500])
                continue
            touches = self._keys_of(m.source, ops)
            if held and touches & held:  # before any side effect (a link, traits taken)
                s.carried.add(m.id)
                held = held | touches
                keys |= touches
                continue
            keys |= touches
            # Identities first, so that this batch's identify resolves this batch's earlier tracks.
            for op in ops:
                if isinstance(op, Link):
                    email, waiting = self.identity.link(m.source, op.ids, op.email)
                    if email and waiting:
                        upsert(email, waiting, m.id)
            # The seed's legacy mode sets a track's contact properties with the event itself (its
            # "Setting Contact Properties on Track"), saving the contact call.
            on_event = self.legacy and any(isinstance(op, Event) for op in ops)
            for op in ops:
                if isinstance(op, ContactUpdate) and on_event:
                    event_traits.setdefault(m.id, {}).update(op.properties)
                elif isinstance(op, ContactUpdate):
                    email = op.ref.email or self.identity.email_for(m.source, op.ref.ids)
                    if email:
                        upsert(email, op.properties, m.id)
                    else:
                        self.identity.remember(m.source, op.ref.ids, op.properties)
                elif isinstance(op, CompanyUpdate) and self.legacy:
                    s.skipped += 1
                    log.info("group calls are not delivered in legacy mode", account=self.account.name)
                elif isinstance(op, CompanyUpdate):
                    group = companies.setdefault(op.group_id, CompanyBatch(op.group_id))
                    group.properties.update(op.properties)
                    group.domain = op.domain or group.domain
                    group.ids.append(m.id)
                    email = op.member.email or self.identity.email_for(m.source, op.member.ids)
                    if email:
                        group.members.append(email)
                        upsert(email, {}, m.id)  # so that the contact exists, and its id is known
                elif isinstance(op, Event):
                    email = op.ref.email or self.identity.email_for(m.source, op.ref.ids)
                    if email:
                        events.append((m, op, email))
                    elif now - m.received_at < self.options.unresolved_event_wait_s:
                        # Backoff from 1 s: an identify usually follows within seconds.
                        s.fail(
                            [m.id],
                            "waiting for an identify or alias that gives this user's email",
                            retry_in=0.0,
                        )
                    else:
                        s.fail(
                            [m.id],
                            "no email is known for this user: send an identify with an email "
                            "(or properties.email) and replay",
                        )
                elif isinstance(op, Skip):
                    s.skipped += 1

        return (contacts, companies, events, event_traits), keys

    def _keys_of(self, source: str, ops: Sequence[Any]) -> set[str]:
        """The contacts (emails) and companies a message's operations touch, read without changing
        anything (an email not known yet is not a key: that message waits anyway)."""
        keys: set[str] = set()
        for op in ops:
            email: str | None = None
            if isinstance(op, Link):
                email = op.email or self.identity.email_for(source, op.ids)
            elif isinstance(op, ContactUpdate | Event):
                email = op.ref.email or self.identity.email_for(source, op.ref.ids)
            elif isinstance(op, CompanyUpdate):
                keys.add(f"company:{op.group_id}")
                email = op.member.email or self.identity.email_for(source, op.member.ids)
            if email:
                keys.add(email.lower())
        return keys

    # ---- calls with retries and splitting ---------------------------------------------------

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """A call, retried in place a few times when HubSpot or the network fails."""
        for attempt in range(INLINE_RETRIES):
            try:
                return await fn()
            except HubSpotError as e:
                if e.kind is not Kind.RETRYABLE or attempt == INLINE_RETRIES - 1:
                    raise
                await asyncio.sleep(0.25 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    async def in_parallel(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        """Run independent calls side by side, at most `max_in_flight` at once (the limiter still
        spaces them): at HubSpot's real latency one call at a time leaves most of the budget unused.
        The first unexpected error (a daily limit, a bug) cancels the others and is raised."""
        if len(jobs) <= 1:
            for job in jobs:
                await job()
            return
        gate = asyncio.Semaphore(self.options.max_in_flight)

        async def run(job: Callable[[], Awaitable[Any]]) -> None:
            async with gate:
                await job()

        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(run(job))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def split_send(
        self,
        items: list[Pending],
        send: Callable[[list[Pending]], Awaitable[Any]],
        s: Settlement,
        *,
        on_validation: Callable[[HubSpotError, list[Pending]], Awaitable[bool]] | None = None,
        pays: bool = True,
    ) -> None:
        """Send `items`; when HubSpot refuses the batch for its content, halve it until the
        offending record is alone, and dead-letter only that one's messages."""
        try:
            await self.call(lambda: send(items))
            if pays:
                s.pay([i for item in items for i in item.ids])
        except HubSpotError as e:
            ids = [i for item in items for i in item.ids]
            if e.kind is Kind.VALIDATION:
                if on_validation is not None and await on_validation(e, items):
                    await self.split_send(items, send, s, pays=pays)  # fixed (a stale catalog): once more
                elif len(items) > 1:
                    half = len(items) // 2
                    await self.split_send(items[:half], send, s, on_validation=on_validation, pays=pays)
                    await self.split_send(items[half:], send, s, on_validation=on_validation, pays=pays)
                else:
                    s.fail(ids, e.describe())
            else:
                self.failed(e, ids, s)

    # ---- contacts -------------------------------------------------------------------------

    async def catalog(self, object_type: str, *, refresh: bool = False) -> dict[str, PropertyInfo]:
        cached = self.catalogs.get(object_type)
        if cached and not refresh and self.clock() - cached[0] < self.options.catalog_ttl_s:
            return cached[1]
        if self.legacy:
            props = await self.call(self.client.legacy_properties)
        else:
            props = await self.call(lambda: self.client.properties(object_type))
        catalog = {p["name"]: PropertyInfo.from_hubspot(p) for p in props}
        self.catalogs[object_type] = (self.clock(), catalog)
        return catalog

    async def _create_missing(self, object_type: str, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                await self.call(
                    lambda key=key: self.client.create_property(
                        object_type,
                        {
                            "name": key,
                            "label": key.replace("_", " ").title(),
                            "type": "string",
                            "fieldType": "text",
                            "groupName": "contactinformation"
                            if object_type == "contacts"
                            else "companyinformation",
                        },
                    )
                )
                log.info("created property", account=self.account.name, object_type=object_type, name=key)
            except HubSpotError as e:
                if e.kind is not Kind.CONFLICT:
                    log.warning("could not create property", name=key, error=e.describe())
        await self.catalog(object_type, refresh=True)

    async def prepared(self, object_type: str, props: dict[str, Any]) -> dict[str, str]:
        catalog = await self.catalog(object_type)
        clean, dropped = prepare(props, catalog)
        missing = [k for k, r in dropped.items() if r.startswith("not a property")]
        if missing and self.options.create_properties:
            await self._create_missing(object_type, missing)
            clean, dropped = prepare(props, await self.catalog(object_type))
        if dropped:
            self.identity.count_dropped(self.account.name, object_type, dropped)
            log.info(
                "keys dropped",
                account=self.account.name,
                object_type=object_type,
                keys={k: r for k, r in list(dropped.items())[:20]},
            )
        return clean

    async def send_contacts(self, items: list[Pending], s: Settlement) -> None:
        for item in items:
            raw = item.properties
            item.extra["raw"] = raw
            item.properties = await self.prepared("contacts", raw)
            item.properties.pop("email", None)  # the upsert's id
        if self.legacy:
            await self._send_legacy_contacts(items, s)
            return
        await self._lifecycle_first(items, s)

        async def send(chunk: list[Pending]) -> None:
            result = await self.client.batch(
                "contacts",
                "upsert",
                [{"id": p.key, "idProperty": "email", "properties": p.properties} for p in chunk],
            )
            by_email = {
                (r.get("properties") or {}).get("email", "").lower(): r for r in result.get("results", [])
            }
            rows = []
            for p in chunk:
                r = by_email.get(p.key.lower())
                rows.append((p.key, r["id"] if r else None, p.properties.get("lifecyclestage")))
            self.identity.save_contacts(self.account.name, rows)

        async def stale_catalog(e: HubSpotError, chunk: list[Pending]) -> bool:
            missing = e.missing_properties()
            if not missing:
                return False
            await self.catalog("contacts", refresh=True)
            for p in chunk:
                for key in missing:
                    p.properties.pop(key, None)
            return True

        size = self.options.contact_batch
        await self.in_parallel(
            [
                lambda chunk=items[start : start + size]: self.split_send(
                    chunk, send, s, on_validation=stale_catalog
                )
                for start in range(0, len(items), size)
            ]
        )

    async def _send_legacy_contacts(self, items: list[Pending], s: Settlement) -> None:
        """The seed's dialect: `POST /contacts/v1/contact/batch/`, 100 contacts a call."""

        async def send(chunk: list[Pending]) -> None:
            await self.client.legacy_batch(
                [
                    {
                        "email": p.key,
                        "properties": [{"property": k, "value": v} for k, v in p.properties.items()],
                    }
                    for p in chunk
                ]
            )
            self.identity.save_contacts(self.account.name, [(p.key, None, None) for p in chunk])

        size = self.options.contact_batch
        for start in range(0, len(items), size):
            await self.split_send(items[start : start + size], send, s)

    async def send_legacy_events(
        self, events: list[tuple[Leased, Event, str]], traits: dict[int, dict[str, Any]], s: Settlement
    ) -> None:
        """The events HTTP API, one call an event: `_n` is the event's name (or the HubSpot
        eventId it is mapped to), `_m` its revenue, and the contact properties ride along."""
        for m, op, email in events:
            params = {"_n": self.options.event_names.get(op.label) or op.label or op.name, "email": email}
            if "revenue" in op.properties:
                params["_m"] = op.properties["revenue"]
            if m.id in traits:
                contact = await self.prepared("contacts", traits[m.id])
                contact.pop("email", None)
                params.update({k: v for k, v in contact.items() if not k.startswith("_")})

            async def send(chunk: list[Pending], params: dict[str, str] = params) -> None:
                await self.client.legacy_event(params)

            await self.split_send([Pending(op.uuid, {}, [m.id])], send, s)

    async def _lifecycle_first(self, items: list[Pending], s: Settlement) -> None:
        """HubSpot will not move a lifecycle stage backwards: clear it first where it would."""
        wanted = {p.key.lower(): p for p in items if p.properties.get("lifecyclestage") in LIFECYCLE_STAGES}
        if not wanted:
            return
        current: dict[str, str | None] = {}
        unknown = []
        for email in wanted:
            _, stage = self.identity.contact(self.account.name, email)
            if stage:
                current[email] = stage
            else:
                unknown.append(email)
        for start in range(0, len(unknown), 100):
            chunk = unknown[start : start + 100]
            try:
                result = await self.call(
                    lambda chunk=chunk: self.client.batch(
                        "contacts",
                        "read",
                        [{"id": e} for e in chunk],
                        idProperty="email",
                        properties=["lifecyclestage", "email"],
                    )
                )
            except HubSpotError:
                continue  # the upsert will tell
            for r in result.get("results", []):
                props = r.get("properties") or {}
                current[str(props.get("email", "")).lower()] = props.get("lifecyclestage")
        backwards = [
            p for e, p in wanted.items() if is_backwards(current.get(e), p.properties["lifecyclestage"])
        ]
        if backwards:
            clearing = [Pending(p.key, {"lifecyclestage": ""}, p.ids) for p in backwards]

            async def clear(chunk: list[Pending]) -> None:
                await self.client.batch(
                    "contacts",
                    "upsert",
                    [{"id": p.key, "idProperty": "email", "properties": p.properties} for p in chunk],
                )

            await self.split_send(clearing, clear, s, pays=False)

    # ---- companies ------------------------------------------------------------------------

    async def send_companies(self, groups: list[CompanyBatch], s: Settlement) -> None:
        """Upsert each company (by a unique property keyed by groupId, or found by domain), then
        associate its members: company ids are remembered, so a search happens once per company."""
        unique = self.options.company_id_property
        pairs: list[tuple[str, str]] = []
        pair_ids: list[int] = []
        for group in groups:
            props = await self.prepared("companies", group.properties)
            company_id = self.identity.company(self.account.name, group.group_id)
            try:
                if unique:
                    result = await self.call(
                        lambda g=group, props=props: self.client.batch(
                            "companies",
                            "upsert",
                            [{"id": g.group_id, "idProperty": unique, "properties": props}],
                        )
                    )
                    company_id = str(result["results"][0]["id"])
                else:
                    if not company_id and group.domain:
                        found = await self.call(
                            lambda g=group: self.client.search(
                                "companies",
                                {
                                    "filterGroups": [
                                        {
                                            "filters": [
                                                {
                                                    "propertyName": "domain",
                                                    "operator": "EQ",
                                                    "value": g.domain,
                                                }
                                            ]
                                        }
                                    ],
                                    "limit": 1,
                                },
                            )
                        )
                        if found.get("results"):
                            company_id = str(found["results"][0]["id"])
                    if company_id:
                        await self.call(
                            lambda cid=company_id, props=props: self.client.batch(
                                "companies", "update", [{"id": cid, "properties": props}]
                            )
                        )
                    else:
                        result = await self.call(
                            lambda props=props: self.client.batch(
                                "companies", "create", [{"properties": props}]
                            )
                        )
                        company_id = str(result["results"][0]["id"])
                self.identity.save_company(self.account.name, group.group_id, company_id)
                s.pay(group.ids)
            except HubSpotError as e:
                permanent = e.kind in (Kind.VALIDATION, Kind.PERMANENT, Kind.NOT_FOUND)
                s.fail(group.ids, e.describe(), retry_in=None if permanent else 0.0)
                continue
            for email in dict.fromkeys(group.members):
                contact_id, _ = self.identity.contact(self.account.name, email)
                if contact_id:
                    pairs.append((contact_id, company_id))
                    pair_ids.extend(group.ids)
        for start in range(0, len(pairs), 100):
            chunk = pairs[start : start + 100]
            try:
                await self.call(lambda chunk=chunk: self.client.associate("contact", "company", chunk))
            except HubSpotError as e:
                s.fail(pair_ids, e.describe(), retry_in=0.0)

    # ---- events ---------------------------------------------------------------------------

    def full_name(self, name: str) -> str:
        prefix = f"pe{self.account.hub_id}_"
        return name if name.startswith(prefix) else prefix + name

    async def _definitions(self) -> dict[str, set[str]]:
        if self.definitions is None:
            found = await self.call(self.client.event_definitions)
            self.definitions = {
                d["fullyQualifiedName"]: {p["name"] for p in d.get("properties", [])} for d in found
            }
        return self.definitions

    async def _ensure_definitions(self, events: list[tuple[Leased, Event, str]], s: Settlement) -> set[str]:
        """Definitions (and their properties) for these events; returns the names that are usable."""
        definitions = await self._definitions()
        usable: set[str] = set()
        needed: dict[str, tuple[Event, set[str]]] = {}
        for _, op, _ in events:
            fqn = self.full_name(op.name)
            entry = needed.setdefault(fqn, (op, set()))
            entry[1].update(op.properties)
        for fqn, (op, keys) in needed.items():
            try:
                if fqn not in definitions:
                    if not self.options.create_event_definitions:
                        continue
                    short = fqn.removeprefix(f"pe{self.account.hub_id}_")
                    created = await self.call(
                        lambda short=short, op=op, keys=keys: self.client.create_event_definition(
                            {
                                "label": (op.label or short)[:100],
                                "name": short,
                                "primaryObject": "CONTACT",
                                "description": f'Segment event "{op.label or short}", from hubspot-relay',
                                "propertyDefinitions": [
                                    {"name": k, "label": k, "type": "string"} for k in sorted(keys)
                                ],
                            }
                        )
                    )
                    definitions[fqn] = {p["name"] for p in created.get("properties", [])}
                    log.info("created event definition", account=self.account.name, name=fqn)
                for key in sorted(keys - definitions[fqn]):
                    try:
                        await self.call(
                            lambda fqn=fqn, key=key: self.client.add_event_property(
                                fqn, {"name": key, "label": key, "type": "string"}
                            )
                        )
                    except HubSpotError as e:
                        if e.kind is not Kind.CONFLICT:
                            raise
                    definitions[fqn].add(key)
                usable.add(fqn)
            except HubSpotError as e:
                if e.kind is Kind.PERMANENT:
                    raise
                ids = [m.id for m, ev, _ in events if self.full_name(ev.name) == fqn]
                s.fail(ids, e.describe(), retry_in=None if e.kind is Kind.VALIDATION else 0.0)
        return usable

    async def send_events(self, events: list[tuple[Leased, Event, str]], s: Settlement) -> None:
        ids = [m.id for m, _, _ in events]
        if self.events_refused and self.clock() - self.events_refused[0] < EVENTS_RECHECK_S:
            s.fail(ids, self.events_refused[1])
            return
        try:
            usable = await self._ensure_definitions(events, s)
        except HubSpotError as e:
            if e.status == 401:  # the token, not custom events, is what HubSpot refuses
                self.failed(e, ids, s)
                return
            self._refuse_events(e)
            s.fail(ids, self.events_refused[1] if self.events_refused else e.describe())
            return
        pending: list[Pending] = []
        for m, op, email in events:
            fqn = self.full_name(op.name)
            if fqn not in usable:
                if m.id not in s.retry and m.id not in s.dead:
                    s.fail([m.id], f"HubSpot has no event definition {fqn} (create_event_definitions is off)")
                continue
            pending.append(
                Pending(
                    op.uuid,
                    {
                        "eventName": fqn,
                        "email": email,
                        "occurredAt": op.occurred_at,
                        "uuid": op.uuid,
                        "properties": op.properties,
                    },
                    [m.id],
                )
            )
        if self.events_refused:
            self.events_refused = None
            self.identity.set_problem(self.account.name, "custom_events", None)

        async def send(chunk: list[Pending]) -> None:
            try:
                await self.client.send_events([p.properties for p in chunk])
            except HubSpotError as e:
                if e.kind is Kind.PERMANENT and e.status != 401:
                    self._refuse_events(e)
                raise

        size = self.options.event_batch
        chunks = [pending[start : start + size] for start in range(0, len(pending), size)]
        if self.more_waiting and len(chunks) > 1 and len(chunks[-1]) < size:
            # Not full, and more is queued: these go with the next cycle's events (they lead its
            # lease, being older), instead of in a call of their own.
            s.carried.update(i for p in chunks.pop() for i in p.ids)
        await self.in_parallel([lambda chunk=chunk: self.split_send(chunk, send, s) for chunk in chunks])

    def _refuse_events(self, e: HubSpotError) -> None:
        reason = e.describe()
        if e.status == 403:
            reason = (
                f"HubSpot refuses custom behavioral events for portal {self.account.hub_id} "
                f"(they need an Enterprise subscription and the analytics.behavioral_events.send scope): "
                f"{e.describe()}. Contacts keep flowing; replay these after an upgrade."
            )
        self.events_refused = (self.clock(), reason)
        self.identity.set_problem(self.account.name, "custom_events", reason)
        log.error("custom events refused", account=self.account.name, reason=reason)
