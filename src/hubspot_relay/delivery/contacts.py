"""Sending contacts: the property catalog and value coercion, lifecycle stages cleared before a
backwards move, upserts 100 at a time side by side (v3) or the seed's contacts v1 batch."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..hubspot.errors import HubSpotError, Kind
from ..hubspot.lifecycle import LIFECYCLE_STAGES, is_backwards
from .planner import Pending
from .sending import Sender, Straggler, log
from .settlement import Settlement


class ContactSender(Sender):
    async def send_contacts(self, items: list[Pending], s: Settlement) -> list[Straggler]:
        """Upsert `items`; returns the calls left to finish on their own (hung: see
        `Sender.send_chunks`), which the batch awaits before what depends on their contacts."""
        for item in items:
            raw = item.properties
            item.extra["raw"] = raw
            item.properties = await self.prepared("contacts", raw)
            item.properties.pop("email", None)  # the upsert's id
        if self.legacy:
            await self._send_legacy_contacts(items, s)
            return []
        uid_property = self.options.user_id_property
        if uid_property:
            await self._ensure_user_id_property(uid_property)
            items = by_user(items)
        await self._lifecycle_first(items, s)

        def upsert_input(p: Pending) -> dict[str, Any]:
            user_id = p.extra.get("user_id")
            if uid_property and user_id:  # keyed by the user: a new email updates the same contact
                return {
                    "id": user_id,
                    "idProperty": uid_property,
                    "properties": {**p.properties, "email": p.key},
                }
            return {"id": p.key, "idProperty": "email", "properties": p.properties}

        async def send(chunk: list[Pending]) -> None:
            result = await self.client.batch("contacts", "upsert", [upsert_input(p) for p in chunk])
            by_email = {
                (r.get("properties") or {}).get("email", "").lower(): r for r in result.get("results", [])
            }
            rows = []
            for p in chunk:
                r = by_email.get(p.key.lower())
                rows.append((p.key, r["id"] if r else None, p.properties.get("lifecyclestage")))
            self.identity.save_contacts(self.account.name, rows)

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
            if e.kind is not Kind.CONFLICT:
                raise
        await self.catalog("contacts", refresh=True)

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
            clearing = [Pending(p.key, {"lifecyclestage": ""}, p.ids) for p in backwards]

            async def clear(chunk: list[Pending]) -> None:
                await self.client.batch(
                    "contacts",
                    "upsert",
                    [{"id": p.key, "idProperty": "email", "properties": p.properties} for p in chunk],
                )

            await self.split_send(clearing, clear, s, pays=False)


def by_user(items: list[Pending]) -> list[Pending]:
    """One upsert per user: a batch where a user changed email holds one contact per email, all
    keyed by the same userId (HubSpot refuses an id twice in a batch). They are merged in the
    order their messages came, so the latest email and values win."""
    groups: dict[str, list[Pending]] = {}
    order: list[Pending | str] = []  # each item, or the user id standing for its group
    for item in items:
        user_id = item.extra.get("user_id")
        if user_id is None:
            order.append(item)
            continue
        if user_id not in groups:
            groups[user_id] = []
            order.append(user_id)
        groups[user_id].append(item)
    out: list[Pending] = []
    for entry in order:
        if isinstance(entry, Pending):
            out.append(entry)
            continue
        group = sorted(groups[entry], key=lambda p: max(p.ids))
        merged = group[0]
        for later in group[1:]:
            merged.key = later.key
            merged.properties = {**merged.properties, **later.properties}
            merged.ids = merged.ids + later.ids
            merged.extra["raw"] = {**merged.extra.get("raw", {}), **later.extra.get("raw", {})}
        out.append(merged)
    return out
