"""The configuration reference, generated from the schema: every key of the TOML file (its type
and default read from the msgspec structs) and every environment variable, each with what it means.

A test holds `KEYS` to exactly the schema's fields and `ENVIRONMENT` to exactly the variables the
source reads, so a setting cannot be added without being documented (docs/configuration.md is
`markdown()`)."""

from __future__ import annotations

from typing import Any

import msgspec

from .config_schema import _Account, _Limits, _Relay, _Source
from .credentials import RawOAuth
from .options import DeliveryOptions, Subscriptions

# (table as written in TOML, its struct)
TABLES: tuple[tuple[str, type[msgspec.Struct]], ...] = (
    ("[relay]", _Relay),
    ("[[accounts]]", _Account),
    ("[accounts.limits]", _Limits),
    ("[accounts.oauth]", RawOAuth),
    ("[accounts.options]", DeliveryOptions),
    ("[accounts.subscriptions]", Subscriptions),
    ("[[sources]]", _Source),
)

KEYS: dict[str, str] = {
    # [relay]
    "relay.data_dir": "The folder of the SQLite queue and the relay's state (env `HUBSPOT_RELAY_DATA_DIR`).",
    "relay.host": "The interface to listen on (env `HUBSPOT_RELAY_HOST`; `0.0.0.0` for every interface).",
    "relay.port": "The port to listen on (env `HUBSPOT_RELAY_PORT`).",
    "relay.queue": "The queue's store when `queue_url` is not set: only `sqlite`.",
    "relay.queue_url": "`redis://host:port/db` (or `rediss://`, `unix://`): the queue shared by several "
    "relay processes (env `HUBSPOT_RELAY_QUEUE_URL`).",
    "relay.queue_prefix": "The prefix of every Redis key the relay writes.",
    "relay.queue_partitions": "Partitions of the Redis queue, shared out among the live relay processes.",
    "relay.admin_token": "The Bearer token of the console and the operations API; without it they answer on "
    "loopback only (env `HUBSPOT_RELAY_ADMIN_TOKEN`).",
    "relay.public_url": "The address browsers reach the relay at, like `https://relay.example.com`; it wins "
    "over any forwarded header (env `HUBSPOT_RELAY_PUBLIC_URL`).",
    "relay.trusted_proxies": "Addresses or networks whose `Forwarded` and `X-Forwarded-*` headers are "
    "believed (env `HUBSPOT_RELAY_TRUSTED_PROXIES`, comma-separated).",
    "relay.max_queued": "Messages queued per source before ingest answers 429 with `Retry-After` "
    "(default 1,000,000).",
    "relay.min_free_disk_mb": "Free disk below which ingest answers 503 rather than fill the disk "
    "(default 256).",
    "relay.metrics_public": "Serve `/metrics` without the admin token.",
    "relay.header_timeout_s": "Seconds a client has to send a request's headers.",
    "relay.body_timeout_s": "Seconds a client has to send a request's body.",
    "relay.max_connections": "Open connections at once, in all.",
    "relay.max_connections_per_peer": "Open connections at once from one address (trusted proxies exempt).",
    "relay.summary_every_s": "Seconds between the terminal's one-line summaries (0: none).",
    # [[accounts]]
    "accounts.name": "The account's name, which sources name in `account`.",
    "accounts.hub_id": "The portal's Hub ID, a series of digits like `997086`.",
    "accounts.access_token": "A private app's (or service key's) token, sent as Bearer.",
    "accounts.api_key": "A legacy API key: with no token, the account runs in legacy mode.",
    "accounts.api_mode": "`v3` or `legacy`; inferred from the credentials when left out.",
    "accounts.api_version": "The path family of every call: a dated version (`2026-09`, `2026-03`) or `v3`.",
    "accounts.api_base": "HubSpot's API host.",
    "accounts.track_base": "HubSpot's tracking host (legacy events).",
    "accounts.eu": "The portal is in HubSpot's EU data centre (the browser loads hubspot.js from there).",
    "accounts.tier": "`free`, `starter`, `professional` or `enterprise`: the starting budget, until "
    "HubSpot's headers tell.",
    "accounts.limit_increases": "API limit increases bought for the portal.",
    "accounts.limits": "The budget by hand: `[accounts.limits]`.",
    "accounts.options": "How messages are translated and delivered: `[accounts.options]`.",
    "accounts.mappings": "Segment messages into any HubSpot object: `[[accounts.mappings]]` "
    "(see *What reaches HubSpot*).",
    "accounts.oauth": "An OAuth app's install on the portal instead of a token: `[accounts.oauth]`.",
    "accounts.consent_categories": "The consent categories HubSpot is mapped to, the default of the "
    "account's sources.",
    "accounts.subscriptions": "Which calls change a contact's email subscriptions: "
    "`[accounts.subscriptions]`.",
    # [accounts.limits]
    "limits.per_10s": "Calls per rolling 10 s (HubSpot's burst limit).",
    "limits.per_second": "Calls per second (legacy mode's 10).",
    "limits.per_day": "Calls per day (resets at the portal's midnight).",
    "limits.reserve": "The share of the budget left for the portal's other integrations (default 0.10).",
    # [accounts.oauth]
    "oauth.client_id": "The OAuth app's client id.",
    "oauth.client_secret": "The OAuth app's client secret.",
    "oauth.refresh_token": "The refresh token of the app's install on this portal.",
    # [accounts.options]
    "options.event_names": "Segment event name -> HubSpot custom event name.",
    "options.page_events": "Cloud-mode page calls become `viewed_page` custom events.",
    "options.screen_events": "Screen calls become `viewed_screen` custom events.",
    "options.company_id_property": "A unique company property keyed by `groupId` (else the domain).",
    "options.null_clears": "A trait set to null clears the property (as an empty string does).",
    "options.user_id_property": "A unique contact property keyed by `userId`: a user who changes email "
    "keeps one contact.",
    "options.list_names": "Audience key -> HubSpot list name.",
    "options.subscriptions": "The same as `[accounts.subscriptions]`.",
    "options.load_forms_sdk": "Device mode: load HubSpot's forms SDK too (Segment's *Load Forms SDK*).",
    "options.flush_identify_immediately": "Device mode: send an identify at once rather than with the "
    "next page view.",
    "options.browser_script_url": "Device mode: hubspot.js from here instead of "
    "`https://js.hs-scripts.com/{hubId}.js`.",
    "options.create_event_definitions": "Create a custom event's definition on first use.",
    "options.create_properties": "Create missing contact properties instead of dropping them.",
    "options.catalog_ttl_s": "Seconds a portal's property catalog is kept before it is read again.",
    "options.flush_ms": "Milliseconds between delivery cycles.",
    "options.batch_wait_ms": "A partial batch call this young waits for the next cycle's messages.",
    "options.contact_batch": "Contacts per upsert call (HubSpot's maximum is 100).",
    "options.event_batch": "Events per batch call.",
    "options.lease_batch": "Messages planned together.",
    "options.max_in_flight": "HubSpot calls at once per account (the limiter spaces them).",
    "options.pipeline_depth": "Batches in flight at once (a contact's messages keep their order).",
    "options.unresolved_event_wait_s": "Seconds a track with no known email waits for one.",
    "options.retry_max_age_s": "Seconds after which retryable failures (5xx, timeouts) give up.",
    "options.request_timeout_s": "Seconds to wait for a call's answer.",
    "options.hung_call_s": "Seconds after which a call is hung: it holds up only what it carries.",
    "options.connect_timeout_s": "Seconds to connect to HubSpot.",
    # [accounts.subscriptions]
    "subscriptions.unsubscribe_events": "Track events that unsubscribe the contact.",
    "subscriptions.subscribe_events": "Track events that subscribe the contact.",
    "subscriptions.trait": "An identify trait: true subscribes, false unsubscribes.",
    "subscriptions.subscription_id": "The subscription type (an event's `properties.subscription_id` wins).",
    "subscriptions.legal_basis": "The legal basis, required on GDPR-enabled portals.",
    "subscriptions.legal_basis_explanation": "The legal basis in words.",
    # [[sources]]
    "sources.name": "The source's name, in logs, metrics and the console.",
    "sources.write_key": "The write key its clients send (Segment's Basic authentication).",
    "sources.account": "The account it delivers to.",
    "sources.enabled": "Deliver to HubSpot (false: accepted and kept, not delivered).",
    "sources.consent_categories": "The consent categories HubSpot is mapped to (Segment's consent "
    "management).",
}

