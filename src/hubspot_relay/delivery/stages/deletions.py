"""HubSpot's GDPR deletions for the right to be forgotten, judged like every other call.

A request names people; forgetting them in the relay yields the keys HubSpot knows their
contacts by (emails, the account's `user_id_property` values, contact ids). Each account then
deletes what it holds, one call per key, and the verdict table decides what a refusal means:
a 5xx, a 429 or a timeout leaves the key owed and the account retried later (a deletion the law
requires is never given up because HubSpot was busy); a permanent refusal ends the account
`FAILED` with HubSpot's words; an account on an API key cannot call GDPR delete at all and says
so. The keys owed live in the request until done, so a restart resumes where it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...hubspot.client import HubSpotClient
from ...hubspot.errors import HubSpotError
from ...hubspot.verdicts import verdict
from ...state.identity import Forgot
from ..sending import Sender
from .stage import V3, Stage

# What an account's part of a request shows (`detail.hubspot.<account>.status`).
DELETED, RETRYING, FAILED, NOT_SUPPORTED = "DELETED", "RETRYING", "FAILED", "NOT_SUPPORTED"
LEGACY_REASON = (
    "HubSpot's GDPR delete cannot be called with an API key (legacy mode): delete the contact in "
    "HubSpot (Contacts > Actions > Delete permanently) or give the account a private app token"
)


# Run per erasure request by `forgetting.Forgetter` (its requests, not the queue's messages,
# carry the work), with the same verdicts as every call; listed here so the table is whole.
DELETIONS: Stage[list[str], Sender] = Stage(
    name="HubSpot deletions",
    does="GDPR deletes of the contacts a right-to-be-forgotten request names, retried until done",
    item=str,
    new=list,
    sender=None,
    send=None,
    reads=("contact ids", "forgotten emails"),
    writes=("forgotten ties, ids and kept traits",),
    modes=V3,
    elsewhere=LEGACY_REASON,
    per="request",
)


@dataclass(frozen=True)
class Portal:
    """One account forgetting reaches: its client, and the property its contacts are keyed by."""

    client: HubSpotClient
    user_id_property: str | None = None

    @property
    def name(self) -> str:
        return self.client.account.name

    @property
    def legacy(self) -> bool:
        return self.client.account.api_mode == "legacy"


def keys_for(portal: Portal, forgot: Forgot, user_ids: Sequence[str]) -> list[list[str | None]]:
    """What to ask `portal` to delete, as `[objectId, idProperty]` (None: a record id): known
    contact ids first (they hold even if the email changed in HubSpot), then emails, then the
    user ids where the account keys contacts by them."""
    keys: list[list[str | None]] = [[cid, None] for cid in sorted(forgot.contact_ids.get(portal.name, ()))]
    keys += [[email, "email"] for email in sorted(forgot.emails)]
    if portal.user_id_property:
        keys += [[uid, portal.user_id_property] for uid in user_ids]
    return keys


def plan(portals: Sequence[Portal], forgot: Forgot, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each account's part of a request, before any call: what it owes, or why it cannot."""
    parts: dict[str, dict[str, Any]] = {}
    for portal in portals:
        keys = keys_for(portal, forgot, user_ids)
        if portal.legacy:
            parts[portal.name] = {"status": NOT_SUPPORTED, "reason": LEGACY_REASON, "owed": len(keys)}
        else:
            parts[portal.name] = {"status": RETRYING, "deleted": 0, "absent": 0, "pending": keys}
    return parts


async def delete(portal: Portal, part: dict[str, Any]) -> None:
    """Ask HubSpot to delete what `part` still owes, in place: stops at the first answer worth
    retrying (the rest waits for the next attempt), records a permanent refusal and moves on."""
    if part.get("status") != RETRYING:
        return
    pending: list[list[str | None]] = part["pending"]
    refused: list[str] = part.setdefault("refused", [])
    while pending:
        object_id, id_property = pending[0]
        assert object_id is not None
        try:
            found = await portal.client.gdpr_delete(object_id, id_property)
        except HubSpotError as e:
            if verdict(e).retry:  # (the forgetter logs one line a pass for all of these)
                part["reason"] = e.describe()
                return
            refused.append(e.describe())
            pending.pop(0)
            continue
        part["deleted" if found else "absent"] += 1
        pending.pop(0)
    part.pop("pending")
    part.pop("reason", None)
    if refused:
        part["status"], part["reason"] = FAILED, refused[0]
    else:
        part["status"] = DELETED
        part.pop("refused")
