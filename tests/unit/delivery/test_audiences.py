"""Segment audiences into HubSpot lists, through delivery and the sandbox: both shapes (an
identify's audience trait, Audience Entered / Exited tracks) fill the MANUAL list named after the
audience key, made on first use and found by name after; an exit after an enter wins; the
account may name the list; a list that takes no members is the account's problem and its
memberships wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.delivery.stages.memberships import ListSender
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio

PERSONAS = {"computation_class": "audience", "computation_key": "trial_users", "space_id": "spa_1"}


def identify(user: str, member: bool) -> dict[str, Any]:
    traits = {"email": f"{user}@x.com", "trial_users": member}
    return {"type": "identify", "userId": user, "traits": traits, "context": {"personas": PERSONAS}}


def track(user: str, entered: bool) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Audience Entered" if entered else "Audience Exited",
        "properties": {"audience_key": "trial_users", "trial_users": entered},
        "context": {"personas": PERSONAS},
    }


def members(h: Harness, name: str) -> set[str]:
    lists = h.sandbox.portals["997086"].lists
    found = lists.by_name("0-1", name)
    assert found is not None, f"no list {name}"
    contacts = h.sandbox.portals["997086"].records["contacts"]
    return {contacts[r].properties["email"] for r in lists.members[found["listId"]]}


async def test_both_shapes_fill_the_audiences_list(tmp_path: Path) -> None:
    h = await make(tmp_path)
    try:
        await h.send(identify("a", True), identify("b", True), identify("c", False))
        await h.drain()
        assert members(h, "trial_users") == {"a@x.com", "b@x.com"}
        # tracks: b leaves, c enters; a enters and leaves in the same batch (the exit wins)
        await h.send(track("b", False), track("c", True), track("a", True), track("a", False))
        await h.drain()
        assert members(h, "trial_users") == {"c@x.com"}
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (7, 0)
        assert h.sandbox.portals["997086"].events == []  # memberships, not custom events
        calls = h.calls()
        assert calls["POST /crm/lists/2026-09"] == 1  # made once, then known
        assert calls["PUT /crm/lists/2026-09/{id}/memberships/add-and-remove"] == 2  # one call a batch
    finally:
        await h.queue.close()
        h.identity.close()


async def test_the_account_names_the_list_and_a_dynamic_one_is_its_problem(tmp_path: Path) -> None:
    h = await make(tmp_path, list_names={"trial_users": "Trials (Segment)"})
    try:
        await h.send(identify("a", True))
        await h.drain()
        assert members(h, "Trials (Segment)") == {"a@x.com"}

        portal = h.sandbox.portals["997086"]
        portal.lists.lists[portal.lists.by_name("0-1", "Trials (Segment)")["listId"]]["processingType"] = (
            "DYNAMIC"
        )
        h.delivery.sender(ListSender).list_ids.clear()  # (as after a restart)
        await h.send(identify("b", True))
        await h.drain(max_cycles=4, step=600.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.dead, counts.retrying) == (0, 1)
        problems = {kind: message for _, kind, message, _ in h.identity.problems()}
        assert "portal_setup" in problems and "DYNAMIC" in problems["portal_setup"]
    finally:
        await h.queue.close()
        h.identity.close()


async def test_an_account_audience_fills_a_company_list(tmp_path: Path) -> None:
    h = await make(tmp_path)
    try:
        group = {
            "type": "group",
            "userId": "a",
            "groupId": "acme",
            "traits": {"name": "Acme", "website": "acme.com", "big_accounts": True},
            "context": {"personas": {"computation_class": "audience", "computation_key": "big_accounts"}},
        }
        await h.send(identify("a", False), group)
        await h.drain()
        lists = h.sandbox.portals["997086"].lists
        found = lists.by_name("0-2", "big_accounts")
        assert found is not None and found["objectTypeId"] == "0-2"
        companies = h.sandbox.portals["997086"].records["companies"]
        assert [companies[r].properties["name"] for r in lists.members[found["listId"]]] == ["Acme"]
        await h.send({**group, "traits": {"big_accounts": False}})
        await h.drain()
        assert lists.members[found["listId"]] == {}
        assert (await h.queue.counts())["web"].dead == 0
    finally:
        await h.queue.close()
        h.identity.close()
