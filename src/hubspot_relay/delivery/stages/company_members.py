"""The company members stage: each group call's contact associated with the group's company,
once both are written (their ids read from the identity map at once, off the event loop), 100
pairs a call, across every company of the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from ...hubspot.errors import HubSpotError
from ...translate import CompanyUpdate
from ..plan import Taking
from ..sending import Sender
from ..settlement import Settlement
from .companies import LEGACY_GROUPS
from .stage import V3, Run, Sent, Stage

PAIRS_PER_CALL = 100


@dataclass
class Member:
    """A contact (by email) that a group call makes a member of the group's company."""

    email: str
    group_id: str
    ids: list[int] = field(default_factory=list)


Members = dict[tuple[str, str], Member]  # (lowercased email, groupId) -> the member


class MemberSender(Sender):
    async def associate(self, members: Sequence[Member], s: Settlement) -> None:
        """Every member whose contact and company HubSpot gave ids for (a company whose upsert
        failed is settled by that stage), associated; a refused call settles its messages."""
        settled = set(s.retry) | set(s.dead)
        members = [m for m in members if not settled.intersection(m.ids)]
        account = self.account.name
        contacts = await asyncio.to_thread(self.identity.record_ids, account, [m.email for m in members])
        companies = await asyncio.to_thread(
            self.identity.record_ids, account, list({m.group_id for m in members}), companies=True
        )
        pairs: dict[tuple[str, str], list[int]] = {}
        for m in members:
            contact_id, company_id = contacts.get(m.email.lower()), companies.get(m.group_id)
            if contact_id and company_id:
                pairs.setdefault((contact_id, company_id), []).extend(m.ids)
        listed = list(pairs.items())
        for start in range(0, len(listed), PAIRS_PER_CALL):
            chunk = listed[start : start + PAIRS_PER_CALL]
            try:
                await self.call(partial(self.client.associate, "contact", "company", [p for p, _ in chunk]))
            except HubSpotError as e:
                self.failed(e, [i for _, ids in chunk for i in ids], s)


def take(t: Taking, op: CompanyUpdate) -> None:
    email = t.email(op.member)
    if email:
        members = t.plan.of(COMPANY_MEMBERS)
        members.setdefault((email.lower(), op.group_id), Member(email, op.group_id)).ids.append(t.message.id)


async def send(sender: MemberSender, items: Members, run: Run) -> Sent:
    await sender.associate(list(items.values()), run.s)
    return None


COMPANY_MEMBERS: Stage[Members, MemberSender] = Stage(
    name="company members",
    does="each group call's contact associated with the group's company, 100 pairs a call",
    item=Member,
    new=dict,
    sender=MemberSender,
    send=send,
    takes=(CompanyUpdate,),
    take=take,
    after=("contacts", "companies"),  # both ids
    reads=("contact ids", "company ids"),
    modes=V3,
    elsewhere=LEGACY_GROUPS,
)
