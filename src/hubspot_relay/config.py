"""Configuration: which write keys are accepted and which HubSpot account each one feeds.

Single-tenant set-ups use environment variables; several sources and accounts use a TOML
file (`--config`). Everything is validated at start-up, and every error names the key at
fault without ever echoing a credential.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from .config_schema import DEFAULT_API_BASE, DEFAULT_TRACK_BASE, ApiMode, _Account, _File, _Limits, _Relay
from .credentials import OAUTH_PER_10S, OAuthApp, oauth_app, oauth_from_env
from .errors import ConfigError, MappingError
from .hubspot.paths import API_VERSIONS, DEFAULT_API_VERSION, is_dated
from .options import DeliveryOptions, parse_options
from .secrets import Secret
from .translate import mappings as mapping_rules
from .translate.consent import parse_categories

DEFAULT_PORT = 8088
SANDBOX_PORT = 8089
SANDBOX_HUB_ID = "997086"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_API_KEY = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"

# HubSpot's budgets per key or token (docs/architecture.md, "HubSpot facts"): (per rolling 10 s,
# per day, per second). The seed's legacy figures (10 a second, 40,000 a day), and a private app
# on a Free/Starter portal, the safe default when the tier is unknown.
DEFAULT_LIMITS: dict[str, tuple[int, int, int | None]] = {
    "legacy": (100, 40_000, 10),
    "v3": (100, 250_000, None),
}

DEFAULT_MAX_QUEUED = 1_000_000
DEFAULT_MIN_FREE_DISK_MB = 256

# HubSpot's limits by subscription (per private app per rolling 10 s, per account per day): Free
# and Starter 100 / 250,000; Professional 190 / 625,000; Enterprise 190 / 1,000,000. Each "API
# limit increase" add-on makes it 250 per 10 s and adds 1,000,000 a day.
TIER_LIMITS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
}
DEFAULT_RESERVE = 0.10  # of the budget, left for the portal's other integrations

_HUB_ID = re.compile(r"^[0-9]{1,12}$")
_API_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


# ---- the validated configuration ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    """HubSpot's budget for the account (per rolling 10 s, per day, per second), the share of it
    left for the portal's other integrations, and whether HubSpot's headers may raise it."""

    per_10s: int
    per_day: int
    per_second: int | None = None
    reserve: float = 0.0
    learn: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """One HubSpot portal we deliver to, with the credentials and budget that go with it."""

    name: str
    hub_id: str
    api_mode: ApiMode
    access_token: Secret | None
    api_key: Secret | None
    api_base: str
    track_base: str
    limits: RateLimits
    eu: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    sandbox: bool = False
    api_version: str = DEFAULT_API_VERSION  # the path family of every v3-mode call (see hubspot/paths.py)
    mappings: tuple[mapping_rules.Mapping, ...] = ()  # Segment calls -> any HubSpot object
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    oauth: OAuthApp | None = None  # an OAuth app instead of a private app token
    consent_categories: tuple[str, ...] = ()  # the default of its sources

    @property
    def version(self) -> str:
        """The API it speaks, as people name it: `legacy`, `v3` or a dated version."""
        return "legacy" if self.api_mode == "legacy" else self.api_version

    @property
    def auth(self) -> str:
        """How it authenticates, in words (never the credential)."""
        if self.oauth is not None:
            return f"OAuth app {self.oauth.client_id}"
        return "API key" if self.api_mode == "legacy" else "private app token"


@dataclass(frozen=True, slots=True)
class Source:
    """A write key clients send with, routed to one account."""

    name: str
    write_key: Secret
    account: str
    enabled: bool = True
    consent_categories: tuple[str, ...] = ()  # its own, or its account's (translate/consent.py)


@dataclass(frozen=True)
class Config:
    data_dir: Path
    host: str
    port: int
    accounts: tuple[Account, ...]
    sources: tuple[Source, ...]
    queue: str = "sqlite"
    # Redis (or Valkey) shared by several relay processes; None: the SQLite file in data_dir.
    queue_url: Secret | None = None
    queue_prefix: str = "hubspot-relay"
    queue_partitions: int = 16
    admin_token: Secret | None = None
    # With no write key configured (development against the sandbox only) any key is let in.
    open_ingest: bool = False
    # The address browsers reach the relay at (settings, plugin URL); None: loopback requests only.
    public_url: str | None = None
    # Proxies whose X-Forwarded-* headers are believed (addresses or networks).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Back-pressure: past these, ingest answers 429 with Retry-After and loses nothing.
    max_queued: int = DEFAULT_MAX_QUEUED  # undelivered messages per source
    min_free_disk_mb: int = DEFAULT_MIN_FREE_DISK_MB
    metrics_public: bool = False  # /metrics without the admin token
    # Slow and greedy clients (see connections.py).
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 10_000
    max_connections_per_peer: int = 256
    summary_every_s: int = 60  # the terminal's one-line summary of what happened (0: none)
    _by_write_key: dict[str, Source] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_write_key", {s.write_key.reveal(): s for s in self.sources})

    @property
    def uses_sandbox(self) -> bool:
        return any(a.sandbox for a in self.accounts)

    def source_for_write_key(self, write_key: str) -> Source | None:
        """The source a write key belongs to; in open-ingest mode every key maps to the default."""
        if self.open_ingest:
            return self.sources[0] if write_key else None
        return self._by_write_key.get(write_key)

    def account(self, name: str) -> Account:
        for acc in self.accounts:
            if acc.name == name:
                return acc
        raise KeyError(name)


def _where(path: str) -> str:
    """Turn msgspec's `$.accounts[0].limits` into `accounts[0].limits`."""
    return path.removeprefix("$").lstrip(".") or "(top level)"


