"""Segment messages -> HubSpot operations (pure functions, tested as tables)."""

from .operations import CompanyUpdate, ContactRef, ContactUpdate, Event, Link, Membership, Operation, Skip
from .segment import event_uuid, translate
from .values import PropertyInfo, prepare

__all__ = [
    "CompanyUpdate",
    "ContactRef",
    "ContactUpdate",
    "Event",
    "Link",
    "Membership",
    "Operation",
    "PropertyInfo",
    "Skip",
    "event_uuid",
    "prepare",
    "translate",
]
