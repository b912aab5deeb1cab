"""What other Segment-compatible clients send (issue 14): clearing values, traits only in
`context.traits`, `originalTimestamp` alone, forgiving event names, `_m` from `value`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hubspot_relay.options import DeliveryOptions
from hubspot_relay.segment.messages import stamped
from hubspot_relay.translate import ContactRef, ContactUpdate, Link, PropertyInfo, prepare, translate
from hubspot_relay.translate.segment import mapped_event
from hubspot_relay.translate.values import coerce

PROPS = {
    "s": PropertyInfo("s", "string"),
    "n": PropertyInfo("n", "number"),
    "d": PropertyInfo("d", "date"),
    "dt": PropertyInfo("dt", "datetime"),
    "b": PropertyInfo("b", "bool", "booleancheckbox"),
    "e": PropertyInfo("e", "enumeration", "select", options=frozenset({"x"})),
}


@pytest.mark.parametrize("name", sorted(PROPS))
@pytest.mark.parametrize("value", ["", None])
def test_an_empty_string_or_null_clears_every_type(name: str, value: Any) -> None:
    assert coerce(value, PROPS[name]) == ""
    assert prepare({name: value}, PROPS) == ({name: ""}, {})


@pytest.mark.parametrize(
    ("null_clears", "expected"),
    [
        (True, {"email": "a@b.com", "firstname": "", "test_date": ""}),
        (False, {"email": "a@b.com", "test_date": ""}),
    ],
)
def test_a_null_trait_clears_unless_switched_off(null_clears: bool, expected: dict[str, str]) -> None:
    msg = {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@b.com", "firstName": None, "test_date": ""},
    }
    ops = translate(msg, DeliveryOptions(null_clears=null_clears))
    assert ops[1] == ContactUpdate(ContactRef("a@b.com", ("u1",), "u1"), expected)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # traits only in context.traits (RudderStack's SDKs, some mobile and server libraries)
        (
            {
                "type": "identify",
                "userId": "u1",
                "context": {"traits": {"email": "c@x.com", "firstName": "Cy"}},
            },
            [
                Link(("u1",), "c@x.com"),
                ContactUpdate(ContactRef("c@x.com", ("u1",), "u1"), {"email": "c@x.com", "firstname": "Cy"}),
            ],
        ),
        # empty traits: the same
        (
            {"type": "identify", "userId": "u1", "traits": {}, "context": {"traits": {"email": "c@x.com"}}},
            [
                Link(("u1",), "c@x.com"),
                ContactUpdate(ContactRef("c@x.com", ("u1",), "u1"), {"email": "c@x.com"}),
            ],
        ),
        # traits present: context.traits is not mixed in
        (
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"firstName": "A"},
                "context": {"traits": {"email": "c@x.com"}},
            },
            [Link(("u1",), None), ContactUpdate(ContactRef(None, ("u1",), "u1"), {"firstname": "A"})],
        ),
    ],
)
def test_identify_traits_from_context(message: dict[str, Any], expected: list[Any]) -> None:
    assert translate(message, DeliveryOptions()) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # originalTimestamp alone, corrected with sentAt: received 12:00:10, sent 12:00:05 -> 5 s earlier
        (
            {"originalTimestamp": "2026-11-29T11:00:00.000Z", "sentAt": "2026-11-29T12:00:05.000Z"},
            "2026-11-29T11:00:05.000Z",
        ),
        ({"originalTimestamp": "2026-11-29T11:00:00.000Z"}, "2026-11-29T11:00:00.000Z"),
        # timestamp wins when both are there
        (
            {"timestamp": "2026-11-29T10:00:00.000Z", "originalTimestamp": "2026-11-29T11:00:00.000Z"},
            "2026-11-29T10:00:00.000Z",
        ),
        ({}, "2026-11-29T12:00:10.000Z"),  # neither: the arrival
    ],
)
def test_original_timestamp_without_timestamp(fields: dict[str, str], expected: str) -> None:
    from datetime import UTC, datetime

    received = datetime(2026, 11, 29, 12, 0, 10, tzinfo=UTC).timestamp()
    body = orjson.dumps({"type": "track", "userId": "u", "event": "E", **fields})
    assert stamped(body, received)["timestamp"] == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("Purchase", "pe1_purchase"),
        ("purchase", "pe1_purchase"),
        ("PURCHASE", "pe1_purchase"),
        ("Purchase ", "pe1_purchase"),
        ("  purchase\t", "pe1_purchase"),
        ("Purchased", None),
    ],
)
def test_event_names_match_whatever_the_case_and_spaces(event: str, expected: str | None) -> None:
    assert mapped_event({"Purchase": "pe1_purchase"}, event) == expected


def test_an_exact_name_is_matched_first() -> None:
    names = {"purchase": "pe1_lower", "Purchase": "pe1_title"}
    assert mapped_event(names, "Purchase") == "pe1_title" and mapped_event(names, "purchase") == "pe1_lower"


def test_a_null_company_trait_clears_too() -> None:
    msg = {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme", "industry": None}}
    (update,) = translate(msg, DeliveryOptions())
    assert update.properties == {"name": "Acme", "industry": ""}  # type: ignore[union-attr]
    (kept,) = translate(msg, DeliveryOptions(null_clears=False))
    assert kept.properties == {"name": "Acme"}  # type: ignore[union-attr]
