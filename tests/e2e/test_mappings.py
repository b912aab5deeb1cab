"""Mappings end to end: segment-analytics-python's `Order Completed` with two products becomes a
deal and two line items, associated with the buyer's contact and company, read back with HubSpot's
SDK from the sandbox, every call on the account's API version; a custom object from a track;
`preview` of a mapped event; a mapping the portal cannot take stops `serve` before it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hubspot_sdk import HubSpot as HubSpotSdk
from segment.analytics import Client

from hubspot_relay.hubspot.endpoints import find
from tests.helpers import ROOT, RelayProcess, SandboxProcess, free_port, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-mappings"

PORTALS = """
[[portals]]
hub_id = 997086
access_tokens = ["sandbox-token"]

[[portals.objects]]
name = "pets"
primary_display_property = "pet_name"
associated_with = ["contacts"]
properties = [{ name = "pet_name" }, { name = "species" }, { name = "pet_id", hasUniqueValue = true }]
"""

MAPPINGS = """
[[accounts.mappings]]
name = "orders"
when = { type = "track", event = "Order Completed" }
object = "deals"
id_property = "segment_order_id"
id = "properties.order_id"
associate = [{ to = "contact" }, { to = "company", label = "Primary" }]

[accounts.mappings.properties]
dealname = "join('Order ', properties.order_id)"
amount = "number(properties.revenue)"
closedate = "date(timestamp)"
dealstage = "'closedwon'"

[[accounts.mappings]]
name = "order-lines"
when = { type = "track", event = "Order Completed" }
object = "line_items"
each = "properties.products"
id_property = "segment_line_id"
id = "join(properties.order_id, '-', item.product_id)"
properties = { name = "item.name", quantity = "number(item.quantity)", price = "number(item.price)" }
associate = [{ to = "orders" }]

[[accounts.mappings]]
name = "pets"
when = { type = "track", event = "Pet Adopted" }
object = "pets"
id_property = "pet_id"
id = "properties.pet_id"
properties = { pet_name = "properties.name", species = "lowercase(properties.species)" }
associate = [{ to = "contact" }]
replace = true
"""


def relay_config(tmp_path: Path, sandbox: SandboxProcess, version: str | None, extra: str = MAPPINGS) -> Path:
    config = tmp_path / "relay.toml"
    api_version = f'api_version = "{version}"' if version else ""
    config.write_text(
        f"""
