"""Sending companies (Segment groups): upsert by a unique property keyed by groupId, or find by
domain once and update, then associate the members."""

from __future__ import annotations

from functools import partial

from ..hubspot.errors import HubSpotError
from .planner import CompanyBatch
from .sending import Sender
from .settlement import Settlement


class CompanySender(Sender):
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
                        partial(
                            self.client.batch,
                            "companies",
                            "upsert",
                            [{"id": group.group_id, "idProperty": unique, "properties": props}],
                        )
                    )
                    company_id = str(result["results"][0]["id"])
                else:
                    if not company_id and group.domain:
                        found = await self.call(
                            partial(
                                self.client.search,
                                "companies",
                                {
                                    "filterGroups": [
                                        {
                                            "filters": [
                                                {
                                                    "propertyName": "domain",
                                                    "operator": "EQ",
                                                    "value": group.domain,
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
                            partial(
                                self.client.batch,
                                "companies",
                                "update",
                                [{"id": company_id, "properties": props}],
                            )
                        )
                    else:
                        result = await self.call(
                            partial(self.client.batch, "companies", "create", [{"properties": props}])
                        )
                        company_id = str(result["results"][0]["id"])
                self.identity.save_company(self.account.name, group.group_id, company_id)
                s.pay(group.ids)
            except HubSpotError as e:
                self.failed(e, group.ids, s)
                continue
            for email in dict.fromkeys(group.members):
                contact_id, _ = self.identity.contact(self.account.name, email)
                if contact_id:
                    pairs.append((contact_id, company_id))
                    pair_ids.extend(group.ids)
        for start in range(0, len(pairs), 100):
            chunk = pairs[start : start + 100]
            try:
                await self.call(partial(self.client.associate, "contact", "company", chunk))
            except HubSpotError as e:
                self.failed(e, pair_ids, s)
