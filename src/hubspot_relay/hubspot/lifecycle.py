"""HubSpot's lifecycle stages, in the only order HubSpot lets a contact move (forwards)."""

from __future__ import annotations

LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def is_backwards(current: str | None, new: str) -> bool:
    """Whether setting `new` over `current` would move the stage backwards (HubSpot ignores that)."""
    if current not in LIFECYCLE_STAGES or new not in LIFECYCLE_STAGES:
        return False
    return LIFECYCLE_STAGES.index(new) < LIFECYCLE_STAGES.index(current)
