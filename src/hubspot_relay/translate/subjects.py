"""Who a message is about, as the right to be forgotten keys people (a digest of `user:<userId>`
or `email:<lowercased email>`), and the snapshot of who it covers that ingest and delivery consult:
pure, so that the planner may use it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def subject_key(subject_type: str, value: str) -> str:
    """A person as the relay keeps them for the right to be forgotten: a digest of `user:<userId>`
    or `email:<lowercased email>`, so that the suppression list itself holds no identifier."""
    value = value.strip()
    plain = f"email:{value.lower()}" if subject_type == "EMAIL" else f"user:{value}"
    return "sha256:" + hashlib.sha256(plain.encode()).hexdigest()


def subjects_of(message: dict[str, Any]) -> set[str]:
    """Who a message is about, as suppression keys: its userId, and any email it carries."""
    out: set[str] = set()
    user = message.get("userId")
    if isinstance(user, str | int) and str(user).strip():
        out.add(subject_key("USER_ID", str(user)))
    places = [message.get("traits"), message.get("properties")]
    context = message.get("context")
    if isinstance(context, dict):
        places.append(context.get("traits"))
    for place in places:
        email = place.get("email") if isinstance(place, dict) else None
        if isinstance(email, str) and "@" in email:
            out.add(subject_key("EMAIL", email))
    if isinstance(user, str) and "@" in user:
        out.add(subject_key("EMAIL", user))
    return out


FORGOTTEN = "forgotten: a right-to-be-forgotten request covers this person"


@dataclass(frozen=True)
class Forgotten:
    """What delivery and ingest need to know, read at most once a second: who is suppressed (their
    messages are dropped), and whose messages received before a deletion are erased."""

    suppressed: frozenset[str] = frozenset()
    erased: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.suppressed or self.erased)

    def covers(self, message: dict[str, Any], received_at: float) -> bool:
        subjects = subjects_of(message)
        if subjects & self.suppressed:
            return True
        return any(received_at <= self.erased.get(s, -1.0) for s in subjects)
