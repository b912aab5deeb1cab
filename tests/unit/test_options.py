"""Per-account delivery options: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from hubspot_relay.errors import ConfigError
from hubspot_relay.options import DeliveryOptions, parse_options


def test_defaults_fit_a_real_portal() -> None:
    opts = parse_options({}, "accounts[0].options")
    assert opts == DeliveryOptions()
    assert (opts.lease_batch, opts.max_in_flight, opts.pipeline_depth) == (25_000, 32, 2)
    assert (opts.request_timeout_s, opts.connect_timeout_s, opts.batch_wait_ms) == (30.0, 5.0, 1000)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"contact_batch": 101}, r"accounts\[0\].options.contact_batch: HubSpot takes 1 to 100"),
        ({"event_batch": 0}, r"accounts\[0\].options.event_batch: HubSpot takes 1 to 500"),
        ({"max_in_flight": 0}, r"accounts\[0\].options.max_in_flight: 1 to 64"),
        ({"pipeline_depth": 9}, r"accounts\[0\].options.pipeline_depth: 1 to 8"),
        ({"lanes": 4}, r"accounts\[0\].options: Object contains unknown field `lanes`"),
    ],
)
def test_refused_options_name_the_key(raw: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_options(raw, "accounts[0].options")


@pytest.mark.parametrize(
    ("subscriptions", "message"),
    [
        ({"unsubscribe_events": ["Unsubscribed"]}, "subscription_id"),
        ({"trait": "news", "subscription_id": 1, "legal_basis": "BECAUSE"}, "legal_basis: one of"),
        ({"subscription_id": 1, "unknown": True}, "unknown"),
    ],
)
def test_subscriptions_that_cannot_work_are_refused(subscriptions: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_options({"subscriptions": subscriptions}, "accounts[0].options")