def _validation_message(err: msgspec.ValidationError) -> str:
    text = str(err)
    if " - at `" in text:
        msg, _, at = text.partition(" - at `")
        return f"{_where(at.rstrip('`'))}: {msg}"
    return text


def _expand_env(value: str | None, key: str, env: Mapping[str, str]) -> str | None:
    """`${NAME}` takes the value from the environment, so secrets can stay out of the file."""
    if value is None:
        return None
    m = _ENV_REF.match(value)
    if not m:
        return value
    var = m.group(1)
    if var not in env or env[var] == "":
        raise ConfigError(f"{key}: refers to environment variable {var}, which is not set")
    return env[var]


def validate_hub_id(value: object, key: str) -> str:
    text = str(value).strip()
    if not _HUB_ID.match(text):
        raise ConfigError(
            f"{key}: a Hub ID is a series of digits, like 997086 (find it on your HubSpot account's "
            "Settings page)"
        )
    return text


def validate_api_key(value: str, key: str) -> Secret:
    if not _API_KEY.match(value.strip()):
        raise ConfigError(
            f"{key}: does not look like a HubSpot API key, which looks like "
            "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8. Don't use the temporary authorization code "
            "from Settings > API Access."
        )
    return Secret(value.strip().lower())


def validate_access_token(value: str, key: str) -> Secret:
    token = value.strip()
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"{key}: an access token is one word with no spaces")
    return Secret(token)


