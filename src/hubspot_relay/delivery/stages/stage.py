"""What a stage of delivery declares: the operations it takes from translation, its typed plan
items, the identity data it reads and writes, what it waits for, and its sender. `Delivery`
runs the table of them (`stages.STAGES`) in dependency order; a capability is one module and
one row."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ..catalog import Catalogs
from ..context import Context
from ..plan import Holds, Plan, Resolve, Taking
from ..sending import Sender, Straggler
from ..settlement import Settlement

C = TypeVar("C")  # the stage's collection of plan items
S = TypeVar("S", bound=Sender)

Keys = tuple[set[str], set[str]]  # (contacts and companies an operation writes, contacts it reads)
Sent = list[Straggler] | None  # calls left to finish on their own (hung), for the runner to wait on
V3 = frozenset({"v3"})
LEGACY = frozenset({"legacy"})
EVERY_MODE = V3 | LEGACY


@dataclass
class Run:
    """One batch's run of the stages: its settlement, and the stages started early (by name)."""

    plan: Plan
    s: Settlement
    started: dict[str, asyncio.Task[Any]] = field(default_factory=dict)


def _always(op: Any, on_event: bool) -> bool:
    return True


def _nothing_owed(items: Any) -> Iterable[Sequence[int]]:
    return ()


def _no_keys(op: Any, resolve: Resolve) -> Keys:
    return set(), set()


@dataclass(frozen=True, eq=False)
class Stage(Generic[C, S]):
    """One row of the stage table."""

    name: str
    does: str  # one line, for docs/architecture.md
    item: type  # the typed plan item
    new: Callable[[], C]  # an empty collection of items
    # One sender per account, shared by the stages naming the same class (None: not per batch).
    sender: type[S] | None
    send: Callable[[S, C, Run], Awaitable[Sent]] | None
    owed: Callable[[C], Iterable[Sequence[int]]] = _nothing_owed  # each call's messages, owed first
    takes: tuple[type, ...] = ()  # the operations it takes from translation
    claims: Callable[[Any, bool], bool] = _always  # (op, the message carries a legacy event)
    take: Callable[[Taking, Any], None] | None = None  # an operation into the plan
    keys: Callable[[Any, Resolve], Keys] = _no_keys  # what an operation writes and reads
    after: tuple[str, ...] = ()  # the stages whose calls it waits for
    reads: tuple[str, ...] = ()  # identity data read (before its calls, off the event loop)
    writes: tuple[str, ...] = ()  # identity data written
    modes: frozenset[str] = EVERY_MODE  # "v3" (private app, OAuth), "legacy" (API key)
    elsewhere: str = ""  # why it is skipped in the other mode (the message's skip reason)
    holds: bool = True  # its calls write what later batches wait for (`Delivery.busy`)
    # It waits only for its own contacts' upserts: the items whose contacts' calls hung, apart.
    split: Callable[[C, set[str]], tuple[C, C]] | None = None
    early: bool = False  # started with the batch, side by side with the stages before it
    ready: Callable[[S], bool] = lambda sender: True  # worth starting now (events: not refused)
    per: Literal["batch", "request"] = "batch"  # run by `Delivery`, or per erasure request
    uses: Holds[C] | None = None  # another stage's items, worked on before that stage runs

    def items(self, plan: Plan) -> C:
        return plan.of(self.uses if self.uses is not None else self)

    def active(self, legacy: bool) -> bool:
        return ("legacy" if legacy else "v3") in self.modes

    def runs_for(self, op: Any, on_event: bool) -> bool:
        return isinstance(op, self.takes) and self.claims(op, on_event)

    def make(self, ctx: Context, catalogs: Catalogs) -> S:
        assert self.sender is not None, f"the {self.name} stage is not run per batch"
        return self.sender(ctx, catalogs)

    async def run(self, sender: S, items: C, run: Run) -> Sent:
        assert self.send is not None, f"the {self.name} stage is not run per batch"
        return await self.send(sender, items, run)


def ordered(stages: Sequence[Stage[Any, Any]]) -> list[Stage[Any, Any]]:
    """The stages in dependency order (each after what it names in `after`), the table's own
    order kept where it is free. An unknown name or a cycle is a programming error, raised."""
    names = {st.name for st in stages}
    for st in stages:
        unknown = set(st.after) - names
        if unknown:
            raise ValueError(f"stage {st.name!r} waits for unknown stages {sorted(unknown)}")
    done: list[Stage[Any, Any]] = []
    left = list(stages)
    while left:
        ready = next((st for st in left if set(st.after) <= {d.name for d in done}), None)
        if ready is None:
            raise ValueError(f"the stages {[st.name for st in left]} wait for each other")
        done.append(ready)
        left.remove(ready)
    return done
