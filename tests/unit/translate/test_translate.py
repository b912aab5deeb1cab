"""translate(): one Segment message in, HubSpot operations out, for every rule of the seed and issue 4."""

from __future__ import annotations

from typing import Any

import pytest

from hubspot_relay.options import DeliveryOptions, Subscriptions
from hubspot_relay.translate import (
    CompanyUpdate,
    ContactRef,
    ContactUpdate,
    Event,
    Link,
    Membership,
    Skip,
    event_uuid,
    translate,
)
from hubspot_relay.translate.operations import Subscription

OPTS = DeliveryOptions()
TS = "2026-11-28T12:00:00.000Z"


def msg(mtype: str, **fields: Any) -> dict[str, Any]:
    return {"type": mtype, "messageId": "m-1", "timestamp": TS, **fields}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # the seed: email from traits.email; firstName/lastName converted; other keys lowercased, spaces to _
        (
            msg(
                "identify",
                userId="u1",
                traits={
                    "email": "peter@initech.com",
                    "firstName": "Peter",
                    "lastName": "Gibbons",
                    "Favorite Color": "red",
                    "Plan": "pro",
                },
            ),
            [
                Link(("u1",), "peter@initech.com"),
                ContactUpdate(
                    ContactRef("peter@initech.com", ("u1",), "u1"),
                    {
                        "email": "peter@initech.com",
                        "firstname": "Peter",
                        "lastname": "Gibbons",
                        "favorite_color": "red",
                        "plan": "pro",
                    },
                ),
            ],
        ),
        # the seed: an email userId is the email
        (
            msg("identify", userId="peter@initech.com", traits={"first_name": "Peter", "last_name": "G"}),
            [
                Link(("peter@initech.com",), "peter@initech.com"),
                ContactUpdate(
                    ContactRef("peter@initech.com", ("peter@initech.com",), "peter@initech.com"),
                    {"firstname": "Peter", "lastname": "G", "email": "peter@initech.com"},
                ),
            ],
        ),
        # no email: nothing for HubSpot yet, but the traits and ids are remembered (a null clears)
        (
            msg("identify", userId="u2", anonymousId="a2", traits={"firstName": "Ann", "age": None}),
            [
                Link(("u2", "a2"), None),
                ContactUpdate(ContactRef(None, ("u2", "a2"), "u2"), {"firstname": "Ann", "age": ""}),
            ],
        ),
        # issue 4: address lifted, company.name, position, createdAt
        (
            msg(
                "identify",
                userId="u3",
                traits={
                    "email": "a@b.com",
                    "address": {
                        "street": "1 Main St",
                        "city": "Austin",
                        "state": "TX",
                        "postalCode": "78701",
                        "country": "US",
                    },
                    "company": {"name": "Initech", "plan": "x"},
                    "position": "Engineer",
                    "createdAt": "2026-01-01T00:00:00Z",
                    "tags": ["a", "b"],
                },
            ),
            [
                Link(("u3",), "a@b.com"),
                ContactUpdate(
                    ContactRef("a@b.com", ("u3",), "u3"),
                    {
                        "email": "a@b.com",
                        "address": "1 Main St",
                        "city": "Austin",
                        "state": "TX",
                        "zip": "78701",
                        "country": "US",
                        "company": "Initech",
                        "jobtitle": "Engineer",
                        "createdate": "2026-01-01T00:00:00Z",
                        "tags": ["a", "b"],
                    },
                ),
            ],
        ),
        (
            msg("identify", userId="u4", traits={"email": "not an email", "company": "Initech"}),
            [
                Link(("u4",), None),
                ContactUpdate(
                    ContactRef(None, ("u4",), "u4"), {"email": "not an email", "company": "Initech"}
                ),
            ],
        ),
    ],
)
def test_identify(message: dict[str, Any], expected: list[Any]) -> None:
    assert translate(message, OPTS) == expected


def test_track_the_seeds_examples() -> None:
    # analytics.track(user_id='YOUR_USER_ID', event='Bought Item', properties={'email': 'peter@initech.com'})
    plain = msg(
        "track", userId="YOUR_USER_ID", event="Bought Item", properties={"email": "peter@initech.com"}
    )
    ref = ContactRef("peter@initech.com", ("YOUR_USER_ID",), "YOUR_USER_ID")
    assert translate(plain, OPTS) == [
        Link(("YOUR_USER_ID",), "peter@initech.com"),
        Event(ref, "bought_item", TS, event_uuid("m-1"), {}, "Bought Item"),
    ]
    # ... context={'traits': {'firstname': 'Peter', 'lastname': 'Gibbons'}}: contact properties too
    with_traits = {**plain, "context": {"traits": {"firstname": "Peter", "lastname": "Gibbons"}}}
    assert translate(with_traits, OPTS)[1] == ContactUpdate(
        ref, {"firstname": "Peter", "lastname": "Gibbons"}
    )


