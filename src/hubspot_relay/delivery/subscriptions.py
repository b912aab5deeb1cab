"""Email subscription changes: many a call (`statuses/batch/write`) where the portal takes them,
one by one where it does not (HubSpot keeps batch writes for Marketing Hub Enterprise: its 403
switches this account to single writes, starting with the refused batch's). A
status HubSpot refuses (a legal basis a GDPR portal requires, an unknown subscription type) is
dead-lettered alone with HubSpot's reason."""

from __future__ import annotations

from typing import Any

from ..hubspot.errors import HubSpotError
from .planner import Pending
from .sending import Sender, log
from .settlement import Settlement

BATCH = 100


def status(p: Pending) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriberIdString": p.key,
        "channel": "EMAIL",
        "statusState": "SUBSCRIBED" if p.extra["subscribed"] else "UNSUBSCRIBED",
        "subscriptionId": p.extra["subscription_id"],
    }
    if p.extra.get("legal_basis"):
        body["legalBasis"] = p.extra["legal_basis"]
    if p.extra.get("legal_basis_explanation"):
        body["legalBasisExplanation"] = p.extra["legal_basis_explanation"]
    return body


class SubscriptionSender(Sender):
    batch_refused = False  # the portal took no batch write: single writes from then on

    async def send_subscriptions(self, items: list[Pending], s: Settlement) -> None:
        if self.batch_refused:
            await self.send_chunks([[p] for p in items], self._one, s)
            return
        chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        await self.send_chunks(chunks, self._batch, s)

    async def _one(self, chunk: list[Pending]) -> None:
        await self.client.write_subscription(status(chunk[0]))

    async def _batch(self, chunk: list[Pending]) -> None:
        if not self.batch_refused:
            try:
                await self.client.write_subscriptions([status(p) for p in chunk])
                return
            except HubSpotError as e:
                if e.status != 403:
                    raise
                self.batch_refused = True  # this account's portal: single writes from now on
                log.info(
                    "subscription changes written one by one", account=self.account.name, why=e.describe()
                )
        for p in chunk:  # (a refusal is isolated to its status by halving the chunk, as ever)
            await self.client.write_subscription(status(p))
