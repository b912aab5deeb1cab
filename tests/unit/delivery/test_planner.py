"""Planning as tables, with no store at all: a leased batch and what the identity map knew of its
ids (a snapshot, a dict) -> the calls (`Plan`), what becomes of the messages that make none, and
the ties and kept traits for delivery to write."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from hubspot_relay.delivery.identities import Keep, Known, Tie
from hubspot_relay.delivery.planner import Plan, Planner
from hubspot_relay.delivery.stages.companies import COMPANIES
from hubspot_relay.delivery.stages.company_members import COMPANY_MEMBERS
from hubspot_relay.delivery.stages.contacts import CONTACTS
from hubspot_relay.delivery.stages.events import EVENTS, LEGACY_EVENTS
from hubspot_relay.options import DeliveryOptions
from hubspot_relay.queue.protocol import Leased

NOW = time.time()
OLD = 60.0  # seconds: older than any wait for a fuller call


def batch(*messages: dict[str, Any], age: float = OLD, source: str = "web") -> list[Leased]:
    out = []
    for i, m in enumerate(messages, start=1):
        body = {"messageId": f"m{i}", "timestamp": "2026-11-28T12:00:00Z", **m}
        out.append(Leased(i, source, f"m{i}", m["type"], orjson.dumps(body), NOW - age, None, 1))
    return out


def members(plan: Plan, group_id: str) -> list[str]:
    """The emails of the contacts a batch makes members of the group's company."""
    return [m.email for m in plan.of(COMPANY_MEMBERS).values() if m.group_id == group_id]


def summary(plan: Plan) -> dict[str, Any]:
    """What a plan comes to, in plain values."""
    v = plan.verdicts
    return {
        "upserts": {e: (p.properties, p.ids) for e, p in plan.of(CONTACTS).items()},
        "events": [(m.id, op.name, email) for m, op, email in plan.of(EVENTS)],
        "companies": {g: (c.properties, members(plan, g), c.ids) for g, c in plan.of(COMPANIES).items()},
        "retry": {i: reason for i, (_, reason) in v.retry.items()},
        "dead": dict(v.dead),
        "waiting": v.waiting,
        "skipped": v.skipped,
        "carried": v.carried,
    }


NOTHING: dict[str, Any] = {
    "upserts": {},
    "events": [],
    "companies": {},
    "retry": {},
    "dead": {},
    "waiting": set(),
    "skipped": set(),
    "carried": set(),
}
ANN = {"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com", "firstName": "Ann"}}
NO_EMAIL = "waiting for an identify or alias that gives this user's email"

