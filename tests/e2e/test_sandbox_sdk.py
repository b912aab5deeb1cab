"""HubSpot's own Python SDK (hubspot-api-client), unchanged, against a sandbox process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsError
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyInput
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.lists import ListCreateRequest, MembershipChangeRequest
from hubspot.crm.properties import PropertyCreate
from hubspot.events.send import (
    BatchedBehavioralEventHttpCompletionRequest,
    BehavioralEventHttpCompletionRequest,
)

from tests.helpers import SandboxProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    s = SandboxProcess()
    yield s
    s.stop()


@pytest.fixture
def hs(sandbox: SandboxProcess) -> HubSpot:
    httpx.post(f"{sandbox.url}/_sandbox/reset")
    return sandbox.client()


def test_contacts(hs: HubSpot) -> None:
    created = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "peter@initech.com", "firstname": "Peter"})
    )
    assert created.properties["firstname"] == "Peter" and created.id
    upserted = hs.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id="peter@initech.com",
                    id_property="email",
                    properties={"lastname": "Gibbons", "favorite_color": "red"},
                ),
                SimplePublicObjectBatchInputUpsert(
                    id="samir@initech.com",
                    id_property="email",
                    properties={"firstname": "Samir", "trial_ends": "1795824000000"},
                ),
            ]
        )
    )
    assert upserted.status == "COMPLETE"
    assert sorted((r.properties.get("firstname") or "", r.new) for r in upserted.results) == [
        ("", False),
        ("Samir", True),
    ]
    read = hs.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            properties=["firstname", "lastname", "favorite_color"],
            inputs=[SimplePublicObjectId(id="peter@initech.com")],
        )
    )
    assert read.results[0].properties == {
        "firstname": "Peter",
        "lastname": "Gibbons",
        "favorite_color": "red",
    }
    one = hs.crm.contacts.basic_api.get_by_id(
        "samir@initech.com", id_property="email", properties=["trial_ends"]
    )
    assert one.properties["trial_ends"] == "1795824000000"
    found = hs.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(property_name="lastname", operator="EQ", value="Gibbons")])
            ],
            properties=["email"],
        )
    )
    assert found.total == 1 and found.results[0].properties["email"] == "peter@initech.com"


def test_properties(hs: HubSpot) -> None:
    names = {p.name: p for p in hs.crm.properties.core_api.get_all("contacts").results}
    assert names["email"].has_unique_value and names["lifecyclestage"].type == "enumeration"
    assert names["hs_object_id"].modification_metadata.read_only_value
    created = hs.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="shoe_size",
            label="Shoe size",
            type="number",
            field_type="number",
            group_name="contactinformation",
        ),
    )
    assert created.name == "shoe_size"


def test_custom_events(hs: HubSpot, sandbox: SandboxProcess) -> None:
    definition = hs.api_request(
        {
            "method": "POST",
            "path": "/events/v3/event-definitions",
            "body": {
                "label": "Bought Item",
                "name": "bought_item",
                "primaryObject": "CONTACT",
                "propertyDefinitions": [{"name": "sku", "label": "SKU", "type": "string"}],
            },
        }
    )
    assert definition.status_code == 201
    name = definition.json()["fullyQualifiedName"]
    assert name == "pe997086_bought_item"
    hs.events.send.basic_api.send(
        BehavioralEventHttpCompletionRequest(
            event_name=name, email="peter@initech.com", uuid="m-1", properties={"sku": "A-1"}
        )
    )
    hs.events.send.batch_api.send(
        BatchedBehavioralEventHttpCompletionRequest(
            inputs=[
                BehavioralEventHttpCompletionRequest(
                    event_name=name,
                    email="peter@initech.com",
                    uuid="m-2",
                    occurred_at="2026-11-28T12:00:00Z",
                    properties={"sku": "B-2"},
                ),
                BehavioralEventHttpCompletionRequest(
                    event_name=name, email="peter@initech.com", uuid="m-1", properties={"sku": "A-1"}
                ),  # a replay: dropped
            ]
        )
    )
    page = hs.events.events_api.get_page(object_type="contact", event_type=name)
    assert sorted((e.id, e.properties["sku"]) for e in page.results) == [("m-1", "A-1"), ("m-2", "B-2")]
    assert httpx.get(f"{sandbox.url}/_sandbox/calls").json()["events_dropped_as_duplicates"] == 1


def test_company_association(hs: HubSpot) -> None:
    person = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "a@b.com"})
    )
    company = hs.crm.companies.basic_api.create(
        CompanyInput(properties={"name": "Initech", "domain": "initech.com"})
    )
    result = hs.crm.associations.v4.basic_api.create_default("contact", person.id, "company", company.id)
    assert result.results[0].association_spec.association_type_id == 279
    listed = hs.crm.associations.v4.basic_api.get_page("company", company.id, "contact")
    assert [r.to_object_id for r in listed.results] == [person.id]
    with pytest.raises(AssociationsError) as info:
        hs.crm.associations.v4.basic_api.create_default("contact", person.id, "company", "424242")
    assert info.value.status == 404


def test_api_exception_carries_hubspots_4xx_bodies(hs: HubSpot) -> None:
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "x@y.com", "Favorite Color": "red"})
        )
    body = json.loads(info.value.body)
    assert info.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in body["message"] and body["correlationId"]
    hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "dup@y.com"}))
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "dup@y.com"}))
    assert info.value.status == 409 and json.loads(info.value.body)["category"] == "CONFLICT"
    with pytest.raises(ApiException) as info:
        HubSpot(access_token="wrong", host=hs.config["host"]).crm.contacts.basic_api.get_page()
    assert info.value.status == 401 and json.loads(info.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_api_exception_carries_the_429() -> None:
    sandbox = SandboxProcess("--limit-10s", "3", "--tier", "starter")
    try:
        hs = sandbox.client()
        for _ in range(3):
            hs.crm.properties.core_api.get_all("contacts")
        with pytest.raises(ApiException) as info:
            hs.crm.contacts.basic_api.get_page()
        assert info.value.status == 429
        body = json.loads(info.value.body)
        assert (body["policyName"], body["errorType"]) == ("TEN_SECONDLY_ROLLING", "RATE_LIMIT")
        assert info.value.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert info.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    finally:
        banner = sandbox.stop()
    assert "portal 997086 (starter)" in banner and "3/10s" in banner


def test_deals_line_items_custom_objects_and_labels_with_hubspots_sdk(tmp_path: Path) -> None:
    """HubSpot's SDK, unchanged: a deal and a line item, a custom object from the portal's file,
    association labels read and used, all read back."""
    from hubspot.crm.associations.v4 import (
        AssociationSpec,
        BatchInputPublicAssociationMultiPost,
        PublicAssociationMultiPost,
        PublicObjectId,
    )
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
    from hubspot.crm.objects import SimplePublicObjectInputForCreate as ObjectInput

    portals = tmp_path / "portals.toml"
    portals.write_text(
        """
