"""What a Segment message asks of HubSpot: the translate step's output, plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContactRef:
    """Who a message is about: an email when it says one, else the ids to look it up by."""

    email: str | None = None
    ids: tuple[str, ...] = ()  # userId, anonymousId (one namespace, as alias treats them)
    user_id: str | None = None  # the message's userId (a contact's key with `user_id_property`)


@dataclass(frozen=True)
class ContactUpdate:
    """Contact properties to set (keys normalized, values still as Segment sent them)."""

    ref: ContactRef
    properties: dict[str, Any]


@dataclass(frozen=True)
class Link:
    """These ids are one person (identify, alias); `email` when the message told it."""

    ids: tuple[str, ...]
    email: str | None = None


@dataclass(frozen=True)
class Event:
    """A custom behavioral event occurrence."""

    ref: ContactRef
    name: str  # short name (`bought_item`), or a full HubSpot name mapped in config (`pe123_x`)
    occurred_at: str
    uuid: str  # derived from the messageId: a replay is recognised by HubSpot
    properties: dict[str, str] = field(default_factory=dict)
    label: str = ""  # the Segment event name, for the definition's label


@dataclass(frozen=True)
class CompanyUpdate:
    """A company (Segment group) to upsert, and the contact to associate with it."""

    group_id: str
    properties: dict[str, Any]
    member: ContactRef
    domain: str | None = None


@dataclass(frozen=True)
class Membership:
    """The contact in (or out of) a HubSpot list: an audience's identify or track."""

    ref: ContactRef
    audience: str
    member: bool
    group_id: str | None = None  # a company audience: the group's company, not the contact


@dataclass(frozen=True)
class Subscription:
    """The contact's email subscription status for one subscription type."""

    ref: ContactRef
    subscribed: bool
    subscription_id: int
    legal_basis: str | None = None
    legal_basis_explanation: str | None = None


@dataclass(frozen=True)
class Skip:
    """Nothing to do for this message, and why."""

    reason: str


Operation = ContactUpdate | Link | Event | CompanyUpdate | Membership | Subscription | Skip
