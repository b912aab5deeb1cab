"""Where each HubSpot endpoint lives, in the path family an account speaks.

HubSpot moved from numbered paths (`/crm/v3/objects/contacts`, `/crm/v4/associations/...`) to
date-versioned ones (`/crm/objects/2026-09/contacts`): a new version each March and September,
the previous one served until its end of life. An account chooses `api_version`: a date version
(the default, the current one) or `v3`, the numbered family, for gateways and proxies that speak
only the old paths. Every call the relay makes is built here, so one setting moves all of them.

Checked against HubSpot's API reference for 2026-03 (objects and batch upsert, properties,
associations default and labelled, events send batch, event definitions list, object schemas);
the 2026-09 paths follow the same pattern with the date changed; the add-a-property-to-an-event
-definition and association-labels paths are inferred from their v3/v4 equivalents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

    def objects(self, object_type: str) -> str:
        if self.dated:
            return f"/crm/objects/{self.version}/{object_type}"
        return f"/crm/v3/objects/{object_type}"

    def properties(self, object_type: str) -> str:
        if self.dated:
            return f"/crm/properties/{self.version}/{object_type}"
        return f"/crm/v3/properties/{object_type}"

    def associations(self, from_type: str, to_type: str) -> str:
        """The batch association endpoints between two object types (v3's family uses v4's)."""
        if self.dated:
            return f"/crm/associations/{self.version}/{from_type}/{to_type}"
        return f"/crm/v4/associations/{from_type}/{to_type}"

    def event_definitions(self) -> str:
        return f"/events/{self.version}/event-definitions" if self.dated else "/events/v3/event-definitions"

    def events_send_batch(self) -> str:
        return f"/events/{self.version}/send/batch" if self.dated else "/events/v3/send/batch"

    def schemas(self) -> str:
        return (
            f"/crm-object-schemas/{self.version}/schemas" if self.dated else "/crm-object-schemas/v3/schemas"
        )
