"""The event tester's dry run: the requests a message would become, through delivery's own code,
with nothing written to HubSpot, the queue or the identity map; any input gets an answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_relay.config import Source
from hubspot_relay.hubspot.endpoints import ENDPOINTS
from hubspot_relay.options import Subscriptions
from hubspot_relay.preview import PASSED_THROUGH, READS, WRITES, PreviewError, _answer, preview
from hubspot_relay.secrets import Secret
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio


def config_for(h: Harness, enabled: bool = True) -> Any:
    account = h.delivery.account
    return SimpleNamespace(
        sources=[Source("web", Secret("wk"), account.name, enabled)], account=lambda name: account
    )


async def dry(h: Harness, message: dict[str, Any], enabled: bool = True) -> Any:
    return await preview(
        config_for(h, enabled), "web", orjson.dumps(message), delivery=h.delivery, identity=h.identity
    )


def writes(h: Harness) -> list[str]:
    """What the sandbox was asked that is not a read."""
    return [
        label
        for label in h.calls()
        if not label.startswith("GET") and not label.endswith(("/search", "/batch/read"))
    ]


@pytest.mark.parametrize(
    ("message", "outcome", "paths"),
    [
        (
            {"type": "identify", "userId": "u1", "traits": {"email": "A@x.com", "firstName": "Ann"}},
            "delivered",
            ["/crm/objects/2026-09/contacts/batch/upsert"],
        ),
        (
            {"type": "track", "userId": "u", "event": "Bought", "properties": {"email": "b@x.com", "n": 2}},
            "delivered",
            ["/events/2026-09/event-definitions", "/events/2026-09/send/batch"],
        ),
        (
            {
                "type": "group",
                "userId": "u",
                "groupId": "g1",
                "traits": {"name": "Acme", "website": "acme.com"},
            },
            "delivered",
            ["/crm/objects/2026-09/companies/batch/create"],  # after a search by domain (a read) found none
        ),
        ({"type": "identify", "anonymousId": "a", "traits": {"firstName": "N"}}, "waiting", []),
        ({"type": "page", "anonymousId": "a", "_metadata": {"bundled": ["HubSpot"]}}, "skipped", []),
        ({"type": "track", "userId": "nobody", "event": "E"}, "retrying", []),
    ],
)
async def test_the_requests_a_message_would_become(
    h: Harness, message: dict[str, Any], outcome: str, paths: list[str]
) -> None:
    result = await dry(h, message)
    assert result.outcome == outcome
    assert [r["path"] for r in result.requests] == paths
    assert writes(h) == []  # the sandbox got reads at most
    assert (await h.queue.counts()) == {}


async def test_the_upsert_is_the_one_delivery_would_send(h: Harness) -> None:
    message = {"type": "identify", "userId": "u1", "traits": {"email": "a@x.com", "Favorite Color": "red"}}
    (request,) = (await dry(h, message)).requests
    assert (
        request["method"] == "POST"
        and request["url"] == "http://sandbox/crm/objects/2026-09/contacts/batch/upsert"
    )
    assert request["body"] == {
        "inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {"favorite_color": "red"}}]
    }
    await h.send(message)
    await h.drain()
    assert (await h.contact("a@x.com", "favorite_color")) == {"favorite_color": "red"}


async def test_the_identity_map_is_read_and_never_written(h: Harness) -> None:
    await h.send({"type": "identify", "userId": "u9", "traits": {"email": "u9@x.com"}})
    await h.drain()
    result = await dry(h, {"type": "track", "userId": "u9", "event": "Clicked"})
    assert result.requests[-1]["body"]["inputs"][0]["email"] == "u9@x.com"
    await dry(h, {"type": "alias", "userId": "u10", "previousId": "u9"})
    assert h.identity.email_for("web", ["u10"]) is None


async def test_a_disabled_source_is_skipped(h: Harness) -> None:
    result = await dry(h, {"type": "identify", "userId": "u", "traits": {"email": "a@x.com"}}, enabled=False)
    assert (result.outcome, result.requests) == ("skipped", [])


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"type": "track", "userId": "u"}, "track requires 'event'"),
        ({"type": "nope", "userId": "u"}, "type"),
        ({"type": "identify"}, "requires 'userId' or 'anonymousId'"),
    ],
)
async def test_a_message_ingest_would_refuse_is_refused_alike(
    h: Harness, raw: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PreviewError, match=reason):
        await dry(h, raw)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_messages = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["identify", "track", "page", "screen", "group", "alias", "x"]),
        "userId": st.one_of(st.none(), st.text(max_size=8), st.integers(-(2**63), 2**63 - 1)),
    },
    optional={
        "anonymousId": st.text(max_size=8),
        "event": _json,
        "traits": _json,
        "properties": _json,
        "context": _json,
        "groupId": _json,
        "previousId": _json,
        "timestamp": st.one_of(st.text(max_size=30), st.just("2026-11-29T10:00:00Z")),
        "integrations": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=_messages)
async def test_any_message_gets_requests_or_a_reason_never_a_crash(
    h: Harness, message: dict[str, Any]
) -> None:
    try:
        result = await dry(h, message)
    except PreviewError as e:
        assert str(e)
        return
    assert result.outcome in ("delivered", "skipped", "waiting", "retrying", "dead", "held")
    assert all(r["method"] in ("POST", "PATCH", "PUT", "GET") for r in result.requests)
    assert writes(h) == []


# ---- every operation the relay can make has an answer --------------------------------------


def test_every_operation_of_the_endpoint_table_has_a_preview_answer() -> None:
    """A read goes to HubSpot, a token is fetched as it is, a write is answered as HubSpot
    would: a new row in hubspot/endpoints.py without one fails here, not in a user's preview."""
    table = {row.operation for row in ENDPOINTS}
    answered = READS | PASSED_THROUGH | set(WRITES)
    assert table - answered == set(), "operations preview cannot answer"
    assert answered - table == set(), "preview answers operations the table does not have"
    assert not READS & set(WRITES) and not PASSED_THROUGH & (READS | set(WRITES))
    bodies: dict[str, Any] = {
        "lists.add_and_remove": {"recordIdsToAdd": ["1"], "recordIdsToRemove": []},
        "lists.create": {"name": "vip", "objectTypeId": "0-1", "processingType": "MANUAL"},
        "event_definitions.create": {"name": "bought", "propertyDefinitions": [{"name": "n"}]},
    }
    for operation in sorted(WRITES):
        body = bodies.get(operation, {"inputs": [{"id": "a@x.com", "idProperty": "email"}]})
        answer = _answer(operation, body, "997086", [0])
        assert 200 <= answer.status_code < 300, operation
    assert _answer("no.such_call", {}, "997086", [0]).status_code == 501