CASES = [
    pytest.param([ANN], {}, {}, {"upserts": {"ann@x.com": ({"firstname": "Ann", "email": "ann@x.com"}, [1])}},
                 id="identify: one upsert"),
    pytest.param(
        [ANN, {"type": "identify", "userId": "u1", "traits": {"firstName": "Anne", "plan": "pro"}}],
        {}, {},
        {"upserts": {"ann@x.com": ({"firstname": "Anne", "email": "ann@x.com", "plan": "pro"}, [1, 2])}},
        id="two identifies of one contact: one upsert, the later value wins",
    ),
    pytest.param(
        [ANN, {"type": "track", "userId": "u1", "event": "Signed Up"}],
        {}, {},
        {"upserts": {"ann@x.com": ({"firstname": "Ann", "email": "ann@x.com"}, [1])},
         "events": [(2, "signed_up", "ann@x.com")]},
        id="an identify resolves the track after it in the batch",
    ),
    pytest.param(
        [{"type": "track", "userId": "u1", "event": "Signed Up"}], {("web", "u1"): "ann@x.com"}, {},
        {"events": [(1, "signed_up", "ann@x.com")]},
        id="a track of a known user: its event only",
    ),
    pytest.param(
        [{"type": "track", "userId": "u9", "event": "Signed Up"}], {}, {"age": 1.0},
        {"retry": {1: NO_EMAIL}},
        id="a track of an unknown user waits for an identify",
    ),
    pytest.param(
        [{"type": "track", "userId": "u9", "event": "Signed Up"}], {}, {"age": 7200.0},
        {"dead": {1: "no email is known for this user: send an identify with an email "
                     "(or properties.email) and replay"}},
        id="... and is dead once past unresolved_event_wait_s",
    ),
    pytest.param(
        [{"type": "identify", "userId": "u9", "traits": {"plan": "pro"}}], {}, {},
        {"waiting": {1}},
        id="traits with no email are kept for later",
    ),
    pytest.param(
        [{"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Initech"}}],
        {("web", "u1"): "ann@x.com"}, {},
        {"companies": {"g1": ({"name": "Initech"}, ["ann@x.com"], [1])},
         "upserts": {"ann@x.com": ({}, [1])}},
        id="group: the company, and its member made sure of",
    ),
    pytest.param(
        [{"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com"},
          "integrations": {"HubSpot": False}}], {}, {},
        {"skipped": {1}},
        id="HubSpot switched off for the message: skipped",
    ),
    pytest.param(
        [ANN, {"type": "identify", "userId": "u2", "traits": {"email": "bob@x.com"}}], {},
        {"held": frozenset({"ann@x.com"})},
        {"carried": {1}, "upserts": {"bob@x.com": ({"email": "bob@x.com"}, [2])}},
        id="a contact a batch in flight holds is handed back",
    ),
    pytest.param(
        [ANN], {}, {"source": "off"},
        {"skipped": {1}},
        id="a source with HubSpot off",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("messages", "ties", "how", "expected"), CASES)
def test_plan(
    messages: list[dict[str, Any]],
    ties: dict[tuple[str, str], str],
    how: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    planner = Planner("acct", DeliveryOptions(batch_wait_ms=0), clock=lambda: NOW, disabled=["off"])
    leased = batch(*messages, age=how.get("age", OLD), source=how.get("source", "web"))
    snapshot = {key: Known(email) for key, email in ties.items()}
    plan = planner.plan(leased, snapshot, how.get("held", frozenset()))
    assert summary(plan) == {**NOTHING, **expected}


def test_the_ties_and_kept_traits_are_returned_for_delivery_to_write() -> None:
    """Traits kept for an anonymous id, then an alias that gives its email in the same batch: the
    contact gets them now, and the plan says what to write to the map, in order."""
    leased = batch(
        {"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}},
        {"type": "alias", "userId": "ann@x.com", "previousId": "a1"},
    )
    plan = Planner("acct", DeliveryOptions(batch_wait_ms=0), clock=lambda: NOW).plan(leased, {})
    assert plan.identity == [
        Keep("web", ("a1",), {"plan": "pro"}, 1),
        Tie("web", ("ann@x.com", "a1"), "ann@x.com", 2),
    ]
    assert plan.of(CONTACTS)["ann@x.com"].properties == {"plan": "pro"}
    assert plan.verdicts.waiting == {1}


def test_traits_the_map_kept_are_taken_by_the_tie() -> None:
    leased = batch({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.com", "firstName": "Ann"}})
    snapshot = {("web", "u1"): Known(None, {"plan": "pro", "firstname": "Old"})}
    plan = Planner("acct", DeliveryOptions(batch_wait_ms=0), clock=lambda: NOW).plan(leased, snapshot)
    expected = {"plan": "pro", "firstname": "Ann", "email": "ann@x.com"}
    assert plan.of(CONTACTS)["ann@x.com"].properties == expected


def test_legacy_tracks_carry_their_contact_properties() -> None:
    leased = batch(
        {"type": "track", "userId": "u1", "event": "Bought", "context": {"traits": {"plan": "pro"}}}
    )
    planner = Planner("acct", DeliveryOptions(batch_wait_ms=0), legacy=True, clock=lambda: NOW)
    plan = planner.plan(leased, {("web", "u1"): Known("ann@x.com")})
    assert plan.of(LEGACY_EVENTS).traits == {1: {"plan": "pro"}}
    assert plan.of(CONTACTS) == {}
