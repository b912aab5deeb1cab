"""End-user consent, by Segment's rules: a source says which consent categories HubSpot is mapped
to (`consent_categories`); a message carries the user's choices in
`context.consent.categoryPreferences`. A message without them flows as before; an empty
`categoryPreferences` means every category is refused; with several categories, every one must
be granted. What is refused never reaches HubSpot and is counted as skipped with REASON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError

REASON = "filtered by end-user consent"


def allowed(message: Mapping[str, Any], categories: Sequence[str]) -> bool:
    if not categories:
        return True
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, Mapping) else None
    if not isinstance(consent, Mapping) or "categoryPreferences" not in consent:
        return True
    preferences = consent["categoryPreferences"]
    if not isinstance(preferences, Mapping):
        return False  # not Segment's shape: nothing is granted
    return all(preferences.get(category) is True for category in categories)


def parse_categories(value: Any, key: str) -> tuple[str, ...]:
    """`consent_categories = ["Marketing", ...]` as a source or an account gives it."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise ConfigError(f"{key}: a list of consent category names, like [\"Marketing\"]")
    return tuple(c.strip() for c in value)