@pytest.mark.parametrize(
    ("message", "name", "props", "email"),
    [
        (
            msg(
                "track",
                userId="u",
                event="Order Completed",
                properties={
                    "revenue": 42.5,
                    "order_id": "O-1",
                    "products": [{"sku": "a"}],
                    "coupon": None,
                    "shipping": {"method": "Express", "cost": 5},
                    "Gift Wrap": True,
                    "email": "x@y.com",
                },
            ),
            "order_completed",
            {
                "revenue": "42.5",
                "order_id": "O-1",
                "products": '[{"sku":"a"}]',
                "shipping_method": "Express",
                "shipping_cost": "5",
                "gift_wrap": "true",
            },
            "x@y.com",
        ),
        (
            msg(
                "track",
                userId="u",
                event="checkout.started v2",
                properties={"1st": "x" * 300},
                context={"traits": {"email": "c@t.com"}},
            ),
            "checkout_started_v2",
            {"p_1st": "x" * 256},
            "c@t.com",
        ),
        (msg("track", userId="peter@initech.com", event="Signed Up"), "signed_up", {}, "peter@initech.com"),
        (msg("track", anonymousId="a", event="Signed Up"), "signed_up", {}, None),
    ],
)
def test_track_events(message: dict[str, Any], name: str, props: dict[str, str], email: str | None) -> None:
    event = next(op for op in translate(message, OPTS) if isinstance(op, Event))
    assert (event.name, event.properties, event.ref.email) == (name, props, email)
    assert event.occurred_at == TS and event.uuid == event_uuid("m-1")


def test_event_names_map_to_existing_hubspot_events() -> None:
    opts = DeliveryOptions(event_names={"Bought Item": "pe997086_purchase"})
    event = translate(msg("track", userId="u", event="Bought Item"), opts)[-1]
    assert isinstance(event, Event) and event.name == "pe997086_purchase"


def test_at_most_50_event_properties() -> None:
    props = {f"k{i:03d}": i for i in range(80)}
    event = translate(msg("track", userId="u", event="E", properties=props), OPTS)[-1]
    assert isinstance(event, Event) and len(event.properties) == 50


def test_page_and_screen_from_cloud_sources() -> None:
    page = msg(
        "page",
        userId="u",
        name="Pricing",
        properties={
            "path": "/pricing",
            "url": "https://x/pricing",
            "title": "Pricing",
            "referrer": "https://g/",
        },
    )
    event = translate(page, OPTS)[-1]
    assert isinstance(event, Event) and event.name == "viewed_page"
    assert event.properties == {
        "name": "Pricing",
        "path": "/pricing",
        "referrer": "https://g/",
        "title": "Pricing",
        "url": "https://x/pricing",
    }
    screen = translate(msg("screen", userId="u", name="Home", properties={"tab": 2}), OPTS)[-1]
    assert isinstance(screen, Event) and (screen.name, screen.properties) == (
        "viewed_screen",
        {"name": "Home", "tab": "2"},
    )
    off = DeliveryOptions(page_events=False, screen_events=False)
    assert translate(page, off) == [Skip("page events are switched off for this account")]


def test_group_and_alias() -> None:
    group = msg(
        "group",
        userId="peter@initech.com",
        groupId="g-1",
        traits={
            "name": "Initech",
            "website": "https://www.initech.com/about",
            "employees": 120,
            "industry": "Software",
        },
    )
    assert translate(group, OPTS) == [
        CompanyUpdate(
            "g-1",
            {
                "name": "Initech",
                "website": "https://www.initech.com/about",
                "numberofemployees": 120,
                "industry": "Software",
                "domain": "initech.com",
            },
            ContactRef("peter@initech.com", ("peter@initech.com",)),
            "initech.com",
        )
    ]
    assert translate(msg("alias", userId="u-9", previousId="anon-9"), OPTS) == [Link(("u-9", "anon-9"), None)]
    assert translate(msg("alias", userId="a@b.com", previousId="anon-9"), OPTS) == [
        Link(("a@b.com", "anon-9"), "a@b.com")
    ]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"integrations": {"HubSpot": False}}, "integrations.HubSpot is false"),
        ({"integrations": {"All": False}}, "integrations.All is false"),
        ({"_metadata": {"bundled": ["Segment.io", "HubSpot"]}}, "delivered by the browser"),
    ],
)
def test_skips(extra: dict[str, Any], reason: str) -> None:
    (op,) = translate(msg("track", userId="u", event="E", **extra), OPTS)
    assert isinstance(op, Skip) and reason in op.reason


