"""The event stages: definitions (and their properties) created on first use, side by side with
the batch's contacts; events 500 a call side by side, each after its own contact's upsert, a
partial call held for the next cycle when more is waiting; Segment's legacy events HTTP API
for API keys (with a track's contact properties riding along); custom events refused by the
portal reported once, not per message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import orjson

from ...hubspot.errors import HubSpotError
from ...hubspot.verdicts import EVENTS_REFUSED, MADE_MEANWHILE, verdict
from ...queue.protocol import Leased
from ...translate import ContactUpdate, Event
from ...translate.segment import mapped_event
from ..catalog import Catalogs
from ..context import Context
from ..plan import Record, Resolve, Taking
from ..sending import Sender, log
from ..settlement import Settlement
from .stage import LEGACY, V3, Keys, Run, Sent, Stage


class TrackedEvent(NamedTuple):
    """A track (or page, screen) as an event of the contact with `email`."""

    message: Leased
    event: Event
    email: str


@dataclass
class LegacyEvents:
    """Legacy mode's events, and the contact properties each track sets with its event."""

    events: list[TrackedEvent] = field(default_factory=list)
    traits: dict[int, dict[str, Any]] = field(default_factory=dict)  # message id -> properties

    def __len__(self) -> int:
        return len(self.events) + len(self.traits)


Events = list[TrackedEvent]

EVENTS_RECHECK_S = 600.0
# A partial event call waits at most this long for the contacts handed back behind it (HubSpot's
# rolling window: under a burst that fills it, a call saved is a call another batch can make).
FOLLOWED_WAIT_S = 10.0


