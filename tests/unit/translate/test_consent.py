"""End-user consent by Segment's rules, as a table: (the source's categories, the message's
`context.consent`) -> whether the message may reach HubSpot."""

from __future__ import annotations

from typing import Any

import pytest

from hubspot_relay.errors import ConfigError
from hubspot_relay.translate.consent import allowed, parse_categories

NO_CONSENT = object()


def message(consent: Any) -> dict[str, Any]:
    if consent is NO_CONSENT:
        return {"type": "track", "event": "x", "context": {"ip": "1.2.3.4"}}
    return {"type": "track", "event": "x", "context": {"consent": consent}}


@pytest.mark.parametrize(
    ("categories", "consent", "expected"),
    [
        ((), {"categoryPreferences": {"Marketing": False}}, True),  # HubSpot mapped to none
        (("Marketing",), NO_CONSENT, True),  # no consent object: flows as before
        (("Marketing",), {}, True),  # a consent object without preferences: as before
        (("Marketing",), {"categoryPreferences": {}}, False),  # empty: every category refused
        (("Marketing",), {"categoryPreferences": {"Marketing": True}}, True),
        (("Marketing",), {"categoryPreferences": {"Marketing": False}}, False),
        (("Marketing",), {"categoryPreferences": {"Marketing": "true"}}, False),  # only true is true
        (("Marketing",), {"categoryPreferences": {"Analytics": True}}, False),
        (("Marketing", "Analytics"), {"categoryPreferences": {"Marketing": True, "Analytics": True}}, True),
        (("Marketing", "Analytics"), {"categoryPreferences": {"Marketing": True, "Analytics": False}}, False),
        (("Marketing",), {"categoryPreferences": ["Marketing"]}, False),  # not Segment's shape
    ],
)
def test_consent(categories: tuple[str, ...], consent: Any, expected: bool) -> None:
    assert allowed(message(consent), categories) is expected


def test_a_message_whose_context_is_not_an_object_flows() -> None:
    assert allowed({"type": "track", "context": "x"}, ("Marketing",))


@pytest.mark.parametrize(("value", "expected"), [(None, ()), (["Marketing", " Ads "], ("Marketing", "Ads"))])
def test_categories_as_configured(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_categories(value, "k") == expected


@pytest.mark.parametrize("value", ["Marketing", [""], [1]])
def test_categories_that_are_not_a_list_of_names_are_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="consent category names"):
        parse_categories(value, "sources[0].consent_categories")
