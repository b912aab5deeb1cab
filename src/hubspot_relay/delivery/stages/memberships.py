"""The list membership stages: audiences into HubSpot lists. Each audience's MANUAL list found by
name (or made on first use), then the batch's contacts (or, for an account audience, the groups'
companies) added to it and removed from it, many a call (`add-and-remove`), under the same
budget, retries and dead letters as every other call. A list that exists but does not take
members (a DYNAMIC one) is the account's problem, in words, and its messages wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...hubspot.errors import HubSpotError, setup_needed
from ...translate import Membership
from ...translate.audiences import list_name
from ..catalog import Catalogs
from ..context import Context
from ..plan import Resolve, Taking
from ..sending import Sender
from ..settlement import Settlement
from .contacts import upsert
from .stage import V3, Keys, Run, Sent, Stage

NOT_WITH_API_KEYS = "lists and subscriptions need a private app or OAuth token (not an API key)"


@dataclass
class MemberChange:
    """A contact (by email) or company (by groupId) into or out of an audience's list."""

    key: str
    member: bool  # the latest message wins
    ids: list[int] = field(default_factory=list)
    record_id: str = ""  # HubSpot's id, read from the identity map before the calls


Memberships = dict[str, dict[str, MemberChange]]  # audience -> lowercased email (or groupId) -> change

CONTACTS_LIST = "0-1"  # HubSpot's object type ids: contacts,
COMPANIES_LIST = "0-2"  # companies
MEMBERS_PER_CALL = 1000
TAKE_MEMBERS = ("MANUAL", "SNAPSHOT")


class ListSender(Sender):
    def __init__(self, ctx: Context, catalogs: Catalogs) -> None:
        super().__init__(ctx, catalogs)
        self.list_ids: dict[str, str] = {}  # lowercased list name -> its id (this process's)

    async def send_memberships(
        self, memberships: Memberships, s: Settlement, *, companies: bool = False
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
                    p.record_id = record_id
                    ready.append(p)

            async def send(chunk: list[MemberChange], list_id: str = list_id) -> None:
                add = [p.record_id for p in chunk if p.member]
                remove = [p.record_id for p in chunk if not p.member]
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
            raise setup_needed(
                "LIST_NOT_MANUAL",
                f"HubSpot list {name!r} (id {found.get('listId')}) is a "
                f"{found.get('processingType')} list, which takes no members: make it a static "
                f"list in HubSpot, or give this audience another list in the account's "
                f"list_names option. Its memberships wait meanwhile.",
            )
        self.list_ids[cached] = str(found["listId"])
        return str(found["listId"])


# ---- planning -------------------------------------------------------------------------------


def _change(memberships: Memberships, audience: str, key: str, member: bool, mid: int, *, by: str) -> None:
    """One more message about `key` in the audience (`by`: how the batch keys it); the latest wins."""
    change = memberships.setdefault(audience, {}).setdefault(by, MemberChange(key, member))
    change.member = member
    change.ids.append(mid)


def take_contact(t: Taking, op: Membership) -> None:
    """The contact in or out of the audience's list (the contact upserted first, for its id)."""
    email = t.email(op.ref)
    if not email:
        t.verdicts.fail(
            [t.message.id],
            "no email is known for this user: an audience's membership needs the contact "
            "(send an identify with an email) and replay",
        )
        return
    upsert(t.plan, email, {}, t.message.id)
    _change(t.plan.of(LIST_MEMBERSHIPS), op.audience, email, op.member, t.message.id, by=email.lower())


def take_company(t: Taking, op: Membership) -> None:
    """The group's company in or out of the account audience's list (a company list)."""
    assert op.group_id is not None  # (a groupId is case-sensitive: kept as it is)
    changes = t.plan.of(COMPANY_LIST_MEMBERSHIPS)
    _change(changes, op.audience, op.group_id, op.member, t.message.id, by=op.group_id)


def contact_keys(op: Membership, resolve: Resolve) -> Keys:
    email = resolve(op.ref)
    return ({email.lower()} if email else set()), set()


def company_keys(op: Membership, resolve: Resolve) -> Keys:
    return {f"company:{op.group_id}"}, set()


def owed(items: Memberships) -> Iterable[Sequence[int]]:
    return (p.ids for members in items.values() for p in members.values())


async def send_contacts(sender: ListSender, items: Memberships, run: Run) -> Sent:
    await sender.send_memberships(items, run.s)
    return None


async def send_companies(sender: ListSender, items: Memberships, run: Run) -> Sent:
    await sender.send_memberships(items, run.s, companies=True)
    return None


LIST_MEMBERSHIPS: Stage[Memberships, ListSender] = Stage(
    name="list memberships",
    does="audiences' contacts into and out of their lists (made on first use), 1,000 a call",
    item=MemberChange,
    new=dict,
    sender=ListSender,
    send=send_contacts,
    owed=owed,
    takes=(Membership,),
    claims=lambda op, on_event: op.group_id is None,
    take=take_contact,
    keys=contact_keys,
    after=("contacts",),  # the contacts' ids
    reads=("contact ids",),
    modes=V3,
    elsewhere=NOT_WITH_API_KEYS,
)

COMPANY_LIST_MEMBERSHIPS: Stage[Memberships, ListSender] = Stage(
    name="company list memberships",
    does="account audiences' companies into and out of company lists",
    item=MemberChange,
    new=dict,
    sender=ListSender,
    send=send_companies,
    owed=owed,
    takes=(Membership,),
    claims=lambda op, on_event: op.group_id is not None,
    take=take_company,
    keys=company_keys,
    after=("companies",),  # the companies' ids
    reads=("company ids",),
    modes=V3,
    elsewhere=NOT_WITH_API_KEYS,
)
