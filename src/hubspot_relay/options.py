"""Per-account delivery options (`[accounts.options]` in the TOML file), with their defaults."""

from __future__ import annotations

import re

import msgspec

from .errors import ConfigError

LEGAL_BASES = (
    "CONSENT_WITH_NOTICE",
    "LEGITIMATE_INTEREST_CLIENT",
    "LEGITIMATE_INTEREST_OTHER",
    "LEGITIMATE_INTEREST_PQL",
    "NON_GDPR",
    "PERFORMANCE_OF_CONTRACT",
    "PROCESS_AND_STORE",
)


class Subscriptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """`[accounts.subscriptions]`: which calls change a contact's email subscription status."""

    unsubscribe_events: list[str] = msgspec.field(default_factory=list)  # tracks that unsubscribe
    subscribe_events: list[str] = msgspec.field(default_factory=list)  # tracks that subscribe
    trait: str | None = None  # an identify trait: true subscribes, false unsubscribes
    subscription_id: int | None = None  # the default (an event's properties.subscription_id wins)
    legal_basis: str | None = None  # required on GDPR-enabled portals
    legal_basis_explanation: str | None = None


class DeliveryOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    # translate
    event_names: dict[str, str] = msgspec.field(default_factory=dict)  # Segment event -> HubSpot event
    page_events: bool = True  # cloud page calls become `viewed_page` custom events
    screen_events: bool = True  # screen calls become `viewed_screen` custom events
    company_id_property: str | None = None  # a unique company property keyed by groupId; else domain
    null_clears: bool = True  # a trait set to null clears the property (as "" does), else it is left out
    # a unique contact property keyed by userId (created on first use): a user who changes email
    # updates the same contact; messages without a userId are keyed by email as before
    user_id_property: str | None = None
    list_names: dict[str, str] = msgspec.field(default_factory=dict)  # audience key -> HubSpot list
    subscriptions: Subscriptions = msgspec.field(default_factory=Subscriptions)
    # device mode (the browser plugin's settings)
    load_forms_sdk: bool = False
    flush_identify_immediately: bool = False
    browser_script_url: str | None = None  # instead of https://js.hs-scripts.com/{hubId}.js
    # HubSpot set-up
    create_event_definitions: bool = True  # "HubSpot will auto-create the event for you" (the seed)
    create_properties: bool = False  # create missing contact properties instead of dropping them
    catalog_ttl_s: float = 3600.0
    # batching and retries
    flush_ms: int = 250
    batch_wait_ms: int = 1000  # a partial batch call (upserts, events) this young waits for the next cycle's
    contact_batch: int = 100
    event_batch: int = 500
    lease_batch: int = 25_000  # messages planned together: a backlog leaves in full batch calls
    max_in_flight: int = 32  # HubSpot calls at once per account (the limiter spaces them)
    pipeline_depth: int = 2  # leased batches in flight at once (a contact's messages keep their order)
    unresolved_event_wait_s: float = 3600.0  # a track with no known email waits this long for one
    retry_max_age_s: float = 86_400.0  # retryable failures (5xx, timeouts) give up after this
    request_timeout_s: float = 30.0  # a call's answer (batch calls can take seconds)
    hung_call_s: float = 10.0  # a call out this long is hung: it holds up only what it carries
    connect_timeout_s: float = 5.0  # a connection to HubSpot


def parse_options(raw: dict[str, object], key: str) -> DeliveryOptions:
    try:
        opts = msgspec.convert(raw, DeliveryOptions)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{key}: {e}") from None
    if not 1 <= opts.contact_batch <= 100:
        raise ConfigError(f"{key}.contact_batch: HubSpot takes 1 to 100 records per batch call")
    if not 1 <= opts.event_batch <= 500:
        raise ConfigError(f"{key}.event_batch: HubSpot takes 1 to 500 events per batch call")
    if not 1 <= opts.max_in_flight <= 64:
        raise ConfigError(f"{key}.max_in_flight: 1 to 64 calls at once")
    if opts.user_id_property is not None and not re.match(r"^[a-z][a-z0-9_]{0,99}$", opts.user_id_property):
        raise ConfigError(
            f"{key}.user_id_property: a HubSpot property name (lowercase letters, digits, underscores), "
            "like segment_user_id"
        )
    if opts.user_id_property in ("email", "hs_object_id"):
        raise ConfigError(f"{key}.user_id_property: a property of its own, like segment_user_id")
    if not 0.5 <= opts.hung_call_s <= 600:
        raise ConfigError(f"{key}.hung_call_s: 0.5 to 600 seconds")
    if not 1 <= opts.pipeline_depth <= 8:
        raise ConfigError(f"{key}.pipeline_depth: 1 to 8 batches at once")
    subs = opts.subscriptions
    if subs.legal_basis is not None and subs.legal_basis not in LEGAL_BASES:
        raise ConfigError(f"{key}.subscriptions.legal_basis: one of {', '.join(LEGAL_BASES)}")
    if (subs.unsubscribe_events or subs.subscribe_events or subs.trait) and subs.subscription_id is None:
        raise ConfigError(
            f"{key}.subscriptions.subscription_id: the subscription type's id (from the portal's "
            "subscription types; an event's properties.subscription_id overrides it)"
        )
    return opts