def _validate_url(value: str, key: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{key}: must be an http(s) URL, like https://api.hubapi.com")
    return value.rstrip("/")


def _limits(
    raw: _Limits, mode: ApiMode, key: str, tier: str | None = None, increases: int = 0, *, oauth: bool = False
) -> RateLimits:
    per_10s_default, per_day_default, per_second_default = DEFAULT_LIMITS[mode]
    if tier is not None:
        per_10s_default, per_day_default = TIER_LIMITS[tier]
    if oauth:  # an OAuth app's budget is per app and portal, whatever the subscription
        per_10s_default = OAUTH_PER_10S
    if not 0 <= increases <= 100:
        raise ConfigError(f"{key.rsplit('.', 1)[0]}.limit_increases: how many API limit increases, 0 to 100")
    if increases:
        per_10s_default, per_day_default = 250, per_day_default + 1_000_000 * increases
    for name in ("per_10s", "per_second", "per_day"):
        v = getattr(raw, name)
        if v is not None and v < 1:
            raise ConfigError(f"{key}.{name}: must be a positive whole number")
    if raw.reserve is not None and not 0 <= raw.reserve < 1:
        raise ConfigError(f"{key}.reserve: a share of the budget, from 0 (none) to below 1, like 0.1")
    per_10s = raw.per_10s if raw.per_10s is not None else per_10s_default
    per_second = raw.per_second if raw.per_second is not None else per_second_default
    if per_second is not None:
        per_10s = min(per_10s, per_second * 10)
    return RateLimits(
        per_10s=per_10s,
        per_day=raw.per_day if raw.per_day is not None else per_day_default,
        per_second=per_second,
        reserve=raw.reserve if raw.reserve is not None else DEFAULT_RESERVE,
        # Limits written by hand are a ceiling HubSpot's headers may only lower.
        learn=raw.per_10s is None and raw.per_day is None and raw.per_second is None,
    )


def _account(raw: _Account, i: int, env: Mapping[str, str]) -> Account:
    key = f"accounts[{i}]"
    if not _NAME.match(raw.name):
        raise ConfigError(f"{key}.name: use letters, digits, '-', '_' or '.' (at most 64)")
    hub_id = validate_hub_id(raw.hub_id, f"{key}.hub_id")
    token_raw = _expand_env(raw.access_token, f"{key}.access_token", env)
    api_key_raw = _expand_env(raw.api_key, f"{key}.api_key", env)
    token = validate_access_token(token_raw, f"{key}.access_token") if token_raw else None
    api_key = validate_api_key(api_key_raw, f"{key}.api_key") if api_key_raw else None
    oauth = oauth_app(raw.oauth, f"{key}.oauth", lambda v, k: _expand_env(v, k, env))
    if oauth is not None and token is not None:
        raise ConfigError(f"{key}: give access_token (a private app) or [oauth] (an OAuth app), not both")
    mode: ApiMode = raw.api_mode or ("v3" if token or oauth or not api_key else "legacy")
    if mode == "v3" and token is None and oauth is None:
        raise ConfigError(f"{key}: api_mode v3 needs access_token (a private app token) or [oauth]")
    if mode == "legacy" and api_key is None:
        raise ConfigError(f"{key}: api_mode legacy needs api_key")
    return Account(
        name=raw.name,
        hub_id=hub_id,
        api_mode=mode,
        access_token=token,
        api_key=api_key,
        api_base=_validate_url(raw.api_base, f"{key}.api_base"),
        track_base=_validate_url(raw.track_base, f"{key}.track_base"),
        limits=_limits(
            raw.limits,
            mode,
            f"{key}.limits",
            _tier(raw.tier, f"{key}.tier"),
            raw.limit_increases,
            oauth=oauth is not None,
        ),
        eu=raw.eu,
        options=dict(raw.options),
        delivery=parse_options({**raw.options, "subscriptions": raw.subscriptions or {}}, f"{key}.options"),
        api_version=validate_api_version(raw.api_version, f"{key}.api_version"),
        mappings=_mappings(raw.mappings, f"{key}.mappings", mode),
        oauth=oauth,
        consent_categories=parse_categories(raw.consent_categories, f"{key}.consent_categories"),
    )


def _mappings(raw: list[dict[str, Any]], key: str, mode: ApiMode) -> tuple[mapping_rules.Mapping, ...]:
    try:
        mappings = mapping_rules.parse_mappings(raw, key)
    except MappingError as e:
        raise ConfigError(str(e)) from None
    if mappings and mode == "legacy":
        raise ConfigError(f"{key}: mappings need an access token (v3): legacy mode has no objects API")
    return mappings


def validate_api_version(value: str, key: str) -> str:
    version = value.strip()
    if version in API_VERSIONS:
        return version
    hint = " (a newer one than this hubspot-relay knows?)" if is_dated(version) else ""
    raise ConfigError(
        f"{key}: {', '.join(repr(v) for v in API_VERSIONS)}: HubSpot's date-versioned paths, or 'v3' "
        f"for the numbered ones; got {value!r}{hint}"
    )


def _tier(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    tier = value.strip().lower()
    if tier not in TIER_LIMITS:
        raise ConfigError(f"{key}: one of {', '.join(TIER_LIMITS)} (it sets the starting budget)")
    return tier


def _check_routes(accounts: tuple[Account, ...], sources: tuple[Source, ...]) -> None:
    names = [a.name for a in accounts]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"accounts[{i}].name: {name!r} is used by another account")
    seen_keys: set[str] = set()
    seen_names: set[str] = set()
    for i, src in enumerate(sources):
        if src.name in seen_names:
            raise ConfigError(f"sources[{i}].name: {src.name!r} is used by another source")
        seen_names.add(src.name)
        if src.write_key.reveal() in seen_keys:
            raise ConfigError(f"sources[{i}].write_key: the same write key is given to another source")
        seen_keys.add(src.write_key.reveal())
        if src.account not in names:
            raise ConfigError(f"sources[{i}].account: no account is named {src.account!r}")


def sandbox_account(port: int = SANDBOX_PORT) -> Account:
    """The bundled sandbox's default portal, used when no HubSpot credentials are configured."""
    base = f"http://127.0.0.1:{port}"
    return Account(
        name="sandbox",
        hub_id=SANDBOX_HUB_ID,
        api_mode="v3",
        access_token=Secret(SANDBOX_TOKEN),
        api_key=None,
        api_base=base,
        track_base=base,
        limits=RateLimits(*DEFAULT_LIMITS["v3"], reserve=DEFAULT_RESERVE, learn=True),
        sandbox=True,
    )


def load_file(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load a multi-tenant TOML configuration."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        raw = msgspec.convert(data, _File)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{path}: {_validation_message(e)}") from None
    try:
        accounts = tuple(_account(a, i, env) for i, a in enumerate(raw.accounts))
        sources = []
        for i, s in enumerate(raw.sources):
            wk = _expand_env(s.write_key, f"sources[{i}].write_key", env) or ""
            if not wk.strip():
                raise ConfigError(f"sources[{i}].write_key: must not be empty")
            own = parse_categories(s.consent_categories, f"sources[{i}].consent_categories")
            default = next((a.consent_categories for a in accounts if a.name == s.account), ())
            consent = own if s.consent_categories is not None else default
            sources.append(Source(s.name, Secret(wk.strip()), s.account, s.enabled, consent))
        if not sources:
            raise ConfigError("sources: at least one [[sources]] entry is needed")
        _check_routes(accounts, tuple(sources))
        admin = _expand_env(raw.relay.admin_token, "relay.admin_token", env)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _with_relay_settings(
        Config(
            data_dir=Path(raw.relay.data_dir or ".hubspot-relay"),
            host=raw.relay.host or "127.0.0.1",
            port=raw.relay.port or DEFAULT_PORT,
            accounts=accounts,
            sources=tuple(sources),
            queue=raw.relay.queue,
            admin_token=Secret(admin) if admin else None,
            **_relay_options(raw.relay, path, env),
        ),
        env,
    )


def load_env(env: Mapping[str, str] | None = None) -> Config:
    """Single-tenant configuration from HUBSPOT_* environment variables."""
    env = os.environ if env is None else env
    token = env.get("HUBSPOT_ACCESS_TOKEN", "").strip()
    api_key = env.get("HUBSPOT_API_KEY", "").strip()
    oauth = oauth_from_env(env)
    if oauth is not None and token:
        raise ConfigError("HUBSPOT_ACCESS_TOKEN and HUBSPOT_OAUTH_*: a private app or an OAuth app, not both")
    write_key = env.get("HUBSPOT_RELAY_WRITE_KEY", "").strip()
    if token or api_key or oauth:
        if "HUBSPOT_HUB_ID" not in env:
            raise ConfigError("HUBSPOT_HUB_ID: needed with HubSpot credentials (like 997086)")
        hub_id = validate_hub_id(env["HUBSPOT_HUB_ID"], "HUBSPOT_HUB_ID")
        mode: ApiMode = "v3" if token or oauth else "legacy"
        account = Account(
            name="default",
            hub_id=hub_id,
            api_mode=mode,
            access_token=validate_access_token(token, "HUBSPOT_ACCESS_TOKEN") if token else None,
            api_key=validate_api_key(api_key, "HUBSPOT_API_KEY") if api_key else None,
            api_base=_validate_url(env.get("HUBSPOT_API_BASE", DEFAULT_API_BASE), "HUBSPOT_API_BASE"),
            track_base=_validate_url(env.get("HUBSPOT_TRACK_BASE", DEFAULT_TRACK_BASE), "HUBSPOT_TRACK_BASE"),
            limits=_limits(
                _Limits(),
                mode,
                "limits",
                _tier(env.get("HUBSPOT_TIER") or None, "HUBSPOT_TIER"),
                oauth=oauth is not None,
            ),
            oauth=oauth,
            api_version=validate_api_version(
                env.get("HUBSPOT_API_VERSION") or DEFAULT_API_VERSION, "HUBSPOT_API_VERSION"
            ),
        )
        if not write_key:
            raise ConfigError(
                "HUBSPOT_RELAY_WRITE_KEY: needed when delivering to a real HubSpot account, "
                "so that only your clients can send"
            )
    else:
        port = env.get("HUBSPOT_SANDBOX_PORT", str(SANDBOX_PORT))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("HUBSPOT_SANDBOX_PORT: must be a port number (1-65535)")
        account = sandbox_account(int(port))
        if env.get("HUBSPOT_API_VERSION"):
            account = replace(
                account, api_version=validate_api_version(env["HUBSPOT_API_VERSION"], "HUBSPOT_API_VERSION")
            )
    source = Source(name="default", write_key=Secret(write_key), account=account.name)
    admin = env.get("HUBSPOT_RELAY_ADMIN_TOKEN", "").strip()
    return _with_relay_settings(
        Config(
            data_dir=Path(".hubspot-relay"),
            host="127.0.0.1",
            port=DEFAULT_PORT,
            accounts=(account,),
            sources=(source,),
            admin_token=Secret(admin) if admin else None,
            open_ingest=not write_key,
        ),
        env,
    )


def validate_public_url(value: str, key: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+$", value.strip().rstrip("/")):
        raise ConfigError(
            f"{key}: the address browsers reach the relay at, scheme and host only, like "
            "https://relay.example.com"
        )
    return value.strip().rstrip("/")


def parse_proxies(values: list[str], key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{key}: {v.strip()[:60]!r} is not an IP address or network") from None
    return tuple(nets)


def _positive(value: int | None, key: str, minimum: int = 1) -> int | None:
    if value is not None and value < minimum:
        raise ConfigError(f"{key}: must be a whole number of at least {minimum}")
    return value


def _relay_options(raw: _Relay, path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        out: dict[str, Any] = {
            "public_url": validate_public_url(raw.public_url, "relay.public_url") if raw.public_url else None,
            "trusted_proxies": parse_proxies(raw.trusted_proxies, "relay.trusted_proxies"),
            "metrics_public": raw.metrics_public,
            "max_connections": _positive(raw.max_connections, "relay.max_connections"),
            "max_connections_per_peer": _positive(
                raw.max_connections_per_peer, "relay.max_connections_per_peer"
            ),
        }
        if not (raw.summary_every_s == 0 or 1 <= raw.summary_every_s <= 86_400):
            raise ConfigError("relay.summary_every_s: seconds, from 1 to 86400 (0: no summary)")
        out["summary_every_s"] = raw.summary_every_s
        if not 0.1 <= raw.header_timeout_s <= 300:
            raise ConfigError("relay.header_timeout_s: seconds, from 0.1 to 300")
        out["header_timeout_s"] = raw.header_timeout_s
        if not 0.1 <= raw.body_timeout_s <= 3600:
            raise ConfigError("relay.body_timeout_s: seconds, from 0.1 to 3600")
        out["body_timeout_s"] = raw.body_timeout_s
        queue_url = _expand_env(raw.queue_url, "relay.queue_url", env)
        if queue_url:
            out["queue_url"] = validate_queue_url(queue_url, "relay.queue_url")
        if not raw.queue_prefix or not raw.queue_prefix.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("relay.queue_prefix: letters, digits, '-' and '_'")
        out["queue_prefix"] = raw.queue_prefix
        if not 1 <= raw.queue_partitions <= 64:
            raise ConfigError("relay.queue_partitions: from 1 to 64")
        out["queue_partitions"] = raw.queue_partitions
        if _positive(raw.max_queued, "relay.max_queued") is not None:
            out["max_queued"] = raw.max_queued
        if _positive(raw.min_free_disk_mb, "relay.min_free_disk_mb", 0) is not None:
            out["min_free_disk_mb"] = raw.min_free_disk_mb
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return out


def validate_queue_url(url: str, key: str) -> Secret:
    """A Redis URL (redis://, rediss:// or unix://); kept as a secret, since it may hold a password."""
    text = url.strip()
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{key}: a Redis URL is expected (redis://host:port/db, rediss://..., unix://...)")
    return Secret(text)


def _env_int(env: Mapping[str, str], name: str, minimum: int) -> int:
    text = env[name].strip()
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise ConfigError(f"{name}: must be a whole number of at least {minimum}")
    return int(text)


def _with_relay_settings(cfg: Config, env: Mapping[str, str]) -> Config:
    """Environment variables override the file for the relay process itself."""
    changes: dict[str, Any] = {}
    if env.get("HUBSPOT_RELAY_PUBLIC_URL"):
        changes["public_url"] = validate_public_url(
            env["HUBSPOT_RELAY_PUBLIC_URL"], "HUBSPOT_RELAY_PUBLIC_URL"
        )
    if env.get("HUBSPOT_RELAY_TRUSTED_PROXIES"):
        changes["trusted_proxies"] = parse_proxies(
            [v for v in env["HUBSPOT_RELAY_TRUSTED_PROXIES"].split(",") if v.strip()],
            "HUBSPOT_RELAY_TRUSTED_PROXIES",
        )
    if env.get("HUBSPOT_RELAY_MAX_QUEUED"):
        changes["max_queued"] = _env_int(env, "HUBSPOT_RELAY_MAX_QUEUED", 1)
    if env.get("HUBSPOT_RELAY_MIN_FREE_DISK_MB"):
        changes["min_free_disk_mb"] = _env_int(env, "HUBSPOT_RELAY_MIN_FREE_DISK_MB", 0)
    if env.get("HUBSPOT_RELAY_METRICS_PUBLIC"):
        changes["metrics_public"] = env["HUBSPOT_RELAY_METRICS_PUBLIC"].strip().lower() in (
            "1",
            "true",
            "yes",
        )
    if env.get("HUBSPOT_RELAY_SUMMARY_EVERY_S"):
        changes["summary_every_s"] = _env_int(env, "HUBSPOT_RELAY_SUMMARY_EVERY_S", 0)
    if env.get("HUBSPOT_RELAY_DATA_DIR"):
        changes["data_dir"] = Path(env["HUBSPOT_RELAY_DATA_DIR"])
    if env.get("HUBSPOT_RELAY_QUEUE_URL"):
        changes["queue_url"] = validate_queue_url(env["HUBSPOT_RELAY_QUEUE_URL"], "HUBSPOT_RELAY_QUEUE_URL")
    if env.get("HUBSPOT_RELAY_HOST"):
        changes["host"] = env["HUBSPOT_RELAY_HOST"].strip()
    if env.get("HUBSPOT_RELAY_PORT"):
        port = env["HUBSPOT_RELAY_PORT"]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("HUBSPOT_RELAY_PORT: must be a port number (1-65535)")
        changes["port"] = int(port)
    return replace(cfg, **changes) if changes else cfg


def load(config_path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    return load_file(config_path, env) if config_path else load_env(env)
