"""What a leased batch becomes: each stage's typed items (`Plan.of(stage)`), the contacts and
companies its calls write, the ties and kept traits for the identity map, and what becomes of
the messages that make no call. Planning fills it (`planner.py`, each stage's `take`); the
stages' senders empty it (`stages/`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from ..queue.protocol import Leased
from ..translate.operations import ContactRef
from .identities import Overlay, Update
from .settlement import Settlement

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


class Carries(Protocol):
    """One input to a call, and the messages it carries (what a sender's call pays for)."""

    key: str
    ids: list[int]


@dataclass
class Record:
    """An input to a batch call of records: its key, its properties, the messages it carries."""

    key: str
    properties: dict[str, Any]
    ids: list[int] = field(default_factory=list)


class Holds(Protocol[C_co]):
    """What `Plan.of` needs of a stage: its name, and an empty collection of its items."""

    @property
    def name(self) -> str: ...

    @property
    def new(self) -> Callable[[], C_co]: ...


class Plan:
    """The calls a leased batch becomes, by stage, and what becomes of the messages that make none."""

    def __init__(self, verdicts: Settlement | None = None, identity: list[Update] | None = None) -> None:
        self._items: dict[str, Any] = {}  # stage name -> its collection (typed by `of`)
        self.writes: set[str] = set()  # contacts and companies the calls write
        self.verdicts = verdicts if verdicts is not None else Settlement()  # skipped, waiting, failed
        self.identity: list[Update] = identity if identity is not None else []  # ties, kept traits

    def of(self, stage: Holds[C]) -> C:
        """The stage's items (made empty the first time they are asked for)."""
        found = self._items.get(stage.name)
        if found is None:
            found = self._items[stage.name] = stage.new()
        return cast(C, found)

    @property
    def calls(self) -> bool:
        return any(bool(items) for items in self._items.values())


@dataclass
class Taking:
    """What a stage's `take` is given for one message: the plan it adds to, who is who so far in
    the batch, and the message's other operations."""

    plan: Plan
    identities: Overlay
    message: Leased
    ops: Sequence[Any]
    legacy: bool
    now: float
    unresolved_wait_s: float  # how long a message waits for its user's email (then dead)

    @property
    def verdicts(self) -> Settlement:
        return self.plan.verdicts

    def email(self, ref: ContactRef) -> str | None:
        """The contact's email: on the message, or tied to one of its ids (in the map, or earlier
        in the batch)."""
        return ref.email or self.identities.email_for(self.message.source, ref.ids)

    def email_of(self, ids: Sequence[str]) -> str | None:
        return self.identities.email_for(self.message.source, ids)

    def no_email(self, reason: str) -> None:
        """No email is known for the message's user: retried for a while (an identify usually
        follows within seconds), then dead with `reason`."""
        m = self.message
        if self.now - m.received_at < self.unresolved_wait_s:
            self.verdicts.fail([m.id], WAITING_FOR_EMAIL, retry_in=0.0)
        else:
            self.verdicts.fail([m.id], reason)


WAITING_FOR_EMAIL = "waiting for an identify or alias that gives this user's email"
Resolve = Callable[[ContactRef], "str | None"]  # a reference's email, if known (planning, no change)
