"""Mapped records through delivery, in process against the sandbox: coalesced per record, a
record HubSpot refuses dead-lettered alone, an order without its id refused with the reason,
associations that wait for the company a group call makes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.translate.mappings import parse_mappings
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio

ORDERS = {
    "name": "orders",
    "when": {"type": "track", "event": "Order Completed"},
    "object": "deals",
    "id_property": "segment_order_id",
    "id": "properties.order_id",
    "properties": {
        "dealname": "properties.order_id",
        "dealstage": "properties.stage",
        "amount": "number(properties.total)",
    },
    "associate": [{"to": "contact"}, {"to": "company"}],
}


async def harness(tmp_path: Path, *mappings: dict[str, Any]) -> Harness:
    h = await make(tmp_path, create_properties=True)
    account = replace(h.delivery.account, mappings=parse_mappings(list(mappings), "m"))
    h.delivery.account = account
    h.delivery.planner.mappings = account.mappings
    # what `serve` does at start-up: the id property, unique
    await h.http.post(
        "/crm/v3/properties/deals",
        json={
            "name": "segment_order_id",
            "label": "Order",
            "type": "string",
            "fieldType": "text",
            "groupName": "dealinformation",
            "hasUniqueValue": True,
        },
        headers={"Authorization": "Bearer sandbox-token"},
    )
    return h


def order(order_id: Any, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u1",
        "event": "Order Completed",
        "context": {"groupId": "acme"},
        "properties": {
            "order_id": order_id,
            "stage": "closedwon",
            "total": "10",
            "email": "u1@x.com",
            **props,
        },
    }


async def deals(h: Harness) -> list[dict[str, Any]]:
    body = await h.get(
        "/crm/v3/objects/deals?limit=100&properties=dealname,dealstage,amount,segment_order_id"
    )
    return [r["properties"] for r in body["results"]]


async def test_records_are_coalesced_and_wait_for_their_company(tmp_path: Path) -> None:
    h = await harness(tmp_path, ORDERS)
    try:
        await h.send(order("o-1", total="10"), order("o-1", total="12"))  # the same deal, twice
        await h.drain(step=1)
        counts = (await h.queue.counts())["web"]
        assert counts.retrying == 2  # no company acme yet: the associations wait
        assert [d["amount"] for d in await deals(h)] == ["12"]  # the deal itself went, once
        await h.send(
            {
                "type": "group",
                "userId": "u1",
                "groupId": "acme",
                "traits": {"name": "Acme", "email": "u1@x.com"},
            }
        )
        await h.drain(step=3600)
        assert (await h.queue.counts())["web"].delivered == 3
        (deal,) = (
            await h.get("/crm/v3/objects/deals?limit=10")["results"]
            if False
            else (await h.get("/crm/v3/objects/deals?limit=10"))["results"]
        )
        companies = (await h.get(f"/crm/v4/objects/deals/{deal['id']}/associations/companies"))["results"]
        contacts = (await h.get(f"/crm/v4/objects/deals/{deal['id']}/associations/contacts"))["results"]
        assert len(companies) == 1 and len(contacts) == 1
    finally:
        await h.queue.close()


async def test_a_record_hubspot_refuses_is_dead_lettered_alone(tmp_path: Path) -> None:
    h = await harness(tmp_path, {**ORDERS, "associate": [{"to": "contact"}]})
    try:
        await h.send(order("o-1"), order("o-2", stage="won"), order("o-3"))
        await h.drain()
        assert sorted(d["segment_order_id"] for d in await deals(h)) == ["o-1", "o-3"]
        (dead,) = await h.queue.dead_letters()
        assert "INVALID_OPTION" in dead.reason and "won" in dead.reason
        assert (await h.queue.counts())["web"].delivered == 2
    finally:
        await h.queue.close()


async def test_an_order_without_its_id_is_refused_with_the_reason(tmp_path: Path) -> None:
    h = await harness(tmp_path, {**ORDERS, "associate": []})
    try:
        await h.send(order(None))
        await h.drain()
        (dead,) = await h.queue.dead_letters()
        assert dead.reason == "mapping 'orders': no id in the message"
        assert await deals(h) == []
    finally:
        await h.queue.close()


async def test_a_contact_is_found_by_a_former_email(tmp_path: Path) -> None:
    """The buyer's email is one their contact had before (HubSpot keeps it in hs_additional_emails):
    the order is associated with that contact, not a new one."""
    h = await harness(tmp_path, {**ORDERS, "associate": [{"to": "contact"}]})
    try:
        auth = {"Authorization": "Bearer sandbox-token"}
        made = await h.http.post(
            "/crm/v3/objects/contacts", json={"properties": {"email": "old@x.com"}}, headers=auth
        )
        contact_id = made.json()["id"]
        await h.http.patch(
            f"/crm/v3/objects/contacts/{contact_id}",
            json={"properties": {"email": "new@x.com"}},
            headers=auth,
        )
        await h.send(
            {
                **order("o-9"),
                "userId": "legacy-user",
                "properties": {**order("o-9")["properties"], "email": "old@x.com"},
            }
        )
        await h.drain()
        (deal,) = (await h.get("/crm/v3/objects/deals?limit=10"))["results"]
        linked = (await h.get(f"/crm/v4/objects/deals/{deal['id']}/associations/contacts"))["results"]
        assert [str(x["toObjectId"]) for x in linked] == [contact_id]
    finally:
        await h.queue.close()


async def test_the_start_up_check_names_each_problem(tmp_path: Path) -> None:
    from hubspot_relay.delivery.mapping_check import check_mappings

    h = await make(tmp_path)
    try:
        bad = [
            {
                **ORDERS,
                "properties": {"colour": "properties.c"},
                "associate": [{"to": "company", "label": "Reseller"}],
            },
            {
                **ORDERS,
                "name": "tickets",
                "object": "tickets",
                "id_property": "subject",
                "properties": {"content": "properties.c"},
                "associate": [],
            },
            {**ORDERS, "name": "pets", "object": "pets"},
        ]
        account = replace(h.delivery.account, mappings=parse_mappings(bad, "m"))
        problems = await check_mappings(account, h.delivery.client, create_properties=False)
        portal = "HubSpot portal 997086"
        m = "accounts[sandbox].mappings"
        assert problems == [
            f"{m}[0] (orders).id_property: deals has no property 'segment_order_id' in "
            f"{portal} (create it as a unique property, or set create_properties = true)",
            f"{m}[0] (orders).properties.colour: deals has no property 'colour' in {portal}",
            f"{m}[0] (orders).associate[0].label: no label 'Reseller' from deals to "
            f"companies in {portal} (labels there: 'Primary')",
            f"{m}[1] (tickets).id_property: 'subject' is not a unique property of tickets in {portal}",
            f"{m}[2] (pets).object: 'pets' is not an object type of {portal} "
            "(contacts, companies, deals, tickets, products, line_items)",
        ]
        fixed = await check_mappings(
            replace(account, mappings=account.mappings[:1]), h.delivery.client, create_properties=True
        )
        assert fixed == [problems[2]]  # the properties are created; a label is not
        prop = await h.get("/crm/v3/properties/deals/segment_order_id")
        assert prop["hasUniqueValue"] is True
    finally:
        await h.queue.close()
