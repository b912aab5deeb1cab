"""The subscriptions stage: email subscription changes, many a call (`statuses/batch/write`)
where the portal takes them, one by one where it does not (HubSpot keeps batch writes for
Marketing Hub Enterprise: its 403 switches this account to single writes, starting with the
refused batch's). A status HubSpot refuses (a legal basis a GDPR portal requires, an unknown
subscription type) is dead-lettered alone with HubSpot's reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...hubspot.errors import HubSpotError
from ...hubspot.verdicts import BATCH_WRITES_REFUSED
from ...translate.operations import Subscription
from ..plan import Resolve, Taking
from ..sending import Sender, log
from ..settlement import Settlement
from .memberships import NOT_WITH_API_KEYS
from .stage import V3, Keys, Run, Sent, Stage

BATCH = 100


@dataclass
class SubscriptionChange:
    """The status to write for one contact (`key`, its email) and subscription type."""

    key: str
    subscription_id: int
    subscribed: bool
    legal_basis: str | None = None
    legal_basis_explanation: str | None = None
    ids: list[int] = field(default_factory=list)


Subscriptions = dict[tuple[str, int], SubscriptionChange]  # (lowercased email, type) -> the latest


def status(p: SubscriptionChange) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriberIdString": p.key,
        "channel": "EMAIL",
        "statusState": "SUBSCRIBED" if p.subscribed else "UNSUBSCRIBED",
        "subscriptionId": p.subscription_id,
    }
    if p.legal_basis:
        body["legalBasis"] = p.legal_basis
    if p.legal_basis_explanation:
        body["legalBasisExplanation"] = p.legal_basis_explanation
    return body


class SubscriptionSender(Sender):
    batch_refused = False  # the portal took no batch write: single writes from then on

    async def send_subscriptions(self, items: list[SubscriptionChange], s: Settlement) -> None:
        if self.batch_refused:
            await self.send_chunks([[p] for p in items], self._one, s)
            return
        chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        await self.send_chunks(chunks, self._batch, s)

    async def _one(self, chunk: list[SubscriptionChange]) -> None:
        await self.client.write_subscription(status(chunk[0]))

    async def _batch(self, chunk: list[SubscriptionChange]) -> None:
        if not self.batch_refused:
            try:
                await self.client.write_subscriptions([status(p) for p in chunk])
                return
            except HubSpotError as e:
                if not BATCH_WRITES_REFUSED(e):
                    raise
                self.batch_refused = True  # this account's portal: single writes from now on
                log.info(
                    "subscription changes written one by one", account=self.account.name, why=e.describe()
                )
        for p in chunk:  # (a refusal is isolated to its status by halving the chunk, as ever)
            await self.client.write_subscription(status(p))


# ---- planning -------------------------------------------------------------------------------


def take(t: Taking, op: Subscription) -> None:
    email = t.email(op.ref)
    if not email:
        t.verdicts.fail([t.message.id], "no email is known for this user: a subscription change needs one")
        return
    key = (email.lower(), op.subscription_id)
    fresh = SubscriptionChange(email, op.subscription_id, op.subscribed)
    change = t.plan.of(SUBSCRIPTIONS).setdefault(key, fresh)
    change.subscribed = op.subscribed  # the latest message wins
    change.legal_basis = op.legal_basis
    change.legal_basis_explanation = op.legal_basis_explanation
    change.ids.append(t.message.id)


def keys(op: Subscription, resolve: Resolve) -> Keys:
    email = resolve(op.ref)
    return ({email.lower()} if email else set()), set()


def owed(items: Subscriptions) -> Iterable[Sequence[int]]:
    return (p.ids for p in items.values())


async def send(sender: SubscriptionSender, items: Subscriptions, run: Run) -> Sent:
    await sender.send_subscriptions(list(items.values()), run.s)
    return None


SUBSCRIPTIONS: Stage[Subscriptions, SubscriptionSender] = Stage(
    name="subscriptions",
    does="email subscription statuses, 100 a call (one by one where the portal refuses batches)",
    item=SubscriptionChange,
    new=dict,
    sender=SubscriptionSender,
    send=send,
    owed=owed,
    takes=(Subscription,),
    take=take,
    keys=keys,
    modes=V3,
    elsewhere=NOT_WITH_API_KEYS,
)