def test_all_false_but_hubspot_true_is_delivered() -> None:
    ops = translate(msg("track", userId="u", event="E", integrations={"All": False, "HubSpot": True}), OPTS)
    assert isinstance(ops[-1], Event)


PERSONAS = {"computation_class": "audience", "computation_key": "trial_users"}


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (  # an identify's audience trait
            {"type": "identify", "userId": "u1", "traits": {"email": "a@x.com", "trial_users": True}},
            ("trial_users", True),
        ),
        ({"type": "identify", "userId": "u1", "traits": {"trial_users": False}}, ("trial_users", False)),
        ({"type": "identify", "userId": "u1", "traits": {"trial_users": "yes"}}, None),  # not a boolean
        (  # the tracks, audience_key in the properties
            {
                "type": "track",
                "userId": "u1",
                "event": "Audience Entered",
                "properties": {"audience_key": "vip"},
            },
            ("vip", True),
        ),
        (
            {"type": "track", "userId": "u1", "event": "Audience Exited", "properties": {}},
            ("trial_users", False),
        ),
        ({"type": "track", "userId": "u1", "event": "Signed Up", "properties": {}}, None),
    ],
)
def test_audience_memberships(msg: dict[str, Any], expected: tuple[str, bool] | None) -> None:
    ops = translate({**msg, "context": {"personas": PERSONAS}}, DeliveryOptions())
    joined = [(op.audience, op.member) for op in ops if isinstance(op, Membership)]
    assert joined == ([expected] if expected else [])
    if msg["type"] == "track" and expected:
        assert not [op for op in ops if isinstance(op, Event)]  # a membership, not a custom event


def test_without_personas_an_audience_trait_is_only_a_trait() -> None:
    msg = {"type": "identify", "userId": "u1", "traits": {"email": "a@x.com", "trial_users": True}}
    assert not [op for op in translate(msg, DeliveryOptions()) if isinstance(op, Membership)]
    journey = {**msg, "context": {"personas": {**PERSONAS, "computation_class": "journey_step"}}}
    assert not [op for op in translate(journey, DeliveryOptions()) if isinstance(op, Membership)]


SUBS = Subscriptions(
    unsubscribe_events=["Unsubscribed"], subscribe_events=["Opted In"], trait="news", subscription_id=7
)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ({"type": "track", "userId": "u", "event": "unsubscribed ", "properties": {}}, (False, 7)),
        (
            {"type": "track", "userId": "u", "event": "Opted In", "properties": {"subscription_id": "9"}},
            (True, 9),
        ),
        (
            {"type": "track", "userId": "u", "event": "Opted In", "properties": {"subscription_id": True}},
            (True, 7),
        ),
        ({"type": "identify", "userId": "u", "traits": {"email": "a@x.com", "news": False}}, (False, 7)),
        ({"type": "identify", "userId": "u", "traits": {"email": "a@x.com", "news": "no"}}, None),
        ({"type": "track", "userId": "u", "event": "Signed Up", "properties": {}}, None),
    ],
)
def test_subscription_changes(msg: dict[str, Any], expected: tuple[bool, int] | None) -> None:
    ops = translate(msg, DeliveryOptions(subscriptions=SUBS))
    changes = [(op.subscribed, op.subscription_id) for op in ops if isinstance(op, Subscription)]
    assert changes == ([expected] if expected else [])
    if expected and msg["type"] == "track":
        assert not [op for op in ops if isinstance(op, Event)]  # a subscription change, not an event


def test_a_list_orjson_cannot_write_still_becomes_text() -> None:
    """(Found by the fuzz test: an integer past 64 bits in a list.)"""
    msg = {"type": "track", "userId": "u", "event": "x", "properties": {"email": "a@x.com", "big": [2**70]}}
    (event,) = [op for op in translate(msg, DeliveryOptions()) if isinstance(op, Event)]
    assert event.properties["big"] == f"[{2**70}]"