[[portals]]
hub_id = 997086
access_tokens = ["sandbox-token"]

[[portals.objects]]
name = "pets"
primary_display_property = "pet_name"
properties = [{ name = "pet_name" }, { name = "pet_id", hasUniqueValue = true }]

[[portals.association_labels]]
from = "deals"
to = "companies"
label = "Reseller"
"""
    )
    sandbox = SandboxProcess("--config", str(portals))
    try:
        hs = sandbox.client()
        deal = hs.crm.deals.basic_api.create(
            DealInput(properties={"dealname": "Order 42", "amount": "120.5", "dealstage": "closedwon"})
        )
        item = hs.crm.objects.basic_api.create(
            "line_items", ObjectInput(properties={"name": "Widget", "quantity": "2"})
        )
        company = hs.crm.companies.basic_api.create(CompanyInput(properties={"name": "Acme"}))
        labels = hs.crm.associations.v4.schema.definitions_api.get_all("deals", "companies").results
        reseller = next(label for label in labels if label.label == "Reseller")
        assert reseller.category == "USER_DEFINED"
        hs.crm.associations.v4.batch_api.create(
            "deals",
            "companies",
            BatchInputPublicAssociationMultiPost(
                inputs=[
                    PublicAssociationMultiPost(
                        _from=PublicObjectId(id=deal.id),
                        to=PublicObjectId(id=company.id),
                        types=[
                            AssociationSpec(
                                association_category="USER_DEFINED", association_type_id=reseller.type_id
                            )
                        ],
                    )
                ]
            ),
        )
        hs.crm.associations.v4.basic_api.create_default("line_items", item.id, "deals", deal.id)
        read = hs.crm.deals.basic_api.get_by_id(deal.id, properties=["dealname", "amount", "dealstage"])
        assert read.properties["dealname"] == "Order 42" and read.properties["dealstage"] == "closedwon"
        companies = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "companies").results
        assert {t.label for t in companies[0].association_types} == {None, "Reseller"}
        items = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "line_items").results
        assert [str(x.to_object_id) for x in items] == [item.id]
        pet = hs.crm.objects.basic_api.create(
            "p997086_pets", ObjectInput(properties={"pet_name": "Rex", "pet_id": "p-1"})
        )
        schemas = hs.crm.schemas.core_api.get_all().results
        assert [s.fully_qualified_name for s in schemas] == ["p997086_pets"]
        assert (
            hs.crm.objects.basic_api.get_by_id("pets", pet.id, properties=["pet_name"]).properties["pet_name"]
            == "Rex"
        )
    finally:
        sandbox.stop()


def test_lists_and_memberships(hs: HubSpot) -> None:
    ids = sorted(
        hs.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": f"l{i}@x.com"})
        ).id
        for i in range(2)
    )
    made = hs.crm.lists.lists_api.create(
        ListCreateRequest(name="Churn Risk", object_type_id="0-1", processing_type="MANUAL")
    )
    assert made.list.processing_type == "MANUAL"
    found = hs.crm.lists.lists_api.get_by_name("churn risk", "0-1")
    assert found.list.list_id == made.list.list_id
    changed = hs.crm.lists.memberships_api.add_and_remove(
        made.list.list_id, MembershipChangeRequest(record_ids_to_add=ids, record_ids_to_remove=[])
    )
    assert sorted(changed.records_ids_added) == ids
    page = hs.crm.lists.memberships_api.get_page(made.list.list_id)
    assert sorted(m.record_id for m in page.results) == ids
