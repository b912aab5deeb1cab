"""Who a batch is about, without a store: what the identity map knew of the batch's ids when it
was read (a `Snapshot`), what planning changes (an `Overlay` that records each tie and each set
of kept traits as an `Update`, in order), and how delivery writes those to the map afterwards
(`replay`), learning what other processes did meanwhile.

Pure: planning reads the snapshot and returns its updates as values; the only code here that
touches a map is `replay`, and only through the methods it is handed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Key = tuple[str, str]  # (source, a userId or anonymousId)


@dataclass(frozen=True, slots=True)
class Known:
    """What the map knows of one id: its email, or the traits kept until one is known."""

    email: str | None = None
    waiting: Mapping[str, Any] | None = None


Snapshot = Mapping[Key, Known]


@dataclass(frozen=True, slots=True)
class Tie:
    """`ids` are this email (an identify or alias, or a message that carried the email)."""

    source: str
    ids: tuple[str, ...]
    email: str
    message: int


@dataclass(frozen=True, slots=True)
class Keep:
    """Traits kept until an email is known for one of `ids`."""

    source: str
    ids: tuple[str, ...]
    traits: Mapping[str, Any]
    message: int


Update = Tie | Keep


@dataclass(frozen=True, slots=True)
class Late:
    """Traits for a contact that replaying found: kept by another process for an id this batch
    tied (`under`: older than what the batch sets), or this batch's own kept traits for an id
    another process tied meanwhile."""

    email: str
    traits: Mapping[str, Any]
    message: int
    under: bool


@dataclass
class Overlay:
    """The snapshot as planning changes it. Reads see this batch's ties and kept traits first."""

    snapshot: Snapshot
    ties: dict[Key, str] = field(default_factory=dict)
    waiting: dict[Key, dict[str, Any]] = field(default_factory=dict)
    taken: set[Key] = field(default_factory=set)
    updates: list[Update] = field(default_factory=list)

    def email_for(self, source: str, ids: Sequence[str]) -> str | None:
        for id_ in ids:
            key = (source, id_)
            email = self.ties.get(key) or self.snapshot.get(key, Known()).email
            if email is not None:
                return email
        return None

    def _waiting(self, key: Key) -> dict[str, Any]:
        if key in self.waiting:
            return self.waiting[key]
        if key in self.taken:
            return {}
        return dict(self.snapshot.get(key, Known()).waiting or {})

    def link(
        self, source: str, ids: Sequence[str], email: str | None, message: int
    ) -> tuple[str | None, dict[str, Any]]:
        """Tie `ids` to `email` (or to the one an id has); returns the email and the traits that
        were kept for the ids it newly ties (taken)."""
        email = email or self.email_for(source, ids)
        if email is None or not ids:
            return email, {}
        changed = [id_ for id_ in ids if self.email_for(source, [id_]) != email]
        if not changed:
            return email, {}
        taken: dict[str, Any] = {}
        for id_ in changed:
            key = (source, id_)
            taken.update(self._waiting(key))
            self.waiting.pop(key, None)
            self.taken.add(key)
            self.ties[key] = email
        self.updates.append(Tie(source, tuple(ids), email, message))
        return email, taken

    def keep(self, source: str, ids: Sequence[str], traits: Mapping[str, Any], message: int) -> None:
        """Traits kept until an email is known for one of `ids` (later values win)."""
        for id_ in ids:
            key = (source, id_)
            self.waiting[key] = {**self._waiting(key), **traits}
        self.updates.append(Keep(source, tuple(ids), dict(traits), message))


class IdentityWriter(Protocol):
    """The identity map's writes that `replay` makes (the SQLite file's or Redis's)."""

    def link(
        self, source: str, ids: Sequence[str], email: str | None
    ) -> tuple[str | None, dict[str, Any]]: ...
    def remember(self, source: str, ids: Sequence[str], traits: dict[str, Any]) -> str | None: ...
    def flush(self, take: bool = True) -> dict[Key, dict[str, Any]]: ...


def replay(identity: IdentityWriter, updates: Sequence[Update]) -> list[Late]:
    """Write a plan's updates to the map, in order; returns what the map knew that the snapshot
    did not (another process's kept traits, or a tie it made meanwhile)."""
    late: list[Late] = []
    tied: dict[Key, Tie] = {}
    for u in updates:
        if isinstance(u, Tie):
            email, taken = identity.link(u.source, u.ids, u.email)
            tied.update({(u.source, i): u for i in u.ids})
            if email and taken:
                late.append(Late(email, taken, u.message, under=True))
        else:
            email = identity.remember(u.source, u.ids, dict(u.traits))
            if email:
                late.append(Late(email, u.traits, u.message, under=False))
    for key, traits in identity.flush().items():
        if key in tied:
            late.append(Late(tied[key].email, traits, tied[key].message, under=True))
    return late
