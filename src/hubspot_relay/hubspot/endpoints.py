"""Every HubSpot endpoint the relay calls, per API version, as HubSpot publishes it.

`PUBLISHED` is the one table: each path written out in full, never derived from another version's
by a pattern. Each block names where HubSpot publishes its rows: the OpenAPI file in HubSpot's
public spec collection (`HubSpot/HubSpot-public-api-spec-collection`, under `PublicApiSpecs/`,
`<area>/Rollouts/<rollout>/<version>/`), and the client HubSpot generated from those files that
calls the same paths (`hubspot-api-client` 12 for the numbered family, `hubspot-sdk` 0.1.0a9 for
2026-03; `tests/unit/hubspot/test_endpoints.py` holds each row to the client it names).

Where HubSpot has published more than one spelling of a version's custom-event paths, each is a
block with its own spelling (its prefix), newest first, and the relay asks the portal which one it
serves (`hubspot/client.py`) instead of betting on one. The legacy rows are what Segment's HubSpot
integration called with an API key (HubSpot's v1 reference pages; no OpenAPI file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

# A block: `@ version | spec file | the generated client that confirms it | spelling`, then its
# rows: operation, method, path ({objectType}, {fromObjectType}, {toObjectType}, {eventName}).
PUBLISHED = """
@ v3 | CRM/Properties/Rollouts/145899/v3/properties.json | hubspot-api-client 12 | -
properties.list                 GET  /crm/v3/properties/{objectType}
properties.create               POST /crm/v3/properties/{objectType}
@ v3 | CRM/Objects/Rollouts/424/v3/objects.json | hubspot-api-client 12 | -
objects.batch_upsert            POST /crm/v3/objects/{objectType}/batch/upsert
objects.batch_read              POST /crm/v3/objects/{objectType}/batch/read
objects.batch_create            POST /crm/v3/objects/{objectType}/batch/create
objects.batch_update            POST /crm/v3/objects/{objectType}/batch/update
objects.search                  POST /crm/v3/objects/{objectType}/search
@ v3 | CRM/Associations/Rollouts/130902/v4/associations.json | hubspot-api-client 12 | -
associations.associate_default  POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default
associations.create             POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create
associations.labels             GET  /crm/v4/associations/{fromObjectType}/{toObjectType}/labels
@ v3 | CRM/Schemas/Rollouts/145900/v3/schemas.json | hubspot-api-client 12 | -
schemas.list                    GET  /crm-object-schemas/v3/schemas
@ v3 | Events/Send Event Completions/Rollouts/669/v3/sendEventCompletions.json | - | /events/v3
events.send_batch               POST /events/v3/send/batch
@ v3 | Events/Manage Event Definitions/Rollouts/138888/v3/manageEventDefinitions.json | - | /events/v3
event_definitions.list          GET  /events/v3/event-definitions
event_definitions.create        POST /events/v3/event-definitions
event_definitions.add_property  POST /events/v3/event-definitions/{eventName}/property
@ 2026-03 | CRM/Properties/Rollouts/145899/2026-03/properties.json | hubspot-sdk 0.1.0a9 | -
properties.list                 GET  /crm/properties/2026-03/{objectType}
properties.create               POST /crm/properties/2026-03/{objectType}
@ 2026-03 | CRM/Objects/Rollouts/424/2026-03/objects.json | hubspot-sdk 0.1.0a9 | -
objects.batch_upsert            POST /crm/objects/2026-03/{objectType}/batch/upsert
objects.batch_read              POST /crm/objects/2026-03/{objectType}/batch/read
objects.batch_create            POST /crm/objects/2026-03/{objectType}/batch/create
objects.batch_update            POST /crm/objects/2026-03/{objectType}/batch/update
objects.search                  POST /crm/objects/2026-03/{objectType}/search
@ 2026-03 | CRM/Associations/Rollouts/130902/2026-03/associations.json | hubspot-sdk 0.1.0a9 | -
associations.associate_default  POST /crm/associations/2026-03/{fromObjectType}/{toObjectType}/batch/associate/default
associations.create             POST /crm/associations/2026-03/{fromObjectType}/{toObjectType}/batch/create
associations.labels             GET  /crm/associations/2026-03/{fromObjectType}/{toObjectType}/labels
@ 2026-03 | CRM/Schemas/Rollouts/145900/2026-03/schemas.json | hubspot-sdk 0.1.0a9 | -
schemas.list                    GET  /crm-object-schemas/2026-03/schemas
@ 2026-03 | Events/Send Event Completions/Rollouts/669/2026-03/sendEventCompletions.json | hubspot-sdk 0.1.0a9 | /events/2026-03
events.send_batch               POST /events/2026-03/send/batch
@ 2026-03 | Events/Manage Event Definitions/Rollouts/138888/2026-03/manageEventDefinitions.json | hubspot-sdk 0.1.0a9 | /events/2026-03
event_definitions.list          GET  /events/2026-03/event-definitions
event_definitions.create        POST /events/2026-03/event-definitions
event_definitions.add_property  POST /events/2026-03/event-definitions/{eventName}/property
@ 2026-03 | Events/Send Event Completions/Rollouts/669/2026-03/sendEventCompletions.json (an earlier version) | - | /events/v3/2026-03
events.send_batch               POST /events/v3/2026-03/send/batch
@ 2026-03 | Events/Manage Event Definitions/Rollouts/138888/2026-03/manageEventDefinitions.json (an earlier version) | - | /events/v3/2026-03
event_definitions.list          GET  /events/v3/2026-03/event-definitions
event_definitions.create        POST /events/v3/2026-03/event-definitions
event_definitions.add_property  POST /events/v3/2026-03/event-definitions/{eventName}/property
@ 2026-03 | Events/Send Event Completions/Rollouts/669/2026-03/sendEventCompletions.json (the first version) | - | /events/custom/2026-03
events.send_batch               POST /events/custom/2026-03/send/batch
@ 2026-03 | Events/Manage Event Definitions/Rollouts/138888/2026-03/manageEventDefinitions.json (the first version) | - | /events/custom/2026-03
event_definitions.list          GET  /events/custom/2026-03/event-definitions
event_definitions.create        POST /events/custom/2026-03/event-definitions
event_definitions.add_property  POST /events/custom/2026-03/event-definitions/{eventName}/property
@ 2026-09 | CRM/Properties/Rollouts/145899/2026-09/properties.json | - | -
properties.list                 GET  /crm/properties/2026-09/{objectType}
properties.create               POST /crm/properties/2026-09/{objectType}
@ 2026-09 | CRM/Objects/Rollouts/424/2026-09/objects.json | - | -
objects.batch_upsert            POST /crm/objects/2026-09/{objectType}/batch/upsert
objects.batch_read              POST /crm/objects/2026-09/{objectType}/batch/read
objects.batch_create            POST /crm/objects/2026-09/{objectType}/batch/create
objects.batch_update            POST /crm/objects/2026-09/{objectType}/batch/update
objects.search                  POST /crm/objects/2026-09/{objectType}/search
@ 2026-09 | CRM/Associations/Rollouts/130902/2026-09/associations.json; CRM/Associations/Rollouts/321895/2026-09/associations.json | - | -
associations.associate_default  POST /crm/associations/2026-09/{fromObjectType}/{toObjectType}/batch/associate/default
associations.create             POST /crm/associations/2026-09/{fromObjectType}/{toObjectType}/batch/create
associations.labels             GET  /crm/associations/2026-09/{fromObjectType}/{toObjectType}/labels
@ 2026-09 | CRM/Schemas/Rollouts/145900/2026-09/schemas.json | - | -
schemas.list                    GET  /crm-object-schemas/2026-09/schemas
@ 2026-09 | Events/Send Event Completions/Rollouts/669/2026-09/sendEventCompletions.json | - | /events/2026-09
events.send_batch               POST /events/2026-09/send/batch
@ 2026-09 | Events/Manage Event Definitions/Rollouts/333895/2026-09/manageEventDefinitions.json | - | /events/2026-09
event_definitions.list          GET  /events/2026-09/event-definitions
event_definitions.create        POST /events/2026-09/event-definitions
event_definitions.add_property  POST /events/2026-09/event-definitions/{eventName}/property
@ 2026-09 | Events/Send Event Completions/Rollouts/669/2026-09/sendEventCompletions.json (an earlier version) | - | /events/custom/2026-09
events.send_batch               POST /events/custom/2026-09/send/batch
@ 2026-09 | Events/Manage Event Definitions/Rollouts/138888/2026-09/manageEventDefinitions.json (an earlier version) | - | /events/custom/2026-09
event_definitions.list          GET  /events/custom/2026-09/event-definitions
event_definitions.create        POST /events/custom/2026-09/event-definitions
event_definitions.add_property  POST /events/custom/2026-09/event-definitions/{eventName}/property
@ 2026-09 | Events/Manage Event Definitions/Rollouts/138888/2026-09/manageEventDefinitions.json | - | /events/v3/2026-09
events.send_batch               POST /events/v3/2026-09/send/batch
@ 2026-09 | Events/Manage Event Definitions/Rollouts/138888/2026-09/manageEventDefinitions.json | - | /events/v3/2026-09
event_definitions.list          GET  /events/v3/2026-09/event-definitions
event_definitions.create        POST /events/v3/2026-09/event-definitions
event_definitions.add_property  POST /events/v3/2026-09/event-definitions/{eventName}/property
@ v3 | CRM/Lists/Rollouts/144891/v3/lists.json | hubspot-api-client 12 | -
lists.create                    POST /crm/v3/lists/
lists.by_name                   GET  /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}
lists.add_and_remove            PUT  /crm/v3/lists/{listId}/memberships/add-and-remove
@ 2026-03 | CRM/Lists/Rollouts/144891/2026-03/lists.json | hubspot-sdk 0.1.0a9 | -
lists.create                    POST /crm/lists/2026-03
lists.by_name                   GET  /crm/lists/2026-03/object-type-id/{objectTypeId}/name/{listName}
lists.add_and_remove            PUT  /crm/lists/2026-03/{listId}/memberships/add-and-remove
@ 2026-09 | CRM/Lists/Rollouts/144891/2026-09/lists.json | - | -
lists.create                    POST /crm/lists/2026-09
lists.by_name                   GET  /crm/lists/2026-09/object-type-id/{objectTypeId}/name/{listName}
lists.add_and_remove            PUT  /crm/lists/2026-09/{listId}/memberships/add-and-remove
@ v3 | Communication Preferences/Subscriptions/Rollouts/176901/v4/subscriptions.json | - | -
subscriptions.definitions       GET  /communication-preferences/v4/definitions
subscriptions.write             POST /communication-preferences/v4/statuses/{subscriberIdString}
subscriptions.write_batch       POST /communication-preferences/v4/statuses/batch/write
@ 2026-03 | Communication Preferences/Subscriptions/Rollouts/176901/2026-03/subscriptions.json | hubspot-sdk 0.1.0a9 | -
subscriptions.definitions       GET  /communication-preferences/2026-03/definitions
subscriptions.write             POST /communication-preferences/2026-03/statuses/{subscriberIdString}
subscriptions.write_batch       POST /communication-preferences/2026-03/statuses/batch/write
@ 2026-09 | Communication Preferences/Subscriptions/Rollouts/176901/2026-09/subscriptions.json | - | -
subscriptions.definitions       GET  /communication-preferences/2026-09/definitions
subscriptions.write             POST /communication-preferences/2026-09/statuses/{subscriberIdString}
subscriptions.write_batch       POST /communication-preferences/2026-09/statuses/batch/write
@ v3 | CRM/Objects/Rollouts/424/v3/objects.json | hubspot-api-client 12 | -
contacts.gdpr_delete            POST /crm/v3/objects/contacts/gdpr-delete
@ 2026-03 | CRM/Objects/Rollouts/424/2026-03/objects.json | hubspot-sdk 0.1.0a9 | -
contacts.gdpr_delete            POST /crm/objects/2026-03/contacts/gdpr-delete
@ 2026-09 | CRM/Objects/Rollouts/424/2026-09/objects.json | - | -
contacts.gdpr_delete            POST /crm/objects/2026-09/contacts/gdpr-delete
@ v3 | Auth/Oauth/Rollouts/279897/v3/oauth.json | - | /oauth/v3
oauth.token                     POST /oauth/v3/token
@ v3 | Auth/Oauth/Rollouts/155908/v1/oauth.json | hubspot-api-client 12 | /oauth/v1
oauth.token                     POST /oauth/v1/token
@ 2026-03 | Auth/Oauth/Rollouts/279897/2026-03/oauth.json | hubspot-sdk 0.1.0a9 | -
oauth.token                     POST /oauth/2026-03/token
@ 2026-09 | Auth/Oauth/Rollouts/279897/2026-09/oauth.json | - | -
oauth.token                     POST /oauth/2026-09/token
@ legacy | HubSpot's Contact Properties API v1 (legacy) | - | -
legacy.properties               GET  /properties/v1/contacts/properties
@ legacy | HubSpot's Contacts API v1 (legacy): batch create or update | - | -
legacy.contacts_batch           POST /contacts/v1/contact/batch/
@ legacy | HubSpot's events HTTP API (track.hubspot.com) | - | -
legacy.event                    GET  /v1/event
"""  # noqa: E501


@dataclass(frozen=True, slots=True)
class Endpoint:
    operation: str  # what the relay does with it
    version: str  # "v3" (the numbered family), a dated version, or "legacy"
    method: str
    path: str  # HubSpot's template
    spec: str  # where HubSpot publishes it
    client: str  # the HubSpot-generated client that calls it too ("" for none)
    spelling: str  # where a version's path is published several ways: this row's prefix ("" else)

    def build(self, **params: str) -> str:
        """The path with its parameters, each one path segment."""
        missing = set(_PARAM.findall(self.path)) - params.keys()
        if missing:
            raise ValueError(f"{self.operation} needs {sorted(missing)}")
        return _PARAM.sub(lambda m: _segment(params[m.group(1)]), self.path)

    def matches(self, path: str) -> bool:
        """Whether `path` (a URL's path, parameters filled in) is this endpoint's."""
        parts = _PARAM.split(self.path)  # literal, name, literal, ...
        pattern = "".join("[^/]+" if i % 2 else re.escape(part) for i, part in enumerate(parts))
        return re.fullmatch(pattern, path) is not None


_PARAM = re.compile(r"\{(\w+)\}")


def _segment(value: str) -> str:
    """A parameter as one path segment (a list's name may hold anything: it is escaped)."""
    if not value or value in (".", ".."):
        raise ValueError(f"not a path segment: {value!r}")
    return quote(value, safe="")


def _parse(text: str) -> tuple[Endpoint, ...]:
    rows: list[Endpoint] = []
    version = spec = client = spelling = ""
    for line in text.strip().splitlines():
        if line.startswith("@"):
            version, spec, client, spelling = (p.strip() for p in line[1:].split("|"))
            client, spelling = ("" if client == "-" else client), ("" if spelling == "-" else spelling)
            continue
        operation, method, path = line.split()
        rows.append(Endpoint(operation, version, method, path, spec, client, spelling))
    return tuple(rows)


ENDPOINTS = _parse(PUBLISHED)


def spellings(operation: str, version: str) -> list[Endpoint]:
    """The published spellings of `operation` in `version`, newest first (one for most)."""
    family = "legacy" if operation.startswith("legacy.") else version
    found = [e for e in ENDPOINTS if e.operation == operation and e.version == family]
    if not found:
        raise LookupError(f"HubSpot publishes no {operation} for API version {version}")
    return found


def event_spellings(version: str) -> list[str]:
    """The prefixes HubSpot has published for `version`'s custom-event endpoints, newest first."""
    return [e.spelling for e in spellings("event_definitions.list", version)]


def find(method: str, path: str) -> Endpoint | None:
    """The row a call belongs to (None: a path HubSpot does not publish)."""
    return next((e for e in ENDPOINTS if e.method == method and e.matches(path)), None)


def markdown() -> str:
    """The table as the documentation shows it (docs/hubspot-versions.md)."""
    out = [
        "| version | operation | method | path | published in | confirmed by |",
        "|---|---|---|---|---|---|",
    ]
    for e in ENDPOINTS:
        out.append(
            f"| {e.version} | {e.operation} | {e.method} | `{e.path}` | {e.spec} | {e.client or '-'} |"
        )
    return "\n".join(out)
