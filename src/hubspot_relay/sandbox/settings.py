"""Which portals the sandbox serves: the seed's defaults, CLI options, or a TOML file.

```toml
[[portals]]
hub_id = 997086
access_tokens = ["sandbox-token"]
api_key = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"
tier = "enterprise"                 # or "professional", "starter", "free": no custom events
limits = { per_10s = 100, per_day = 250000 }

[[portals.properties]]              # custom properties, on contacts unless object_type says
name = "favorite_color"
type = "string"

[[portals.objects]]                 # a custom object: p<hub_id>_pets, object type id 2-<n>
name = "pets"
label = "Pet"
primary_display_property = "pet_name"
associated_with = ["contacts"]
properties = [{ name = "pet_name" }, { name = "pet_id", hasUniqueValue = true }]

[[portals.association_labels]]      # the portal's own labels (USER_DEFINED)
from = "deals"
to = "companies"
label = "Reseller"

[portals.event_paths]               # which published custom-events spelling it serves ("" none)
"2026-09" = "/events/custom/2026-09"

[[portals.oauth_apps]]              # an OAuth app installed here (tokens from /oauth/.../token)
client_id = "app-1"
client_secret = "app-secret"
refresh_tokens = ["refresh-1"]
token_lifetime_s = 1800             # HubSpot's 30 minutes; shorter for tests
rotate_refresh_tokens = false

[[portals.required_properties]]     # write validation (2026-09 on): required on the create form
object_type = "contacts"
name = "company"

[[portals.required_properties]]     # ... or required when another property has a value
object_type = "deals"
name = "closedate"
when = { property = "dealstage", value = "closedwon" }
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..config import SANDBOX_API_KEY, SANDBOX_HUB_ID, SANDBOX_TOKEN
from ..errors import ConfigError
from ..hubspot.endpoints import event_spellings
from ..hubspot.paths import API_VERSIONS
from . import write_rules
from .errors import ApiError
from .limits import Budget

TIERS = ("free", "starter", "professional", "enterprise")

# The default portal's custom properties: what the seed's examples and the reference workload
# need ("Favorite Color" -> favorite_color, a plan picked from a list, a trial end date).
DEFAULT_CUSTOM_PROPERTIES: tuple[dict[str, Any], ...] = (
    {"name": "favorite_color", "label": "Favorite Color", "type": "string", "fieldType": "text"},
    {
        "name": "plan",
        "label": "Plan",
        "type": "enumeration",
        "fieldType": "select",
        "options": ["free", "pro", "enterprise"],
    },
    {"name": "trial_ends", "label": "Trial ends", "type": "date", "fieldType": "date"},
    {"name": "beta_user", "label": "Beta user", "type": "bool", "fieldType": "booleancheckbox"},
)


@dataclass(frozen=True)
class PortalSettings:
    hub_id: str = SANDBOX_HUB_ID
    access_tokens: tuple[str, ...] = (SANDBOX_TOKEN,)
    api_key: str | None = SANDBOX_API_KEY
    tier: str = "enterprise"
    budget: Budget = field(default_factory=Budget)
    # (object type, property spec) pairs added to HubSpot's defaults
    custom_properties: tuple[tuple[str, dict[str, Any]], ...] = tuple(
        ("contacts", p) for p in DEFAULT_CUSTOM_PROPERTIES
    )
    # custom objects: {name, label, primary_display_property, associated_with, properties}
    custom_objects: tuple[dict[str, Any], ...] = ()
    # the portal's own association labels: {from, to, label}
    association_labels: tuple[dict[str, str], ...] = ()
    # which published spelling of each API version's custom-event paths the portal serves ("" for
    # none): the newest by default; HubSpot has published several (hubspot/endpoints.py)
    event_paths: tuple[tuple[str, str], ...] = field(default_factory=lambda: default_event_paths())
    # write validation (enforced on API version 2026-09's writes, as at HubSpot): properties its
    # admins require, {object_type, name} on creates, or {object_type, name, when: {property, value}}
    required_properties: tuple[dict[str, Any], ...] = ()
    # OAuth apps installed here: {client_id, client_secret, refresh_tokens, token_lifetime_s (1800),
    # rotate_refresh_tokens (false)}; their access tokens are issued by the token endpoint
    oauth_apps: tuple[dict[str, Any], ...] = ()
    # communication preferences: the portal's subscription types, and whether GDPR is on (then
    # every status written needs a legal basis)
    subscription_types: tuple[dict[str, Any], ...] = (
        {"id": 1, "name": "Marketing Information"},
        {"id": 2, "name": "One to One"},
    )
    gdpr: bool = False

    def serves_events_at(self, version: str, prefix: str) -> bool:
        return dict(self.event_paths).get(version) == prefix

    @property
    def custom_events(self) -> bool:
        """Custom behavioral events are an Enterprise feature (the seed says so)."""
        return self.tier == "enterprise"


def default_event_paths(**chosen: str) -> tuple[tuple[str, str], ...]:
    """Each version's newest published custom-events spelling, or the one `chosen` names
    (`default_event_paths(**{"2026-09": "/events/custom/2026-09"})`; "" serves none)."""
    unknown = sorted(set(chosen) - set(API_VERSIONS))
    if unknown:
        raise ValueError(f"event_paths.{unknown[0]}: not an API version ({', '.join(API_VERSIONS)})")
    out = []
    for version in API_VERSIONS:
        published = event_spellings(version)
        prefix = chosen.get(version, published[0])
        if prefix and prefix not in published:
            raise ValueError(
                f"event_paths.{version}: HubSpot publishes {', '.join(published)} (or \"\" for none), "
                f"not {prefix}"
            )
        out.append((version, prefix))
    return tuple(out)


class _Limits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    per_10s: int = 100
    per_day: int = 250_000
    per_second: int | None = None
    search_per_second: int = 5


class _Property(msgspec.Struct, kw_only=True):
    name: str
    type: str = "string"
    object_type: str = "contacts"
    label: str | None = None
    fieldType: str | None = None
    options: list[Any] = msgspec.field(default_factory=list)
    hasUniqueValue: bool = False


class _Object(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    label: str | None = None
    primary_display_property: str | None = None
    associated_with: list[str] = msgspec.field(default_factory=lambda: ["contacts"])
    properties: list[_Property] = msgspec.field(default_factory=list)


class _Label(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"from_": "from"}):
    from_: str
    to: str
    label: str


class _OAuthApp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_id: str
    client_secret: str
    refresh_tokens: list[str]
    token_lifetime_s: float = 1800.0
    rotate_refresh_tokens: bool = False


class _Portal(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hub_id: int | str
    access_tokens: list[str] = msgspec.field(default_factory=list)
    api_key: str | None = None
    tier: str = "enterprise"
    limits: _Limits = msgspec.field(default_factory=_Limits)
    properties: list[_Property] = msgspec.field(default_factory=list)
    default_properties: bool = True  # also add the default portal's custom properties
    objects: list[_Object] = msgspec.field(default_factory=list)
    association_labels: list[_Label] = msgspec.field(default_factory=list)
    event_paths: dict[str, str] = msgspec.field(default_factory=dict)
    required_properties: list[dict[str, Any]] = msgspec.field(default_factory=list)
    oauth_apps: list[_OAuthApp] = msgspec.field(default_factory=list)


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    portals: list[_Portal]


def _spec(prop: _Property) -> dict[str, Any]:
    return {k: v for k, v in msgspec.to_builtins(prop).items() if k != "object_type" and v is not None}


def load_portals(path: Path, check: Callable[[PortalSettings], object] | None = None) -> list[PortalSettings]:
    """The portals a TOML file declares; `check` builds each one (the sandbox passes `PortalState`),
    so that a custom object or label that cannot be defined is a configuration error here."""
    try:
        raw = msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), _File)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as e:
        raise ConfigError(f"{path}: {e}") from None
    portals = []
    for i, p in enumerate(raw.portals):
        key = f"{path}: portals[{i}]"
        hub_id = str(p.hub_id)
        if not hub_id.isdigit():
            raise ConfigError(f"{key}.hub_id: a Hub ID is a series of digits, like 997086")
        if p.tier not in TIERS:
            raise ConfigError(f"{key}.tier: one of {', '.join(TIERS)}")
        if not p.access_tokens and not p.api_key and not p.oauth_apps:
            raise ConfigError(f"{key}: give access_tokens, api_key or oauth_apps")
        try:
            event_paths = default_event_paths(**p.event_paths)
        except ValueError as e:
            raise ConfigError(f"{key}.{e}") from None
        for rule in p.required_properties:
            problem = write_rules.rule_problem(rule)
            if problem:
                raise ConfigError(f"{key}.required_properties: {problem}")
        customs = [("contacts", c) for c in DEFAULT_CUSTOM_PROPERTIES] if p.default_properties else []
        for prop in p.properties:
            customs.append((prop.object_type, _spec(prop)))
        portals.append(
            PortalSettings(
                hub_id=hub_id,
                access_tokens=tuple(p.access_tokens),
                api_key=p.api_key,
                tier=p.tier,
                budget=Budget(
                    p.limits.per_10s, p.limits.per_day, p.limits.per_second, p.limits.search_per_second
                ),
                custom_properties=tuple(customs),
                custom_objects=tuple(
                    {**msgspec.to_builtins(o), "properties": [_spec(prop) for prop in o.properties]}
                    for o in p.objects
                ),
                association_labels=tuple(
                    {"from": a.from_, "to": a.to, "label": a.label} for a in p.association_labels
                ),
                event_paths=event_paths,
                required_properties=tuple(p.required_properties),
                oauth_apps=tuple(msgspec.to_builtins(a) for a in p.oauth_apps),
            )
        )
        try:
            if check is not None:
                check(portals[-1])
        except (ValueError, ApiError) as e:
            raise ConfigError(f"{key}: {getattr(e, 'body', {}).get('message') or e}") from None
    hub_ids = [p.hub_id for p in portals]
    if len(set(hub_ids)) != len(hub_ids):
        raise ConfigError(f"{path}: two portals share a hub_id")
    return portals
