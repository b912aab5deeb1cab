"""Audiences into HubSpot lists: each audience's MANUAL list found by name (or made on first use),
then the batch's contacts added to it and removed from it, many a call (`add-and-remove`), under
the same budget, retries and dead letters as every other call. A list that exists but does not
take members (a DYNAMIC one) is the account's problem, in words, and its messages wait."""

from __future__ import annotations

import asyncio

from ..hubspot.errors import HubSpotError, Kind
from ..translate.audiences import list_name
from .catalog import Catalogs
from .context import Context
from .planner import Pending
from .sending import Sender
from .settlement import Settlement

CONTACTS_LIST = "0-1"  # HubSpot's object type ids: contacts,
COMPANIES_LIST = "0-2"  # companies
MEMBERS_PER_CALL = 1000
TAKE_MEMBERS = ("MANUAL", "SNAPSHOT")


class ListSender(Sender):
    def __init__(self, ctx: Context, catalogs: Catalogs) -> None:
        super().__init__(ctx, catalogs)
        self.list_ids: dict[str, str] = {}  # lowercased list name -> its id (this process's)

    async def send_memberships(
        self, memberships: dict[str, dict[str, Pending]], s: Settlement, *, companies: bool = False
    ) -> None:
        """Contacts (by email) into their audiences' lists, or with `companies` the groups'
        companies (by groupId) into company lists."""
        object_type_id = COMPANIES_LIST if companies else CONTACTS_LIST
        for audience, by_email in memberships.items():
            name = list_name(audience, self.options.list_names)
            members = [p for p in by_email.values() if not any(i in s.retry or i in s.dead for i in p.ids)]
            try:
                list_id = await self._list_id(name, object_type_id)
            except HubSpotError as e:
                self.failed(e, [i for p in members for i in p.ids], s)
                continue
            # every member's HubSpot id in one read, off the event loop (on Redis it is a round trip)
            known = await asyncio.to_thread(
                self.identity.record_ids, self.account.name, [p.key for p in members], companies=companies
            )
            ready = []
            for p in members:
                record_id = known.get(p.key if companies else p.key.lower())
                if record_id is None:  # its upsert did not answer with an id: try it again
                    s.fail(p.ids, f"HubSpot gave no id for {p.key} yet", retry_in=0.0)
                else:
                    p.extra["contact_id"] = record_id
                    ready.append(p)

            async def send(chunk: list[Pending], list_id: str = list_id) -> None:
                add = [p.extra["contact_id"] for p in chunk if p.extra["member"]]
                remove = [p.extra["contact_id"] for p in chunk if not p.extra["member"]]
                await self.client.change_memberships(list_id, add, remove)

            chunks = [ready[i : i + MEMBERS_PER_CALL] for i in range(0, len(ready), MEMBERS_PER_CALL)]
            await self.send_chunks(chunks, send, s)

    async def _list_id(self, name: str, object_type_id: str) -> str:
        cached = f"{object_type_id}:{name.lower()}"
        known = self.list_ids.get(cached)
        if known is not None:
            return known
        found = await self.call(lambda: self.client.list_by_name(object_type_id, name))
        if found is None:
            try:
                found = await self.call(lambda: self.client.create_list(name, object_type_id))
            except HubSpotError as e:  # made meanwhile (another relay process): read it back
                found = await self.call(lambda: self.client.list_by_name(object_type_id, name))
                if found is None:
                    raise e from None
        if found.get("processingType") not in TAKE_MEMBERS:
            raise HubSpotError(
                400,
                {
                    "category": "LIST_NOT_MANUAL",
                    "message": (
                        f"HubSpot list {name!r} (id {found.get('listId')}) is a "
                        f"{found.get('processingType')} list, which takes no members: make it a static "
                        f"list in HubSpot, or give this audience another list in the account's "
                        f"list_names option. Its memberships wait meanwhile."
                    ),
                },
                kind=Kind.SETUP,
            )
        self.list_ids[cached] = str(found["listId"])
        return str(found["listId"])
