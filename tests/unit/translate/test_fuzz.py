"""Translation never fails on what clients send: arbitrary JSON in every field the audience,
consent and subscription rules read (personas, consent preferences, traits, properties), for
every message type. Whatever comes in, the answer is a list of operations (or a Skip)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_relay.options import DeliveryOptions, Subscriptions
from hubspot_relay.translate import translate
from hubspot_relay.translate.consent import allowed

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(["trial_users", "news", "email", "subscription_id", "audience_key", "Marketing"])
OBJECT = st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=5)
PERSONAS = st.fixed_dictionaries(
    {
        "computation_class": st.sampled_from(["audience", "journey_step", 3, None]),
        "computation_key": KEYS | JSON,
    }
)
CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "personas": PERSONAS | JSON,
        "consent": st.fixed_dictionaries({}, optional={"categoryPreferences": OBJECT | JSON}) | JSON,
        "traits": OBJECT | JSON,
    },
)
MESSAGE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]),
        "messageId": st.text(min_size=1, max_size=12),
        "context": CONTEXT,
    },
    optional={
        "userId": st.text(max_size=12) | JSON,
        "anonymousId": st.text(max_size=12),
        "groupId": st.text(max_size=8),
        "event": st.sampled_from(["Audience Entered", "Audience Exited", "Unsubscribed", "Subscribed"])
        | JSON,
        "traits": OBJECT,
        "properties": OBJECT,
    },
)
OPTIONS = DeliveryOptions(
    subscriptions=Subscriptions(
        unsubscribe_events=["Unsubscribed"], subscribe_events=["Subscribed"], trait="news", subscription_id=1
    )
)


@settings(max_examples=400, deadline=None)
@given(MESSAGE)
def test_translate_answers_any_message(msg: dict[str, Any]) -> None:
    ops = translate(msg, OPTIONS)
    assert isinstance(ops, list) and ops


@settings(max_examples=300, deadline=None)
@given(CONTEXT, st.lists(st.text(min_size=1, max_size=10), max_size=3))
def test_consent_answers_any_context(context: dict[str, Any], categories: list[str]) -> None:
    assert allowed({"type": "track", "context": context}, categories) in (True, False)
