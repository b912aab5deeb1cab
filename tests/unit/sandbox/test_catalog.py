from __future__ import annotations

import pytest

from hubspot_relay.sandbox.catalog import (
    Catalog,
    custom_property,
    normalize,
    validate_properties,
    validate_value,
)

CONTACTS = Catalog.default().of("contacts")
DATE = custom_property({"name": "trial_ends", "type": "date"}, "contacts")
MULTI = custom_property(
    {"name": "tags", "type": "enumeration", "fieldType": "checkbox", "options": ["a", "b", "c"]}, "contacts"
)
BOOL = custom_property({"name": "beta", "type": "bool"}, "contacts")


@pytest.mark.parametrize(
    ("prop", "value", "error", "message"),
    [
        (CONTACTS["email"], "peter@initech.com", None, None),
        (CONTACTS["email"], "peter at initech", "INVALID_EMAIL", "Email address peter at initech is invalid"),
        (CONTACTS["firstname"], "Peter", None, None),
        (CONTACTS["hs_analytics_num_page_views"], "12", None, None),
        (CONTACTS["lifecyclestage"], "lead", None, None),
        (CONTACTS["lifecyclestage"], "Lead", "INVALID_OPTION", "Lead was not one of the allowed options"),
        (CONTACTS["createdate"], "1700000000123", None, None),  # datetime: any millisecond
        (CONTACTS["createdate"], "2026-11-28T12:30:00Z", None, None),
        (CONTACTS["createdate"], "yesterday", "INVALID_DATETIME", "yesterday was not a valid datetime"),
        (DATE, "1795824000000", None, None),  # 2026-11-28T00:00:00Z
        (DATE, "2026-11-28", None, None),
        (DATE, "1500000000123", "INVALID_DATE", "1500000000123 is at 2:40:0.123 UTC, not midnight!"),
        (DATE, "2026-11-28T10:00:00Z", "INVALID_DATE", "is at 10:0:0.0 UTC, not midnight!"),
        (MULTI, "a;c", None, None),
        (MULTI, "a;z", "INVALID_OPTION", "z was not one of the allowed options: [a, b, c]"),
        (BOOL, "true", None, None),
        (BOOL, "FALSE", None, None),
        (BOOL, "yes", "INVALID_OPTION", "yes was not one of the allowed options: [true, false]"),
        (custom_property({"name": "score", "type": "number"}, "contacts"), "9.5", None, None),
        (
            custom_property({"name": "score", "type": "number"}, "contacts"),
            "nine",
            "INVALID_LONG",
            "nine was not a valid long.",
        ),
        (CONTACTS["firstname"], "", None, None),  # an empty value clears
    ],
)
def test_validate_value(prop, value, error, message) -> None:  # type: ignore[no-untyped-def]
    failure = validate_value(prop, value)
    if error is None:
        assert failure is None
    else:
        assert failure is not None and failure["error"] == error and failure["name"] == prop.name
        assert message in failure["message"]


def test_validate_properties_reports_every_failure() -> None:
    clean, failures = validate_properties(
        CONTACTS,
        {
            "firstname": "Peter",
            "shoe_size": "9",
            "hs_object_id": "5",
            "email": "nope",
            "createdate": "2026-11-28",
        },
    )
    assert clean == {"firstname": "Peter", "createdate": "1795824000000"}
    assert [(f["name"], f["error"]) for f in failures] == [
        ("shoe_size", "PROPERTY_DOESNT_EXIST"),
        ("hs_object_id", "READ_ONLY_VALUE"),
        ("email", "INVALID_EMAIL"),
    ]
    assert failures[0]["message"] == 'Property "shoe_size" does not exist'
    assert failures[1]["message"] == '"hs_object_id" is a read only property; its value cannot be set.'


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"name": "Bad Name", "type": "string"}, "Property name 'Bad Name' is invalid"),
        ({"name": "ok", "type": "money"}, "Property type 'money' is invalid"),
        ({"name": "ok", "type": "enumeration"}, "an enumeration needs options"),
    ],
)
def test_custom_property_errors(spec: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        custom_property(spec, "contacts")


def test_types_are_hubspots() -> None:
    assert {p.type for p in CONTACTS.values()} == {"string", "number", "enumeration", "datetime", "bool"}
    assert CONTACTS["email"].unique and CONTACTS["hs_object_id"].read_only_value
    assert normalize(CONTACTS["createdate"], "1970-01-02T00:00:00Z") == "86400000"
    listed = CONTACTS["lifecyclestage"].as_json()
    assert listed["modificationMetadata"] == {
        "archivable": False,
        "readOnlyDefinition": True,
        "readOnlyValue": False,
    }
    assert [o["value"] for o in listed["options"]][:2] == ["subscriber", "lead"]