[[accounts]]
name = "shop"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{sandbox.url}"
{api_version}
options = {{ create_properties = true }}
{extra}

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "shop"
"""
    )
    return config


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxProcess:
    portals = tmp_path / "portals.toml"
    portals.write_text(PORTALS)
    s = SandboxProcess("--config", str(portals))
    yield s  # type: ignore[misc]
    s.stop()


@pytest.mark.parametrize(
    ("version", "families"),
    [
        (
            None,
            (
                "/crm/objects/2026-09/",
                "/crm/properties/2026-09/",
                "/crm/associations/2026-09/",
                "/events/2026-09/",
                "/crm-object-schemas/2026-09/",
            ),
        ),
        ("v3", ("/crm/v3/", "/crm/v4/associations/", "/events/v3/", "/crm-object-schemas/v3/")),
    ],
)
def test_an_order_becomes_a_deal_and_line_items_with_their_associations(
    sandbox: SandboxProcess, tmp_path: Path, version: str | None, families: tuple[str, ...]
) -> None:
    hs = sandbox.client()
    config = relay_config(tmp_path, sandbox, version)
    # HubSpot's real pace: every call answered in 300 ms
    faults = {"rules": [{"match": "*", "latency_ms": 300}]}
    httpx.post(f"{sandbox.url}/_sandbox/faults", json=faults).raise_for_status()
    with RelayProcess(tmp_path / "data", args=("--config", str(config))) as relay:
        client = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        client.identify("buyer-1", {"email": "buyer@example.com", "firstName": "Bea"})
        client.group("buyer-1", "acme", {"name": "Acme", "website": "acme.example"})
        client.track(
            "buyer-1",
            "Order Completed",
            {
                "order_id": "o-100",
                "revenue": 120.5,
                "products": [
                    {"product_id": "p-1", "name": "Widget", "quantity": 2, "price": 10},
                    {"product_id": "p-2", "name": "Gadget", "quantity": 1, "price": 100.5},
                ],
            },
            context={"groupId": "acme"},
        )
        client.track("buyer-1", "Pet Adopted", {"pet_id": "pet-9", "name": "Rex", "species": "DOG"})
        client.flush()
        assert wait_delivered(relay, 4) == {"delivered": 4, "dead": 0, "other": 0}
    calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
    paths = [label.split(" ", 1)[1] for label in calls]
    assert all(p.startswith(families) for p in paths), paths
    deals = hs.crm.deals.basic_api.get_page(
        properties=["dealname", "amount", "dealstage", "closedate", "segment_order_id"]
    ).results
    assert len(deals) == 1
    deal = deals[0]
    assert deal.properties["dealname"] == "Order o-100" and deal.properties["amount"] == "120.5"
    assert deal.properties["dealstage"] == "closedwon" and deal.properties["segment_order_id"] == "o-100"
    contact = hs.crm.contacts.basic_api.get_by_id("buyer@example.com", id_property="email")
    to_contacts = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "contacts").results
    assert [str(x.to_object_id) for x in to_contacts] == [contact.id]
    to_companies = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "companies").results
    assert len(to_companies) == 1 and {t.label for t in to_companies[0].association_types} == {
        None,
        "Primary",
    }
    items = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "line_items").results
    assert len(items) == 2
    lines = sorted(
        (
            hs.crm.objects.basic_api.get_by_id(
                "line_items", str(x.to_object_id), properties=["name", "quantity", "price"]
            ).properties
            for x in items
        ),
        key=lambda p: p["name"],
    )
    assert [(p["name"], p["quantity"], p["price"]) for p in lines] == [
        ("Gadget", "1", "100.5"),
        ("Widget", "2", "10"),
    ]
    pets = hs.crm.objects.basic_api.get_page(
        "p997086_pets", properties=["pet_name", "species", "pet_id"]
    ).results
    assert [(p.properties["pet_name"], p.properties["species"]) for p in pets] == [("Rex", "dog")]
    owners = hs.crm.associations.v4.basic_api.get_page("p997086_pets", pets[0].id, "contacts").results
    assert [str(x.to_object_id) for x in owners] == [contact.id]
    # replace = true: the adoption made a pet, not a custom event
    events = hs.api_request({"method": "GET", "path": "/events/v3/events?limit=100"}).json()["results"]
    assert sorted(e["eventType"] for e in events) == ["pe997086_order_completed"]


def test_preview_shows_a_mapped_events_requests(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = relay_config(tmp_path, sandbox, None)
    message = tmp_path / "order.json"
    message.write_text(
        json.dumps(
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "properties": {
                    "order_id": "o-7",
                    "revenue": "9.5",
                    "email": "p@x.com",
                    "products": [{"product_id": "a", "name": "A", "quantity": 1, "price": 9.5}],
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env["HUBSPOT_RELAY_PORT"] = str(free_port())  # no relay there: the dry run runs in the command
    done = subprocess.run(
        [sys.executable, "-m", "hubspot_relay", "preview", str(message), "--config", str(config), "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    paths = [r["path"] for r in result["requests"]]
    assert (
        "/crm/objects/2026-09/deals/batch/upsert" in paths
        and "/crm/objects/2026-09/line_items/batch/upsert" in paths
    )
    deal = next(r for r in result["requests"] if r["path"].endswith("/deals/batch/upsert"))
    assert (
        deal["body"]["inputs"][0]["idProperty"] == "segment_order_id"
        and deal["body"]["inputs"][0]["id"] == "o-7"
    )
    assert any(p.endswith("/line_items/deals/batch/associate/default") for p in paths)
    assert httpx.get(f"{sandbox.url}/_sandbox/portals").json()[0]["contacts"] == 0  # nothing written


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            'object = "deals"',
            'object = "invoices"',
            "mappings[0] (orders).object: 'invoices' is not an object type of HubSpot portal 997086",
        ),
        (
            'label = "Primary"',
            'label = "Reseller"',
            "mappings[0] (orders).associate[1].label: no label 'Reseller'",
        ),
    ],
)
def test_a_mapping_the_portal_cannot_take_stops_serve_before_it_starts(
    sandbox: SandboxProcess, tmp_path: Path, old: str, new: str, error: str
) -> None:
    config = relay_config(tmp_path, sandbox, None, MAPPINGS.replace(old, new, 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "hubspot_relay", "serve", "--config", str(config), "--port", str(free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the mappings do not fit the HubSpot portal" in done.stderr and error in done.stderr
    assert "listening on" not in done.stderr and "Traceback" not in done.stderr


def test_an_account_on_2026_03_read_back_with_hubspots_own_sdk(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    """identify, group, a mapped track and a custom event from segment-analytics-python on an
    account on 2026-03, every call on 2026-03's published paths, read back with hubspot-sdk (the
    client HubSpot generated from its 2026-03 files)."""
    config = relay_config(tmp_path, sandbox, "2026-03")
    with RelayProcess(tmp_path / "data", args=("--config", str(config))) as relay:
        client = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        client.identify("buyer-2", {"email": "cy@example.com", "firstName": "Cy"})
        client.group("buyer-2", "globex", {"name": "Globex", "website": "globex.example"})
        client.track("buyer-2", "Order Completed", {"order_id": "o-200", "revenue": 42, "products": []})
        client.track("buyer-2", "Pet Adopted", {"pet_id": "pet-3", "name": "Tom", "species": "CAT"})
        client.flush()
        assert wait_delivered(relay, 4) == {"delivered": 4, "dead": 0, "other": 0}
    labels = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
    assert all(find(*label.split(" ", 1)) is not None and "2026-03" in label for label in labels), labels
    hs = HubSpotSdk(access_token="sandbox-token", base_url=sandbox.url, max_retries=0)
    try:
        contact = hs.crm.objects.contacts.get("cy@example.com", id_property="email", properties=["firstname"])
        assert contact.properties["firstname"] == "Cy"
        companies = hs.crm.associations.list("companies", object_type="contacts", object_id=contact.id)
        (company_link,) = companies.results
        company = hs.crm.objects.companies.get(company_link.to_object_id, properties=["name", "domain"])
        assert (company.properties["name"], company.properties["domain"]) == ("Globex", "globex.example")
        deals = hs.crm.objects.deals.list(properties=["dealname", "amount"]).results
        assert [(d.properties["dealname"], d.properties["amount"]) for d in deals] == [("Order o-200", "42")]
        pets = hs.crm.objects.generic_objects.list("p997086_pets", properties=["pet_name", "species"]).results
        assert [(p.properties["pet_name"], p.properties["species"]) for p in pets] == [("Tom", "cat")]
        events = hs.events.occurrences.list(object_type="contact", event_type="pe997086_order_completed")
        assert [e.object_id for e in events.results] == [contact.id]
    finally:
        hs.close()
