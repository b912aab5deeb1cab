"""Where each HubSpot endpoint lives, in the API version an account speaks.

HubSpot moved from numbered paths (`/crm/v3/objects/contacts`, `/crm/v4/associations/...`) to
date-versioned ones (`/crm/objects/2026-09/contacts`): a new version each March and September,
the previous one served until its end of life. An account chooses `api_version`: a date version
(the default, the current one) or `v3`, the numbered family, for gateways and proxies that speak
only the old paths. Every path comes from the table of what HubSpot publishes (`endpoints.py`);
nothing here builds one from a pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .endpoints import event_spellings, spellings

# The dated versions HubSpot has released (a new one each March and September); the last is the
# default for new accounts.
DATED_VERSIONS = ("2026-03", "2026-09")
DEFAULT_API_VERSION = DATED_VERSIONS[-1]
API_VERSIONS = ("v3", *DATED_VERSIONS)
_DATED = re.compile(r"^20\d\d-(03|09)$")


def is_dated(version: str) -> bool:
    return bool(_DATED.match(version))


@dataclass(frozen=True, slots=True)
class ApiPaths:
    version: str = DEFAULT_API_VERSION

    @property
    def dated(self) -> bool:
        return self.version != "v3"

    def path(self, operation: str, *, spelling: str = "", **params: str) -> str:
        """`operation`'s path in this version (in `spelling`, for one published several ways)."""
        rows = spellings(operation, self.version)
        if spelling:
            rows = [r for r in rows if r.spelling == spelling]
            if not rows:
                raise LookupError(f"HubSpot publishes no {operation} spelled {spelling} in {self.version}")
        return rows[0].build(**params)

    def event_spellings(self) -> list[str]:
        """The published prefixes of this version's custom-event endpoints, newest first."""
        return event_spellings(self.version)
