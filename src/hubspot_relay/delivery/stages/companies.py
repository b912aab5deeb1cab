"""The companies stage: Segment groups as companies (upserted by a unique property keyed by
groupId, or found by domain once and updated), then their members associated. Not in legacy
mode (API keys), as in Segment's HubSpot integration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ...hubspot.errors import HubSpotError
from ...translate import CompanyUpdate
from ..plan import Resolve, Taking
from ..sending import Sender
from ..settlement import Settlement
from .contacts import upsert
from .stage import V3, Keys, Run, Sent, Stage

LEGACY_GROUPS = "group calls are not delivered in legacy mode (API key)"


@dataclass
class CompanyBatch:
    """A company (a Segment group) as several messages describe it."""

    group_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    ids: list[int] = field(default_factory=list)


Companies = dict[str, CompanyBatch]  # groupId -> the company


class CompanySender(Sender):
    async def send_companies(self, groups: list[CompanyBatch], s: Settlement) -> None:
        """Upsert each company (by a unique property keyed by groupId, or found by domain): company
        ids are remembered, so a search happens once per company."""
        account = self.account.name
        # what the map knows, read at once and off the event loop (on Redis each is a round trip)
        known = await asyncio.to_thread(
            self.identity.record_ids, account, [g.group_id for g in groups], companies=True
        )
        prepared = await self.prepared_many("companies", [group.properties for group in groups])
        for group, props in zip(groups, prepared, strict=True):
            try:
                company_id = await self._upsert(group, props, known.get(group.group_id))
                await asyncio.to_thread(self.identity.save_company, account, group.group_id, company_id)
                s.pay(group.ids)
            except HubSpotError as e:
                self.failed(e, group.ids, s)

    async def _upsert(self, group: CompanyBatch, props: dict[str, str], company_id: str | None) -> str:
        """The company's id once written: upserted by the unique property, or (without one)
        found by domain the first time, updated, or created."""
        unique = self.options.company_id_property
        if unique:
            result = await self.call(
                partial(
                    self.client.batch,
                    "companies",
                    "upsert",
                    [{"id": group.group_id, "idProperty": unique, "properties": props}],
                )
            )
            return str(result["results"][0]["id"])
        if not company_id and group.domain:
            domain = {"propertyName": "domain", "operator": "EQ", "value": group.domain}
            found = await self.call(
                partial(
                    self.client.search, "companies", {"filterGroups": [{"filters": [domain]}], "limit": 1}
                )
            )
            if found.get("results"):
                company_id = str(found["results"][0]["id"])
        if company_id:
            await self.call(
                partial(self.client.batch, "companies", "update", [{"id": company_id, "properties": props}])
            )
            return company_id
        result = await self.call(partial(self.client.batch, "companies", "create", [{"properties": props}]))
        return str(result["results"][0]["id"])


# ---- planning -------------------------------------------------------------------------------


def take(t: Taking, op: CompanyUpdate) -> None:
    """The group's traits into its company; its member's contact upserted first (see the
    company members stage)."""
    m = t.message
    group = t.plan.of(COMPANIES).setdefault(op.group_id, CompanyBatch(op.group_id))
    group.properties.update(op.properties)
    group.domain = op.domain or group.domain
    group.ids.append(m.id)
    email = t.email(op.member)
    if email:
        upsert(t.plan, email, {}, m.id)  # so that the contact exists, and its id is known


def keys(op: CompanyUpdate, resolve: Resolve) -> Keys:
    email = resolve(op.member)
    return {f"company:{op.group_id}", *([email.lower()] if email else [])}, set()


def owed(items: Companies) -> Iterable[Sequence[int]]:
    return (group.ids for group in items.values())


async def send(sender: CompanySender, items: Companies, run: Run) -> Sent:
    await sender.send_companies(list(items.values()), run.s)
    return None


COMPANIES: Stage[Companies, CompanySender] = Stage(
    name="companies",
    does="each group's company upserted (or found by domain)",
    item=CompanyBatch,
    new=dict,
    sender=CompanySender,
    send=send,
    owed=owed,
    takes=(CompanyUpdate,),
    take=take,
    keys=keys,
    after=("contacts",),
    reads=("company ids",),
    writes=("company ids",),
    modes=V3,
    elsewhere=LEGACY_GROUPS,
)