# Every environment variable the relay reads, and what it means.
ENVIRONMENT: dict[str, str] = {
    "HUBSPOT_RELAY_CONFIG": "The TOML file, as `--config` (default: `/etc/hubspot-relay/relay.toml` when it "
    "exists, else these variables).",
    "HUBSPOT_RELAY_WRITE_KEY": "The write key clients must send (required with real credentials).",
    "HUBSPOT_ACCESS_TOKEN": "A private app's (or service key's) token, sent as Bearer.",
    "HUBSPOT_API_KEY": "A legacy API key; with no token, the account runs in legacy mode.",
    "HUBSPOT_OAUTH_CLIENT_ID": "An OAuth app's client id (with the two below, instead of a token).",
    "HUBSPOT_OAUTH_CLIENT_SECRET": "The OAuth app's client secret.",
    "HUBSPOT_OAUTH_REFRESH_TOKEN": "The refresh token of the app's install on the portal.",
    "HUBSPOT_HUB_ID": "The portal's Hub ID.",
    "HUBSPOT_TIER": "`free`, `starter`, `professional` or `enterprise`: the starting budget.",
    "HUBSPOT_API_VERSION": "The path family of every call: `2026-09`, `2026-03` or `v3`.",
    "HUBSPOT_API_BASE": "HubSpot's API host (default `https://api.hubapi.com`).",
    "HUBSPOT_TRACK_BASE": "HubSpot's tracking host (default `https://track.hubspot.com`).",
    "HUBSPOT_SANDBOX_PORT": "Where the bundled sandbox listens when no credentials are set (8089); the "
    "sandbox command's port.",
    "HUBSPOT_RELAY_HOST": "The interface to listen on (default `127.0.0.1`; the image sets `0.0.0.0`).",
    "HUBSPOT_RELAY_PORT": "The port to listen on (default 8088).",
    "HUBSPOT_RELAY_DATA_DIR": "The data folder (default `.hubspot-relay`).",
    "HUBSPOT_RELAY_QUEUE_URL": "`redis://host:port/db`: the queue shared by several relay processes.",
    "HUBSPOT_RELAY_ADMIN_TOKEN": "The Bearer token of the console and the operations API.",
    "HUBSPOT_RELAY_PUBLIC_URL": "The address browsers reach the relay at; wins over forwarded headers.",
    "HUBSPOT_RELAY_TRUSTED_PROXIES": "Comma-separated addresses or networks whose forwarded headers are "
    "believed.",
    "HUBSPOT_RELAY_MAX_QUEUED": "Messages queued per source before ingest answers 429.",
    "HUBSPOT_RELAY_MIN_FREE_DISK_MB": "Free disk below which ingest answers 503.",
    "HUBSPOT_RELAY_METRICS_PUBLIC": "`true` serves `/metrics` without the admin token.",
    "HUBSPOT_RELAY_SUMMARY_EVERY_S": "Seconds between the terminal's summaries (0: none).",
    "HUBSPOT_RELAY_URL": "The running relay that `status`, `health`, `send` and `preview` ask.",
    "HUBSPOT_RELAY_ANALYTICS_JS_DIR": "A folder with analytics.js to serve instead of the copy the "
    "package carries.",
}


def _section(table: str) -> str:
    return table.strip("[]").split(".")[-1]


def schema_keys() -> list[str]:
    """Every key of the TOML file, as `section.field`."""
    return [f"{_section(t)}.{f.name}" for t, s in TABLES for f in msgspec.structs.fields(s)]


def _type(t: Any) -> str:
    text = str(t).replace("typing.", "").replace("hubspot_relay.", "")
    return text.replace("<class '", "").replace("'>", "").replace("NoneType", "None")


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "required"
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if isinstance(value, msgspec.Struct):
        return "(table)"
    if value is None:
        return "none"
    return f"`{msgspec.json.encode(value).decode()}`"


def markdown() -> str:
    """The reference: a table per TOML table, then the environment variables."""
    out = []
    for table, struct in TABLES:
        out += [f"### `{table}`", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for field in msgspec.structs.fields(struct):
            meaning = KEYS[f"{_section(table)}.{field.name}"]
            kind = _type(field.type).replace("|", "\\|")
            out.append(f"| `{field.name}` | `{kind}` | {_default(field)} | {meaning} |")
        out.append("")
    out += ["### Environment variables", "", "| variable | meaning |", "| --- | --- |"]
    out += [f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT.items()]
    return "\n".join(out) + "\n"
