"""`hubspot-relay send`: the message it builds, as a table (where the email goes for each type)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from hubspot_relay.cli.send import MessageType, _pairs, build_message


def built(mtype: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user_id": None,
        "anonymous_id": None,
        "email": None,
        "event": None,
        "name": None,
        "group_id": None,
        "previous_id": None,
        "traits": {},
        "properties": {},
        **kw,
    }
    msg = build_message(MessageType(mtype), **args)
    return {k: v for k, v in msg.items() if k not in ("messageId", "timestamp")}


@pytest.mark.parametrize(
    ("mtype", "kw", "expected"),
    [
        ("identify", {"email": "a@x.com"}, {"userId": "a@x.com", "traits": {"email": "a@x.com"}}),
        ("track", {"user_id": "u1", "event": "Bought", "email": "a@x.com"},
         {"userId": "u1", "event": "Bought", "properties": {"email": "a@x.com"}}),
        ("page", {"user_id": "u1", "name": "Home"}, {"userId": "u1", "name": "Home", "properties": {}}),
        ("group", {"user_id": "u1", "group_id": "g1", "traits": {"name": "Initech"}},
         {"userId": "u1", "groupId": "g1", "traits": {"name": "Initech"}}),
        ("alias", {"user_id": "u2", "previous_id": "u1"}, {"userId": "u2", "previousId": "u1"}),
    ],
)  # fmt: skip
def test_the_message(mtype: str, kw: dict[str, Any], expected: dict[str, Any]) -> None:
    msg = built(mtype, **kw)
    assert msg["type"] == mtype
    assert {k: msg[k] for k in expected} == expected
    assert msg["context"]["library"]["name"] == "hubspot-relay-cli"


@pytest.mark.parametrize(
    ("mtype", "kw", "needs"),
    [("track", {"user_id": "u1"}, "--event"), ("group", {"user_id": "u1"}, "--group-id"),
     ("alias", {"user_id": "u1"}, "--previous-id")],
)  # fmt: skip
def test_an_incomplete_message_is_refused(mtype: str, kw: dict[str, Any], needs: str) -> None:
    with pytest.raises(typer.BadParameter, match=needs):
        built(mtype, **kw)


def test_anonymous_without_a_user() -> None:
    assert built("page")["anonymousId"].startswith("cli-")


@pytest.mark.parametrize(
    ("items", "expected"),
    [(["a=1", "b=true", "c=x", 'd=["p"]'], {"a": 1, "b": True, "c": "x", "d": ["p"]}), (["e="], {"e": ""})],
)
def test_pairs(items: list[str], expected: dict[str, Any]) -> None:
    assert _pairs(items, "--trait") == expected


def test_a_pair_needs_an_equals_sign() -> None:
    with pytest.raises(typer.BadParameter, match="key=value"):
        _pairs(["plan"], "--trait")
