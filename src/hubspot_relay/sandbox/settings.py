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
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..config import SANDBOX_API_KEY, SANDBOX_HUB_ID, SANDBOX_TOKEN, ConfigError
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

    @property
    def custom_events(self) -> bool:
        """Custom behavioral events are an Enterprise feature (the seed says so)."""
        return self.tier == "enterprise"


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


class _Portal(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hub_id: int | str
    access_tokens: list[str] = msgspec.field(default_factory=list)
    api_key: str | None = None
    tier: str = "enterprise"
    limits: _Limits = msgspec.field(default_factory=_Limits)
    properties: list[_Property] = msgspec.field(default_factory=list)
    default_properties: bool = True  # also add the default portal's custom properties


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    portals: list[_Portal]


def load_portals(path: Path) -> list[PortalSettings]:
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
        if not p.access_tokens and not p.api_key:
            raise ConfigError(f"{key}: give access_tokens or api_key, or both")
        customs = [("contacts", c) for c in DEFAULT_CUSTOM_PROPERTIES] if p.default_properties else []
        for prop in p.properties:
            spec = {
                k: v for k, v in msgspec.to_builtins(prop).items() if k != "object_type" and v is not None
            }
            customs.append((prop.object_type, spec))
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
            )
        )
    hub_ids = [p.hub_id for p in portals]
    if len(set(hub_ids)) != len(hub_ids):
        raise ConfigError(f"{path}: two portals share a hub_id")
    return portals
