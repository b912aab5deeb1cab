"""The objects stage: the records the account's mappings make, upserted 100 a call per object
type, keyed by each mapping's unique `id_property`, values checked against that object's
catalog; then their associations, batched per pair of types and label, to the buyer's contact,
the company of a groupId, or another mapping's records from the same message.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...hubspot.errors import HubSpotError, not_in_portal
from ...translate import Link, prepare
from ...translate.mappings import Association, MappedRecord
from ...translate.segment import message_ids
from ..catalog import Catalogs
from ..context import Context
from ..plan import Record, Resolve, Taking
from ..sending import Sender
from ..settlement import Settlement
from .stage import V3, Keys, Run, Sent, Stage


@dataclass(frozen=True)
class Mapped:
    """The operation a message's matching mappings make: their records, and the message they
    were made from (its ids find the buyer)."""

    records: tuple[MappedRecord, ...]
    message: dict[str, Any]


@dataclass
class ObjectRecord:
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
class ObjectInput(Record):
    """One record's upsert input, keyed by its mapping's unique property."""

    id_property: str = ""


Objects = dict[tuple[str, str], ObjectRecord]  # (object, id) -> the record

STANDARD_OBJECTS = ("contacts", "companies", "deals", "tickets", "products", "line_items")
_SINGULAR = {"contact": "contacts", "company": "companies"}


class ObjectSender(Sender):
    def __init__(self, ctx: Context, catalogs: Catalogs) -> None:
        super().__init__(ctx, catalogs)
        self.object_paths: dict[str, str] = {}  # a mapping's `object` -> as HubSpot's paths take it
        self.association_types: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (from, to) -> labels

    async def object_path(self, name: str) -> str:
        """`deals` as it is; `pets` as `p<hubId>_pets` (read from the portal's schemas once)."""
        resolved = self.object_paths
        if name in resolved:
            return resolved[name]
        if name in STANDARD_OBJECTS or name.startswith(("0-", "2-", f"p{self.account.hub_id}_")):
            resolved[name] = name
            return name
        schemas = await self.call(self.client.schemas)
        for schema in schemas:
            if name in (schema.get("name"), schema.get("fullyQualifiedName"), schema.get("objectTypeId")):
                resolved[name] = str(schema["fullyQualifiedName"])
                return resolved[name]
        raise not_in_portal(f"no object type {name!r} in HubSpot portal {self.account.hub_id}")

    async def label_type(self, from_type: str, to_type: str, label: str | None) -> tuple[int, str] | None:
        """The association type for a label (None: the unlabeled default)."""
        if label is None:
            return None
        cache = self.association_types
        if (from_type, to_type) not in cache:
            cache[(from_type, to_type)] = await self.call(
                lambda: self.client.association_labels(from_type, to_type)
            )
        for entry in cache[(from_type, to_type)]:
            if entry.get("label") == label:
                return int(entry["typeId"]), str(entry.get("category", "USER_DEFINED"))
        raise not_in_portal(
            f"no association label {label!r} from {from_type} to {to_type} in portal {self.account.hub_id}"
        )

    async def send_objects(self, records: list[ObjectRecord], s: Settlement) -> None:
        hubspot_ids: dict[tuple[str, str], str] = {}  # (mapping object, id) -> HubSpot's record id
        by_object: dict[str, list[ObjectRecord]] = {}
        for record in records:
            by_object.setdefault(record.object, []).append(record)
        for name, group in by_object.items():
            path = await self.object_path(name)
            await self._upsert(path, name, group, s, hubspot_ids)
        await self._associate(records, s, hubspot_ids)

    async def _upsert(
        self,
        path: str,
        name: str,
        group: list[ObjectRecord],
        s: Settlement,
        hubspot_ids: dict[tuple[str, str], str],
    ) -> None:
        catalog = await self.catalog(path)
        items = []
        dropped: Tally[tuple[str, str]] = Tally()
        for record in group:
            clean, lost = prepare(record.properties, catalog)
            dropped.update(lost.items())
            items.append(ObjectInput(record.id, clean, list(record.ids), record.id_property))
        if dropped:  # the batch's at once, off the event loop
            await asyncio.to_thread(self.identity.count_dropped, self.account.name, path, dropped)

        async def send(chunk: list[ObjectInput]) -> None:
            inputs = [{"id": p.key, "idProperty": p.id_property, "properties": p.properties} for p in chunk]
            result = await self.client.batch(path, "upsert", inputs)
            for r in result.get("results", []):
                props = r.get("properties") or {}
                for p in chunk:
                    if str(props.get(p.id_property, "")) == p.key:
                        hubspot_ids[(name, p.key)] = str(r["id"])

        await self.send_batches(path, items, send, s)

    async def _associate(
        self, records: list[ObjectRecord], s: Settlement, hubspot_ids: dict[tuple[str, str], str]
    ) -> None:
        """Every association of the records that went through, one call per (types, label) and
        100 pairs; a target not known yet (a company no group call created) waits and retries."""
        calls: dict[tuple[str, str, str | None], dict[tuple[str, str], list[int]]] = {}
        # what the map knows of every target, read at once and off the event loop
        emails = [str(t) for r in records for a, t in r.associate if a.to == "contact"]
        groups = [str(t) for r in records for a, t in r.associate if a.to == "company"]
        account = self.account.name
        # lowercased email -> contact id: what the map knew, then what HubSpot answered
        sought: dict[str, str | None] = dict(
            await asyncio.to_thread(self.identity.record_ids, account, emails)
        )
        companies = await asyncio.to_thread(self.identity.record_ids, account, groups, companies=True)
        for record in records:
            from_id = hubspot_ids.get((record.object, record.id))
            if from_id is None:
                continue  # its upsert failed: settled there
            from_path = await self.object_path(record.object)
            for association, target in record.associate:
                to_path, to_ids = await self._targets(
                    association, target, record, hubspot_ids, s, sought, companies
                )
                for to_id in to_ids:
                    pairs = calls.setdefault((from_path, to_path, association.label), {})
                    pairs.setdefault((from_id, to_id), []).extend(record.ids)  # each pair once
        for (from_path, to_path, label), by_pair in calls.items():
            try:
                kind = await self.label_type(from_path, to_path, label)
            except HubSpotError as e:
                self.failed(e, [i for ids in by_pair.values() for i in ids], s)
                continue
            listed = list(by_pair.items())
            for start in range(0, len(listed), 100):
                chunk = listed[start : start + 100]
                items = [Record(f"{a}>{b}", {}, list(dict.fromkeys(ids))) for (a, b), ids in chunk]

                async def send(
                    part: list[Record], kind: Any = kind, f: str = from_path, t: str = to_path
                ) -> None:
                    pairs_ = [(a, b) for a, _, b in (p.key.partition(">") for p in part)]
                    if kind is None:
                        await self.client.associate(f, t, pairs_)
                    else:
                        await self.client.associate_labelled(f, t, pairs_, kind[0], kind[1])

                await self.split_send(items, send, s, pays=False)
        # The associations were owed once per message (see Delivery.deliver): paid now, unless failed.
        done = [i for r in records if r.associate for i in r.ids if i not in s.retry and i not in s.dead]
        s.pay(done)
        await self.ack_finished(s, done)

    async def _targets(
        self,
        association: Association,
        target: str | tuple[tuple[str, str], ...],
        record: ObjectRecord,
        hubspot_ids: dict[tuple[str, str], str],
        s: Settlement,
        sought: dict[str, str | None],  # contacts known, or looked up at HubSpot in this batch
        companies: dict[str, str],  # groupId -> company id (the identity map's)
    ) -> tuple[str, list[str]]:
        if association.to == "contact":
            contact_id = await self._find_contact(str(target), sought)
            if contact_id is None:
                s.fail(record.ids, f"no HubSpot contact for {target} yet", retry_in=0.0)
                return "contacts", []
            return "contacts", [contact_id]
        if association.to == "company":
            company_id = companies.get(str(target))
            if company_id is None:
                s.fail(
                    record.ids,
                    f"waiting for a group call that gives company {target} "
                    f"(to associate {record.object} with it)",
                    retry_in=0.0,
                )
                return "companies", []
            return "companies", [company_id]
        keys = target if isinstance(target, tuple) else ()
        if not keys:
            return "", []
        found = [hubspot_ids[key] for key in keys if key in hubspot_ids]
        return await self.object_path(keys[0][0]), found

    async def _find_contact(self, email: str, sought: dict[str, str | None]) -> str | None:
        """The contact with this email, or with it among its former ones (`hs_additional_emails`:
        a contact whose email changed keeps its old ones there). Looked for once a batch."""
        key = email.lower()
        if key in sought:
            return sought[key]
        sought[key] = None
        try:
            result = await self.call(
                lambda: self.client.batch(
                    "contacts", "read", [{"id": email}], idProperty="email", properties=["email"]
                )
            )
            found = [str(r["id"]) for r in result.get("results", [])]
            if not found:
                body = {
                    "filterGroups": [
                        {
                            "filters": [
                                {
                                    "propertyName": "hs_additional_emails",
                                    "operator": "CONTAINS_TOKEN",
                                    "value": email,
                                }
                            ]
                        }
                    ],
                    "properties": ["email", "hs_additional_emails"],
                    "limit": 10,
                }
                hits = (await self.call(lambda: self.client.search("contacts", body))).get("results", [])
                found = [
                    str(r["id"])
                    for r in hits
                    if email.lower()
                    in str((r.get("properties") or {}).get("hs_additional_emails", "")).lower().split(";")
                ]
        except HubSpotError:
            return None
        if not found:
            return None
        await asyncio.to_thread(self.identity.save_contacts, self.account.name, [(email, found[0], None)])
        sought[key] = found[0]
        return found[0]


# ---- planning -------------------------------------------------------------------------------


def take(t: Taking, op: Mapped) -> None:
    """This message's mapped records, coalesced by (object, id), their associations resolved to
    what the send step needs: the buyer's email, the company's groupId, the records of another
    mapping made from the same message."""
    m = t.message
    email = next((o.email for o in t.ops if isinstance(o, Link) and o.email), None)
    if email is None:
        email = t.email_of(message_ids(op.message))
    if email is None and any(a.to == "contact" for r in op.records for a, _ in r.associate):
        t.no_email("no email is known for this user, to associate the records with: send an identify")
        return
    by_mapping: dict[str, list[tuple[str, str]]] = {}
    for r in op.records:
        by_mapping.setdefault(r.mapping, []).append((r.object, r.id))
    objects = t.plan.of(OBJECTS)
    for r in op.records:
        fresh = ObjectRecord(r.mapping, r.object, r.id_property, r.id)
        pending = objects.setdefault((r.object, r.id), fresh)
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


def keys(op: Mapped, resolve: Resolve) -> Keys:
    return {f"object:{r.object}:{r.id}" for r in op.records}, set()


def owed(items: Objects) -> Iterable[Sequence[int]]:
    for record in items.values():
        yield record.ids  # its upsert
        if record.associate:
            yield record.ids  # and its associations, paid once they are all made


async def send(sender: ObjectSender, items: Objects, run: Run) -> Sent:
    await sender.send_objects(list(items.values()), run.s)
    return None


OBJECTS: Stage[Objects, ObjectSender] = Stage(
    name="objects",
    does="the records the account's mappings make (any object), then their associations",
    item=ObjectRecord,
    new=dict,
    sender=ObjectSender,
    send=send,
    owed=owed,
    takes=(Mapped,),
    take=take,
    keys=keys,
    after=("contacts", "companies"),  # associated with them
    reads=("contact ids", "company ids"),
    writes=("contact ids",),
    modes=V3,
    elsewhere="mapped records need a private app or OAuth token (not an API key)",
)


def _group(object_name: str) -> str:
    singular = {"deals": "deal", "tickets": "ticket", "products": "product", "line_items": "lineitem"}
    return f"{singular.get(object_name, object_name)}information"
