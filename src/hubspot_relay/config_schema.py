"""The TOML file's schema, as msgspec structs: unknown keys are errors, and every value's type
is checked before `config` validates what the values mean."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .credentials import RawOAuth
from .hubspot.paths import DEFAULT_API_VERSION

ApiMode = Literal["v3", "legacy"]
DEFAULT_API_BASE = "https://api.hubapi.com"
DEFAULT_TRACK_BASE = "https://track.hubspot.com"

class _Limits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    per_10s: int | None = None
    per_second: int | None = None
    per_day: int | None = None
    reserve: float | None = None


class _Account(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    hub_id: int | str
    access_token: str | None = None
    api_key: str | None = None
    api_mode: ApiMode | None = None
    api_version: str = DEFAULT_API_VERSION
    api_base: str = DEFAULT_API_BASE
    track_base: str = DEFAULT_TRACK_BASE
    eu: bool = False
    tier: str | None = None
    limit_increases: int = 0
    limits: _Limits = msgspec.field(default_factory=_Limits)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    mappings: list[dict[str, Any]] = msgspec.field(default_factory=list)
    oauth: RawOAuth | None = None  # an OAuth app's credentials (credentials.py)
    consent_categories: list[str] | None = None  # its sources' default (translate/consent.py)
    subscriptions: dict[str, Any] | None = None  # options.Subscriptions


class _Source(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    write_key: str
    account: str
    enabled: bool = True
    consent_categories: list[str] | None = None  # the consent categories HubSpot is mapped to


class _Relay(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str | None = None
    host: str | None = None
    port: int | None = None
    queue: Literal["sqlite"] = "sqlite"
    queue_url: str | None = None  # redis://host:port/db: the shared queue of several relay processes
    queue_prefix: str = "hubspot-relay"
    queue_partitions: int = 16
    admin_token: str | None = None
    public_url: str | None = None
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    max_queued: int | None = None
    min_free_disk_mb: int | None = None
    metrics_public: bool = False
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 10_000
    max_connections_per_peer: int = 256
    summary_every_s: int = 60


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    relay: _Relay = msgspec.field(default_factory=_Relay)
    accounts: list[_Account] = msgspec.field(default_factory=list)
    sources: list[_Source] = msgspec.field(default_factory=list)