class EventSender(Sender):
    def __init__(self, ctx: Context, catalogs: Catalogs) -> None:
        super().__init__(ctx, catalogs)
        self.definitions: dict[str, set[str]] | None = None  # fully qualified name -> property names
        self.events_refused: tuple[float, str] | None = None  # (since, HubSpot's reason)

    async def send_legacy_events(
        self, events: Sequence[TrackedEvent], traits: dict[int, dict[str, Any]], s: Settlement
    ) -> None:
        """The events HTTP API, one call an event: `_n` is the event's name (or the HubSpot
        eventId it is mapped to), `_m` its revenue, and the contact properties ride along."""
        for m, op, email in events:
            params = {
                "_n": mapped_event(self.options.event_names, op.label) or op.label or op.name,
                "email": email,
            }
            # `_m`, the event's value: Segment's spec names revenue, and value when there is none
            if "revenue" in op.properties:
                params["_m"] = op.properties["revenue"]
            elif "value" in op.properties:
                params["_m"] = op.properties["value"]
            if m.id in traits:
                contact = await self.prepared("contacts", traits[m.id])
                contact.pop("email", None)
                params.update({k: v for k, v in contact.items() if not k.startswith("_")})

            async def send(chunk: list[Record], params: dict[str, str] = params) -> None:
                await self.client.legacy_event(params)

            await self.split_send([Record(op.uuid, {}, [m.id])], send, s)

    def full_name(self, name: str) -> str:
        prefix = f"pe{self.account.hub_id}_"
        return name if name.startswith(prefix) else prefix + name

    def _definitions_key(self) -> str:
        return f"definitions:{self.account.hub_id}"

    async def read_definitions(self, *, refresh: bool = False) -> dict[str, set[str]]:
        """The portal's event definitions: read once, from HubSpot or from the cache relay
        processes share (`refresh`: from HubSpot, another process having created one)."""

        async def read() -> dict[str, set[str]]:
            found = await self.call(self.client.event_definitions)
            self.paths_answered()
            return {d["fullyQualifiedName"]: {p["name"] for p in d.get("properties", [])} for d in found}

        async def read_dumped() -> bytes:
            return orjson.dumps({k: sorted(v) for k, v in (await read()).items()})

        if self.definitions is None or refresh:
            if self.ctx.cache is None or refresh:
                self.definitions = await read()
                await self._share_definitions()
            else:
                shared = await self.ctx.cache.once(
                    self._definitions_key(), self.options.catalog_ttl_s, read_dumped
                )
                self.definitions = {k: set(v) for k, v in orjson.loads(shared).items()}
        return self.definitions

    async def _share_definitions(self) -> None:
        if self.ctx.cache is not None and self.definitions is not None:
            await self.ctx.cache.set(
                self._definitions_key(),
                orjson.dumps({k: sorted(v) for k, v in self.definitions.items()}),
                self.options.catalog_ttl_s,
            )

    async def ensure_definitions(self, events: Sequence[TrackedEvent], s: Settlement) -> set[str]:
        """Definitions (and their properties) for these events; returns the names that are usable.
        One batch at a time: two batches in flight must not both create the same definition."""
        async with self.ctx.setup_lock:
            return await self._ensure_definitions_now(events, s)

    async def _ensure_definitions_now(
        self, events: Sequence[TrackedEvent], s: Settlement
    ) -> set[str]:
        definitions = await self.read_definitions()
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
                    made = await self._create_definition(fqn, op, keys)
                    definitions = self.definitions if self.definitions is not None else definitions
                    definitions[fqn] = made
                    await self._share_definitions()
                missing = sorted(keys - definitions[fqn])
                for key in missing:
                    try:
                        await self.call(
                            partial(
                                self.client.add_event_property,
                                fqn,
                                {"name": key, "label": key, "type": "string"},
                            )
                        )
                    except HubSpotError as e:
                        if not MADE_MEANWHILE(e):
                            raise
                    definitions[fqn].add(key)
                if missing:
                    await self._share_definitions()
                usable.add(fqn)
            except HubSpotError as e:
                if verdict(e).account:  # the account's, not this definition's (see `send`)
                    raise
                self.failed(e, [m.id for m, ev, _ in events if self.full_name(ev.name) == fqn], s)
        return usable

    async def _create_definition(self, fqn: str, op: Event, keys: set[str]) -> set[str]:
        """Create an event's definition; returns its property names. Relay processes sharing a
        cache create it once: the others wait for it, then take what the first one made."""

        async def create() -> set[str]:
            short = fqn.removeprefix(f"pe{self.account.hub_id}_")
            try:
                created = await self.call(
                    partial(
                        self.client.create_event_definition,
                        {
                            "label": (op.label or short)[:100],
                            "name": short,
                            "primaryObject": "CONTACT",
                            # Required by HubSpot's published request schema (v3 and dated):
                            # HubSpot's default event properties (page, device, location) too.
                            "includeDefaultProperties": True,
                            "description": f'Segment event "{op.label or short}", from hubspot-relay',
                            "propertyDefinitions": [
                                {"name": k, "label": k, "type": "string"} for k in sorted(keys)
                            ],
                        },
                    )
                )
                log.info("created event definition", account=self.account.name, name=fqn)
                return {p["name"] for p in created.get("properties", [])}
            except HubSpotError as e:
                # Created meanwhile (by another relay process, or by hand): read it back.
                if not MADE_MEANWHILE(e):
                    raise
                definitions = await self.read_definitions(refresh=True)
                if fqn not in definitions:
                    raise
                return definitions[fqn]

        if self.ctx.cache is None:
            return await create()

        async def create_once() -> bytes:
            shared = await self.ctx.cache.get(self._definitions_key()) if self.ctx.cache is not None else None
            if shared is not None and fqn in (known := orjson.loads(shared)):
                return orjson.dumps(known[fqn])  # made by another process before we asked
            return orjson.dumps(sorted(await create()))

        key = f"definition:{self.account.hub_id}:{fqn}"
        return set(orjson.loads(await self.ctx.cache.once(key, self.options.catalog_ttl_s, create_once)))

    def events_refused_now(self) -> bool:
        return bool(self.events_refused and self.clock() - self.events_refused[0] < EVENTS_RECHECK_S)

    async def send_events(
        self,
        events: Sequence[TrackedEvent],
        s: Settlement,
        definitions: asyncio.Task[set[str]] | None = None,
    ) -> None:
        """Send `events`; `definitions`, when given, is their definitions being ensured already
        (side by side with the batch's contacts)."""
        ids = [m.id for m, _, _ in events]
        if self.events_refused_now() and self.events_refused:
            s.fail(ids, self.events_refused[1])
            return
        try:
            usable = await (definitions if definitions is not None else self.ensure_definitions(events, s))
        except HubSpotError as e:
            if not EVENTS_REFUSED(e):  # the token, a path, the store: not custom events
                self.failed(e, ids, s)
                return
            self._refuse_events(e)
            s.fail(ids, self.events_refused[1] if self.events_refused else e.describe())
            return
        pending: list[Record] = []
        for m, op, email in events:
            fqn = self.full_name(op.name)
            if fqn not in usable:
                if m.id not in s.retry and m.id not in s.dead:
                    s.fail([m.id], f"HubSpot has no event definition {fqn} (create_event_definitions is off)")
                continue
            pending.append(
                Record(
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
            await asyncio.to_thread(self.identity.set_problem, self.account.name, "custom_events", None)
        self.paths_answered()

        async def send(chunk: list[Record]) -> None:
            try:
                await self.client.send_events([p.properties for p in chunk])
            except HubSpotError as e:
                if EVENTS_REFUSED(e):
                    self._refuse_events(e)
                raise

        size = self.options.event_batch
        chunks = [pending[start : start + size] for start in range(0, len(pending), size)]
        if chunks and len(chunks[-1]) < size:
            # Not full: these go with the next cycle's events (they lead its lease, being older)
            # instead of in a call of their own, while they are younger than `batch_wait_ms`
            # (a trickle sends one call per `batch_wait_ms`, not one per flush), while more is
            # queued and this batch filled a call (so the next one will too: a lease smaller than
            # a call must not keep its events waiting for a full one), or while the batch handed
            # back young contacts for a fuller upsert call (their events follow at once; events
            # held back behind their contacts' calls are no longer young), up to HubSpot's window.
            received = {m.id: m.received_at for m, _, _ in events}
            age = self.clock() - min(received[i] for p in chunks[-1] for i in p.ids)
            young = age < self.options.batch_wait_ms / 1000
            followed = bool(s.deferred) and age < FOLLOWED_WAIT_S
            if young or followed or (s.more_waiting and len(chunks) > 1):
                s.carried.update(i for p in chunks.pop() for i in p.ids)
        await self.send_chunks(chunks, send, s)

    def paths_answered(self) -> None:
        """The portal serves a published custom-events path again: its problem is cleared."""
        if self.client.events.spelling is not None and "unserved_path" in self.ctx.reported:
            self.ctx.reported.pop("unserved_path", None)
            self.identity.set_problem(self.account.name, "unserved_path", None)

    def _refuse_events(self, e: HubSpotError) -> None:
        reason = e.describe()
        if EVENTS_REFUSED(e):
            reason = (
                f"HubSpot refuses custom behavioral events for portal {self.account.hub_id} "
                f"(they need an Enterprise subscription and the analytics.behavioral_events.send scope): "
                f"{e.describe()}. Contacts keep flowing; replay these after an upgrade."
            )
        self.events_refused = (self.clock(), reason)
        self.identity.set_problem(self.account.name, "custom_events", reason)
        log.error("custom events refused", account=self.account.name, reason=reason)


# ---- planning -------------------------------------------------------------------------------

NO_EMAIL = "no email is known for this user: send an identify with an email (or properties.email) and replay"


def take(t: Taking, op: Event) -> None:
    email = t.email(op.ref)
    if email:
        t.plan.of(EVENTS).append(TrackedEvent(t.message, op, email))
    else:
        t.no_email(NO_EMAIL)


def take_legacy(t: Taking, op: Event | ContactUpdate) -> None:
    """An event, or (Segment's legacy "Setting Contact Properties on Track") the contact
    properties a track sets, which go with its event instead of a contact call."""
    legacy = t.plan.of(LEGACY_EVENTS)
    if isinstance(op, ContactUpdate):
        legacy.traits.setdefault(t.message.id, {}).update(op.properties)
        return
    email = t.email(op.ref)
    if email:
        legacy.events.append(TrackedEvent(t.message, op, email))
    else:
        t.no_email(NO_EMAIL)


def keys(op: Event | ContactUpdate, resolve: Resolve) -> Keys:
    """Events are not ordered among themselves (each has its time): they only wait for a
    contact's upsert in flight. The properties a legacy track sets are a write."""
    email = resolve(op.ref)
    found = {email.lower()} if email else set()
    return (found, set()) if isinstance(op, ContactUpdate) else (set(), found)


def owed(items: Events) -> Iterable[Sequence[int]]:
    return ([e.message.id] for e in items)


def split(items: Events, hung: set[str]) -> tuple[Events, Events]:
    """(the events to send now, those of contacts whose upserts hang: after them)."""
    return [e for e in items if e.email.lower() not in hung], [e for e in items if e.email.lower() in hung]


async def send(sender: EventSender, items: Events, run: Run) -> Sent:
    definitions = run.started.get(DEFINITIONS.name)
    await sender.send_events(items, run.s, definitions)
    return None


async def start_definitions(sender: EventSender, items: Events, run: Run) -> Sent:
    """Definitions are made ready while the contacts go (a round trip each, at HubSpot's
    latency); the events stage awaits them."""
    run.started[DEFINITIONS.name] = asyncio.create_task(sender.ensure_definitions(items, run.s))
    return None


def owed_legacy(items: LegacyEvents) -> Iterable[Sequence[int]]:
    return ([e.message.id] for e in items.events)


def split_legacy(items: LegacyEvents, hung: set[str]) -> tuple[LegacyEvents, LegacyEvents]:
    now, after = split(items.events, hung)
    return LegacyEvents(now, items.traits), LegacyEvents(after, items.traits)


async def send_legacy(sender: EventSender, items: LegacyEvents, run: Run) -> Sent:
    await sender.send_legacy_events(items.events, items.traits, run.s)
    return None


EVENTS: Stage[Events, EventSender] = Stage(
    name="events",
    does="custom behavioral events, 500 a call, each after its own contact's upsert",
    item=TrackedEvent,
    new=list,
    sender=EventSender,
    send=send,
    owed=owed,
    takes=(Event,),
    take=take,
    keys=keys,
    after=("contacts", "event definitions"),
    modes=V3,
    holds=False,
    split=split,
)

DEFINITIONS: Stage[Events, EventSender] = Stage(
    name="event definitions",
    does="the events' definitions and properties, made on first use while the contacts go",
    item=TrackedEvent,
    new=list,
    sender=EventSender,
    send=start_definitions,
    uses=EVENTS,
    modes=V3,
    holds=False,
    early=True,
    ready=lambda sender: not sender.events_refused_now(),
)

LEGACY_EVENTS: Stage[LegacyEvents, EventSender] = Stage(
    name="legacy events",
    does="Segment's legacy events HTTP API, an event a call, with the track's contact properties",
    item=TrackedEvent,
    new=LegacyEvents,
    sender=EventSender,
    send=send_legacy,
    owed=owed_legacy,
    takes=(Event, ContactUpdate),
    claims=lambda op, on_event: isinstance(op, Event) or on_event,
    take=take_legacy,
    keys=keys,
    after=("contacts",),
    modes=LEGACY,
    holds=False,
    split=split_legacy,
)
