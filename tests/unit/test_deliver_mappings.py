"""Mapped records through delivery, in process against the sandbox: coalesced per record, a
record HubSpot refuses dead-lettered alone, an order without its id refused with the reason,
associations that wait for the company a group call makes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.translate.mappings import parse_mappings
from tests.unit.test_deliver import Harness, make

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
