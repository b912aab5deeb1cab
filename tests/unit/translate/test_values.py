from __future__ import annotations

from typing import Any

import pytest

from hubspot_relay.translate import PropertyInfo, prepare
from hubspot_relay.translate.values import Uncoercible, coerce

S = PropertyInfo("s", "string")
N = PropertyInfo("n", "number")
D = PropertyInfo("d", "date")
DT = PropertyInfo("dt", "datetime")
B = PropertyInfo("b", "bool", "booleancheckbox")
E = PropertyInfo("e", "enumeration", "checkbox", options=frozenset({"a", "b"}))


@pytest.mark.parametrize(
    ("value", "prop", "expected"),
    [
        ("red", S, "red"),
        (True, S, "true"),
        (9.5, S, "9.5"),
        (3.0, S, "3"),
        (["a", "b", None], S, "a;b"),
        ({"x": 1}, S, '{"x":1}'),
        (42, N, "42"),
        (9.5, N, "9.5"),
        (" 12.5 ", N, "12.5"),
        (1e20, N, "1e+20"),
        ("2026-11-28", D, "1795824000000"),
        ("2026-11-28T15:30:00Z", D, "1795824000000"),  # the day, at midnight UTC
        (1795867200, D, "1795824000000"),  # epoch seconds
        (1795867200123, D, "1795824000000"),  # epoch milliseconds
        ("2026-11-28T12:00:00Z", DT, "1795867200000"),
        ("2026-11-28T13:00:00+01:00", DT, "1795867200000"),
        (1795867200, DT, "1795867200000"),
        (True, B, "true"),
        ("No", B, "false"),
        (["a", "b"], E, "a;b"),
        (False, E, "false"),
    ],
)
def test_coerce(value: Any, prop: PropertyInfo, expected: str) -> None:
    assert coerce(value, prop) == expected


@pytest.mark.parametrize(
    ("value", "prop"),
    [
        ("ten", N),
        (True, N),
        ("someday", D),
        ("2026-13-01", D),
        ({"a": 1}, DT),
        ("maybe", B),
        (float("nan"), N),
    ],
)
def test_uncoercible(value: Any, prop: PropertyInfo) -> None:
    with pytest.raises(Uncoercible):
        coerce(value, prop)


def test_prepare_drops_unknown_read_only_and_uncoercible_keys() -> None:
    catalog = {
        p.name: p
        for p in (
            PropertyInfo("firstname", "string"),
            PropertyInfo("score", "number"),
            PropertyInfo("hs_object_id", "number", read_only=True),
        )
    }
    clean, dropped = prepare(
        {"firstname": "Ann", "score": "high", "hs_object_id": 5, "internal_score": 7}, catalog
    )
    assert clean == {"firstname": "Ann"}
    assert dropped == {
        "score": "not a valid number: 'high' is not a number",
        "hs_object_id": "read-only in HubSpot",
        "internal_score": "not a property in this HubSpot account",
    }


def test_property_info_from_hubspot() -> None:
    info = PropertyInfo.from_hubspot(
        {
            "name": "plan",
            "type": "enumeration",
            "fieldType": "select",
            "options": [{"value": "pro"}],
            "modificationMetadata": {"readOnlyValue": False},
        }
    )
    assert info == PropertyInfo("plan", "enumeration", "select", False, frozenset({"pro"}))
    legacy = PropertyInfo.from_hubspot({"name": "x", "type": "string", "readOnlyValue": True})
    assert legacy.read_only
