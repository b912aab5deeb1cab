"""One upsert per user when contacts are keyed by userId (`by_user`), as a table."""

from __future__ import annotations

import pytest

from hubspot_relay.delivery.stages.contacts import ContactUpsert, by_user
from hubspot_relay.options import parse_options


def pending(email: str, props: dict[str, str], ids: list[int], user: str | None) -> ContactUpsert:
    return ContactUpsert(email, dict(props), list(ids), user)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # (email, properties, message ids) after merging, in the order the calls go
        ([pending("a@x.com", {"n": "1"}, [1], "u1")], [("a@x.com", {"n": "1"}, [1])]),
        (
            [pending("a@x.com", {"n": "1"}, [1], "u1"), pending("b@x.com", {"m": "2"}, [2], "u1")],
            [("b@x.com", {"n": "1", "m": "2"}, [1, 2])],
        ),
        (  # the latest message decides the email and the values, whatever was seen first
            [
                pending("a@x.com", {"n": "3"}, [1, 3], "u1"),
                pending("c@x.com", {}, [2], None),
                pending("b@x.com", {"n": "2"}, [2], "u1"),
            ],
            [("a@x.com", {"n": "3"}, [2, 1, 3]), ("c@x.com", {}, [2])],
        ),
        (  # different users, and messages without a userId, are left as they are
            [
                pending("a@x.com", {}, [1], "u1"),
                pending("b@x.com", {}, [2], "u2"),
                pending("c@x.com", {}, [3], None),
            ],
            [("a@x.com", {}, [1]), ("b@x.com", {}, [2]), ("c@x.com", {}, [3])],
        ),
    ],
)
def test_by_user(items: list[ContactUpsert], expected: list[tuple[str, dict[str, str], list[int]]]) -> None:
    assert [(p.key, p.properties, p.ids) for p in by_user(items)] == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("Segment User", "a HubSpot property name"),
        ("email", "a property of its own"),
        ("1abc", "property name"),
    ],
)
def test_user_id_property_is_checked(value: str, error: str) -> None:
    from hubspot_relay.errors import ConfigError

    with pytest.raises(ConfigError, match=error):
        parse_options({"user_id_property": value}, "accounts[0].options")
    assert parse_options({"user_id_property": "segment_user_id"}, "k").user_id_property == "segment_user_id"
