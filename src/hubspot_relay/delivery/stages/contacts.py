"""The contacts stage: identify's traits (and every other stage's contacts) as one upsert per
contact, in message order; the property catalog and value coercion, lifecycle stages cleared
before a backwards move, upserts 100 at a time side by side (v3) or Segment's legacy contacts
v1 batch (API key)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ...hubspot.errors import HubSpotError
from ...hubspot.lifecycle import LIFECYCLE_STAGES, is_backwards
from ...hubspot.verdicts import MADE_MEANWHILE
from ...translate import ContactUpdate
from ..identities import Late
from ..plan import Plan, Record, Resolve, Taking
from ..sending import Afterwards, Sender, Straggler, log
from ..settlement import Settlement
from .stage import Keys, Run, Sent, Stage


@dataclass
class ContactUpsert(Record):
    """A contact's one upsert: its email (`key`), the properties the batch's messages set."""

    user_id: str | None = None  # its key when the account has a `user_id_property`
    raw: dict[str, Any] = field(default_factory=dict)  # the properties before coercion


Contacts = dict[str, ContactUpsert]  # lowercased email -> its upsert


class ContactSender(Sender):
    async def send_contacts(self, items: list[ContactUpsert], s: Settlement) -> list[Straggler]:
        """Upsert `items`; returns the calls left to finish on their own (hung: see
        `Sender.send_chunks`), which the batch awaits before what depends on their contacts."""
        prepared = await self.prepared_many("contacts", [item.properties for item in items])
        for item, properties in zip(items, prepared, strict=True):
            item.raw, item.properties = item.properties, properties
            item.properties.pop("email", None)  # the upsert's id
        if self.legacy:
            await self._send_legacy_contacts(items, s)
            return []
        uid_property = self.options.user_id_property
        if uid_property:
            await self._ensure_user_id_property(uid_property)
            items = by_user(items)
        await self._lifecycle_first(items, s)

        def upsert_input(p: ContactUpsert) -> dict[str, Any]:
            user_id = p.user_id
            if uid_property and user_id:  # keyed by the user: a new email updates the same contact
                return {
                    "id": user_id,
                    "idProperty": uid_property,
                    "properties": {**p.properties, "email": p.key},
                }
            return {"id": p.key, "idProperty": "email", "properties": p.properties}

        async def send(chunk: list[ContactUpsert]) -> Afterwards:
            result = await self.client.batch("contacts", "upsert", [upsert_input(p) for p in chunk])
            by_email = {
                (r.get("properties") or {}).get("email", "").lower(): r for r in result.get("results", [])
            }
            rows = []
            for p in chunk:
                r = by_email.get(p.key.lower())
                rows.append((p.key, r["id"] if r else None, p.properties.get("lifecyclestage")))
            return self._save(rows)

        return await self.send_batches("contacts", items, send, s, leave_behind=True)

    async def _ensure_user_id_property(self, name: str) -> None:
        """The account's `user_id_property`, created (unique) the first time it is missing."""
        catalog = await self.catalog("contacts")
        if name in catalog:
            return
        try:
            await self.call(
                partial(
                    self.client.create_property,
                    "contacts",
                    {
                        "name": name,
                        "label": "Segment user ID",
                        "type": "string",
                        "fieldType": "text",
                        "groupName": "contactinformation",
                        "hasUniqueValue": True,
                        "description": "The userId Segment's clients send; hubspot-relay keys contacts by it",
                    },
                )
            )
            log.info("created the user id property", account=self.account.name, name=name)
        except HubSpotError as e:
            if not MADE_MEANWHILE(e):
                raise
        await self.catalog("contacts", refresh=True)

    async def _send_legacy_contacts(self, items: list[ContactUpsert], s: Settlement) -> None:
        """Segment's legacy dialect: `POST /contacts/v1/contact/batch/`, 100 contacts a call."""

        async def send(chunk: list[ContactUpsert]) -> Afterwards:
            await self.client.legacy_batch(
                [
                    {
                        "email": p.key,
                        "properties": [{"property": k, "value": v} for k, v in p.properties.items()],
                    }
                    for p in chunk
                ]
            )
            return self._save([(p.key, None, None) for p in chunk])

        size = self.options.contact_batch
        for start in range(0, len(items), size):
            await self.split_send(items[start : start + size], send, s)

    async def _lifecycle_first(self, items: list[ContactUpsert], s: Settlement) -> None:
        """HubSpot will not move a lifecycle stage backwards: clear it first where it would."""
        wanted = {p.key.lower(): p for p in items if p.properties.get("lifecyclestage") in LIFECYCLE_STAGES}
        if not wanted:
            return
        current: dict[str, str | None] = {}
        unknown = []
        known = await asyncio.to_thread(self._known_stages, list(wanted))  # off the event loop
        for email in wanted:
            stage = known.get(email)
            if stage:
                current[email] = stage
            else:
                unknown.append(email)
        for start in range(0, len(unknown), 100):
            chunk = unknown[start : start + 100]
            try:
                result = await self.call(
                    partial(
                        self.client.batch,
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
            clearing = [Record(p.key, {"lifecyclestage": ""}, p.ids) for p in backwards]

            async def clear(chunk: list[Record]) -> None:
                await self.client.batch(
                    "contacts",
                    "upsert",
                    [{"id": p.key, "idProperty": "email", "properties": p.properties} for p in chunk],
                )

            await self.split_send(clearing, clear, s, pays=False)

    def _save(self, rows: list[tuple[str, str | None, str | None]]) -> Afterwards:
        """The contacts' ids and stages into the identity map, off the event loop, once paid."""
        return Afterwards(lambda: asyncio.to_thread(self.identity.save_contacts, self.account.name, rows))

    def _known_stages(self, emails: Sequence[str]) -> dict[str, str | None]:
        """The lifecycle stages the identity map last saw for these contacts (in a worker thread)."""
        return {e: self.identity.contact(self.account.name, e)[1] for e in emails}


def by_user(items: list[ContactUpsert]) -> list[ContactUpsert]:
    """One upsert per user: a batch where a user changed email holds one contact per email, all
    keyed by the same userId (HubSpot refuses an id twice in a batch). They are merged in the
    order their messages came, so the latest email and values win."""
    groups: dict[str, list[ContactUpsert]] = {}
    order: list[ContactUpsert | str] = []  # each item, or the user id standing for its group
    for item in items:
        user_id = item.user_id
        if user_id is None:
            order.append(item)
            continue
        if user_id not in groups:
            groups[user_id] = []
            order.append(user_id)
        groups[user_id].append(item)
    out: list[ContactUpsert] = []
    for entry in order:
        if isinstance(entry, ContactUpsert):
            out.append(entry)
            continue
        group = sorted(groups[entry], key=lambda p: max(p.ids))
        merged = group[0]
        for later in group[1:]:
            merged.key = later.key
            merged.properties = {**merged.properties, **later.properties}
            merged.ids = merged.ids + later.ids
            merged.raw = {**merged.raw, **later.raw}
        out.append(merged)
    return out


# ---- planning -------------------------------------------------------------------------------


def upsert(plan: Plan, email: str, props: dict[str, Any], mid: int, user_id: str | None = None) -> None:
    """`props` into the contact's one upsert (later messages' values win); every stage that needs
    a contact to exist (or its id) adds the message here with no properties."""
    pending = plan.of(CONTACTS).setdefault(email.lower(), ContactUpsert(email, {}))
    pending.properties.update(props)
    pending.ids.append(mid)
    if user_id is not None:  # the contact's key when the account has a user_id_property
        pending.user_id = user_id


def add_late(plan: Plan, late: Sequence[Late]) -> None:
    """What writing the plan's ties found (see `identities.replay`): traits another process kept
    for an id this batch tied go under what the batch sets for the contact; this batch's own
    kept traits, for an id tied meanwhile, go with it after all."""
    contacts = plan.of(CONTACTS)
    for found in late:
        if found.under:
            pending = contacts.setdefault(found.email.lower(), ContactUpsert(found.email, {}))
            pending.properties = {**found.traits, **pending.properties}
            pending.ids.append(found.message)
        else:
            upsert(plan, found.email, dict(found.traits), found.message)
            plan.verdicts.waiting.discard(found.message)


def take(t: Taking, op: ContactUpdate) -> None:
    """Traits into the contact's upsert, or kept (in the identity map) until an email is known."""
    m = t.message
    email = t.email(op.ref)
    if not email:
        t.identities.keep(m.source, op.ref.ids, op.properties, m.id)
        t.verdicts.waiting.add(m.id)
    else:
        upsert(t.plan, email, op.properties, m.id, op.ref.user_id)


def keys(op: ContactUpdate, resolve: Resolve) -> Keys:
    email = resolve(op.ref)
    return ({email.lower()} if email else set()), set()


def owed(items: Contacts) -> Iterable[Sequence[int]]:
    return (p.ids for p in items.values())


async def send(sender: ContactSender, items: Contacts, run: Run) -> Sent:
    return await sender.send_contacts(list(items.values()), run.s)


CONTACTS: Stage[Contacts, ContactSender] = Stage(
    name="contacts",
    does="one upsert per contact (by email, or the user_id_property), 100 a call",
    item=ContactUpsert,
    new=dict,
    sender=ContactSender,
    send=send,
    owed=owed,
    takes=(ContactUpdate,),
    claims=lambda op, on_event: not on_event,  # legacy: a track's traits ride with its event
    take=take,
    keys=keys,
    reads=("lifecycle stages",),
    writes=("contact ids", "lifecycle stages"),
)
