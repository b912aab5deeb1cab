"""The stages of delivery, one module each, and the one table of them (`STAGES`). A new
capability is a module here and a row below: `Planner` offers each operation to every stage
that takes it, and `Delivery` runs the stages in dependency order (`ordered`)."""

from __future__ import annotations

from typing import Any

from .companies import COMPANIES
from .company_members import COMPANY_MEMBERS
from .contacts import CONTACTS
from .deletions import DELETIONS
from .events import DEFINITIONS, EVENTS, LEGACY_EVENTS
from .memberships import COMPANY_LIST_MEMBERSHIPS, LIST_MEMBERSHIPS
from .objects import OBJECTS
from .stage import Stage, ordered
from .subscriptions import SUBSCRIPTIONS

STAGES: tuple[Stage[Any, Any], ...] = tuple(
    ordered(
        [
            CONTACTS,
            COMPANIES,
            COMPANY_MEMBERS,
            OBJECTS,
            LIST_MEMBERSHIPS,
            COMPANY_LIST_MEMBERSHIPS,
            SUBSCRIPTIONS,
            DEFINITIONS,
            EVENTS,
            LEGACY_EVENTS,
            DELETIONS,
        ]
    )
)


def batch_stages(legacy: bool) -> tuple[Stage[Any, Any], ...]:
    """The stages `Delivery` runs for an account of this mode, in order."""
    return tuple(st for st in STAGES if st.per == "batch" and st.active(legacy))


def stages_for(op: Any, *, legacy: bool, on_event: bool = False) -> tuple[Stage[Any, Any], ...]:
    """The stages that take `op` for an account of this mode, in order (none: it is not
    delivered in this mode, see `not_here`). One operation may feed several stages."""
    return tuple(st for st in batch_stages(legacy) if st.runs_for(op, on_event))


def not_here(op: Any, *, legacy: bool) -> str | None:
    """Why `op` is not delivered in this mode, when a stage of the other mode takes it."""
    other = next((st for st in STAGES if st.per == "batch" and st.runs_for(op, False)), None)
    return other.elsewhere if other is not None and not other.active(legacy) else None


def _modes(st: Stage[Any, Any]) -> str:
    return ", ".join(sorted("a token (v3, dated)" if m == "v3" else "an API key (legacy)" for m in st.modes))


def stages_markdown() -> str:
    """The stage table for docs/architecture.md (kept true by a test)."""
    rows = [
        "| stage | does | takes | plan item | waits for | identity reads | identity writes | modes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in STAGES:
        takes = ", ".join(f"`{t.__name__}`" for t in st.takes) or (
            "erasure requests" if st.per == "request" else f"`{st.uses.name}`'s items" if st.uses else ""
        )
        after = ", ".join(st.after) or ("(starts with the batch)" if st.early else "")
        rows.append(
            f"| {st.name} | {st.does} | {takes} | `{st.item.__name__}` | {after} | "
            f"{', '.join(st.reads)} | {', '.join(st.writes)} | {_modes(st)} |"
        )
    return "\n".join(rows) + "\n"
