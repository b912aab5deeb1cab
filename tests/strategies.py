"""Hypothesis strategies for what clients send: any Segment message, tricky text, any JSON value.
Shared by the fuzz tests (a helper module: tests import it, never each other)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from hubspot_relay.sandbox.catalog import Catalog

CONTACTS = Catalog.default().of("contacts")

TRICKY_TEXT = st.sampled_from(
    [
        "²",
        "1_000",
        "nan",
        "inf",
        "-0",
        "1e309",
        "9999-12-31",
        "0001-01-01",
        "2026-02-30",
        "  42 ",
        "true",
        "No",
        "",
        " ",
        "\u0000",
        "\ud7ff",
        "😀",
        "a;b",
        "2026-11-28T12:00:00+14:00",
        "99999999999999999999999",
    ]
)
text = st.one_of(st.text(max_size=20), TRICKY_TEXT)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
PROPERTY_KEYS = st.sampled_from(
    [
        *sorted(CONTACTS),
        "firstName",
        "First Name",
        "last_name",
        "Favorite Color",
        "revenue",
        "email",
        "company",
    ]
)
traits = st.dictionaries(st.one_of(PROPERTY_KEYS, text), st.one_of(scalars, json_values), max_size=8)
ids = st.one_of(text, st.integers(), st.emails(), st.sampled_from(["u1", "peter@initech.com"]))
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
    text,
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": draw(
            st.one_of(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]), json_values)
        )
    }
    for key, strategy in [
        ("userId", ids),
        ("anonymousId", ids),
        ("previousId", ids),
        ("groupId", ids),
        ("event", text),
        ("name", text),
        ("timestamp", timestamps),
        ("sentAt", timestamps),
        ("traits", st.one_of(traits, json_values)),
        ("properties", st.one_of(traits, json_values)),
        ("context", st.one_of(st.fixed_dictionaries({"traits": traits}), json_values)),
        ("_metadata", st.one_of(st.fixed_dictionaries({"bundled": st.lists(text)}), json_values)),
        ("messageId", st.one_of(st.uuids().map(str), json_values)),
    ]:
        if draw(st.booleans()):
            msg[key] = draw(strategy)
    return msg
