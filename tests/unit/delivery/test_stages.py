"""The stage table: every operation translation makes has one stage per mode (or a reason it is
not delivered in that mode), the table runs in dependency order, and each row is complete."""

from __future__ import annotations

from typing import Any

import pytest

from hubspot_relay.delivery.plan import Plan
from hubspot_relay.delivery.stages import STAGES, not_here, stages_for
from hubspot_relay.delivery.stages.objects import Mapped
from hubspot_relay.delivery.stages.stage import Stage, ordered
from hubspot_relay.translate import CompanyUpdate, ContactUpdate, Event, Membership
from hubspot_relay.translate.operations import ContactRef, Subscription

REF = ContactRef(email="ann@x.com", ids=("u1",))
OPS: dict[str, Any] = {
    "identify": ContactUpdate(REF, {"plan": "pro"}),
    "track": Event(REF, "signed_up", "2026-12-08T00:00:00Z", "u-1"),
    "group": CompanyUpdate("g1", {"name": "Acme"}, REF),
    "audience": Membership(REF, "trial", True),
    "account audience": Membership(REF, "trial accounts", True, group_id="g1"),
    "subscription": Subscription(REF, True, 7),
    "mapping": Mapped((), {}),
}

# operation -> (the stages that take it with a token, with an API key, or why not)
CASES = [
    ("identify", "contacts", "contacts"),
    ("track", "events", "legacy events"),
    ("group", "companies, company members", "group calls are not delivered in legacy mode (API key)"),
    ("audience", "list memberships", "lists and subscriptions need a private app or OAuth token"),
    ("account audience", "company list memberships", "lists and subscriptions need a private app"),
    ("subscription", "subscriptions", "lists and subscriptions need a private app or OAuth token"),
    ("mapping", "objects", "mapped records need a private app or OAuth token"),
]


@pytest.mark.parametrize(("op", "v3", "legacy"), CASES, ids=[c[0] for c in CASES])
def test_each_operation_has_its_stages_in_each_mode(op: str, v3: str, legacy: str) -> None:
    operation = OPS[op]
    assert ", ".join(st.name for st in stages_for(operation, legacy=False)) == v3
    in_legacy = stages_for(operation, legacy=True)
    if in_legacy:
        assert ", ".join(st.name for st in in_legacy) == legacy
    else:
        reason = not_here(operation, legacy=True)
        assert reason is not None and reason.startswith(legacy)


def test_a_legacy_tracks_contact_properties_ride_with_its_event() -> None:
    taken = stages_for(OPS["identify"], legacy=True, on_event=True)
    assert [st.name for st in taken] == ["legacy events"]


def test_the_table_is_in_dependency_order_and_complete() -> None:
    seen: set[str] = set()
    for st in STAGES:
        assert set(st.after) <= seen, f"{st.name} runs before what it waits for"
        seen.add(st.name)
        assert st.does and st.item is not None
        if st.per == "batch":
            assert st.sender is not None and st.send is not None
            assert len(st.new()) == 0 and list(st.owed(st.new())) == []
            assert st.take is not None or st.uses is not None
    assert len(seen) == len(STAGES)


def _stage(name: str, *after: str) -> Stage[list[int], Any]:
    return Stage(name=name, does=name, item=int, new=list, sender=None, send=None, after=after)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ([("a",), ("b", "a"), ("c",)], ["a", "b", "c"]),
        ([("b", "a"), ("a",)], ["a", "b"]),
        ([("c", "b"), ("b", "a"), ("a",)], ["a", "b", "c"]),
        ([("a",), ("b",)], ["a", "b"]),  # free: the table's order
    ],
)
def test_ordered(table: list[tuple[str, ...]], expected: list[str]) -> None:
    assert [st.name for st in ordered([_stage(*row) for row in table])] == expected


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ([("a", "b"), ("b", "a")], "wait for each other"),
        ([("a", "nowhere")], "unknown stages"),
    ],
)
def test_ordered_refuses_a_broken_table(table: list[tuple[str, ...]], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ordered([_stage(*row) for row in table])


def test_a_plan_holds_each_stages_items_typed_and_apart() -> None:
    plan = Plan()
    contacts, events = STAGES[0], next(st for st in STAGES if st.name == "events")
    assert not plan.calls and plan.of(contacts) == {} and plan.of(events) == []
    plan.of(contacts)["ann@x.com"] = object()
    assert plan.calls and len(plan.of(contacts)) == 1 and len(plan.of(events)) == 0