SUBS = Subscriptions(unsubscribe_events=["Unsubscribed"], trait="newsletter", subscription_id=1)
AUDIENCE = {"computation_class": "audience", "computation_key": "vip_users", "computation_id": "a1"}
EVERY_CALL = [
    {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@x.com", "firstName": "Ann", "newsletter": True},
    },
    {
        "type": "identify",
        "userId": "u2",
        "traits": {"email": "b@x.com", "vip_users": True},
        "context": {"personas": AUDIENCE},
    },
    {"type": "track", "userId": "u1", "event": "Bought", "properties": {"email": "a@x.com", "revenue": 9}},
    {"type": "track", "userId": "u1", "event": "Unsubscribed", "properties": {"email": "a@x.com"}},
    {
        "type": "group",
        "userId": "u1",
        "groupId": "g1",
        "traits": {"name": "Acme", "website": "acme.com", "email": "a@x.com"},
    },
    {"type": "page", "userId": "u1", "name": "Home", "properties": {"email": "a@x.com"}},
    {"type": "screen", "userId": "u1", "name": "Cart", "properties": {"email": "a@x.com"}},
    {"type": "alias", "userId": "u3", "previousId": "u1"},
]


@pytest.mark.parametrize("version", ["v3", "2026-03", "2026-09", "legacy"])
@pytest.mark.parametrize("running", [True, False], ids=["relay running", "no relay"])
async def test_every_call_previews_on_every_version(tmp_path: Path, version: str, running: bool) -> None:
    """Every kind of call, on every API version and legacy, with and without a running relay
    (then its reads go to HubSpot directly): an answer for each, never a crash. A legacy preview
    with no relay and an identify with an audience both crashed before."""
    legacy = version == "legacy"
    h = await make(tmp_path, legacy=legacy, api_version=None if legacy else version, subscriptions=SUBS)
    try:
        h.delivery.account = account = replace(h.delivery.account, delivery=h.delivery.options)
        config = SimpleNamespace(
            sources=[Source("web", Secret("wk"), account.name, True)], account=lambda _: account
        )
        for message in EVERY_CALL:
            result = await preview(
                config,  # type: ignore[arg-type]
                "web",
                orjson.dumps(message),
                delivery=h.delivery if running else None,
                identity=h.identity if running else None,
                read_transport=None if running else h.transport,
            )
            assert result.outcome in ("delivered", "skipped", "waiting", "retrying"), (message, result)
            assert result.read_errors == [], result.read_errors
            assert all(r.get("path") for r in result.requests)
            if message["type"] == "identify" and not legacy:
                paths = " ".join(r["path"] for r in result.requests)
                assert "contacts/batch/upsert" in paths
                if "personas" in message.get("context", {}):
                    assert "/memberships/add-and-remove" in paths, paths
        assert writes(h) == []
    finally:
        await h.queue.close()
        h.identity.close()
