"""The sandbox's object types beyond contacts and companies: deals, tickets, products, line items
and a portal's custom objects, with association types, labels and schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hubspot_relay.errors import ConfigError
from hubspot_relay.sandbox import PortalSettings, create_sandbox_app, load_portals

AUTH = {"Authorization": "Bearer sandbox-token"}
PETS = {
    "name": "pets",
    "label": "Pet",
    "primary_display_property": "pet_name",
    "associated_with": ["contacts"],
    "properties": [{"name": "pet_name"}, {"name": "pet_id", "hasUniqueValue": True}],
}


@pytest.fixture
def api() -> TestClient:
    settings = PortalSettings(
        custom_objects=(PETS,),
        association_labels=({"from": "deals", "to": "companies", "label": "Reseller"},),
    )
    return TestClient(create_sandbox_app([settings]))


def create(api: TestClient, otype: str, **props: Any) -> dict[str, Any]:
    r = api.post(f"/crm/v3/objects/{otype}", json={"properties": props}, headers=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize(
    ("otype", "props", "shown"),
    [
        ("deals", {"dealname": "Order 1", "amount": "99.5", "dealstage": "closedwon"}, "dealname"),
        ("0-3", {"dealname": "By type id"}, "dealname"),
        ("tickets", {"subject": "Broken", "hs_pipeline_stage": "1"}, "subject"),
        ("products", {"name": "Widget", "price": "10"}, "name"),
        ("line_items", {"name": "Widget x2", "quantity": "2", "price": "10"}, "name"),
        ("p997086_pets", {"pet_name": "Rex"}, "pet_name"),
        ("pets", {"pet_name": "Tom"}, "pet_name"),
    ],
)
def test_objects_of_every_type_are_created_and_read(
    api: TestClient, otype: str, props: dict[str, str], shown: str
) -> None:
    made = create(api, otype, **props)
    read = api.get(f"/crm/v3/objects/{otype}/{made['id']}", headers=AUTH).json()
    assert read["properties"][shown] == props[shown]


@pytest.mark.parametrize(
    ("otype", "props", "error"),
    [
        ("deals", {"dealstage": "won"}, "INVALID_OPTION"),
        ("deals", {"amount": "lots"}, "INVALID_"),
        ("deals", {"nope": "1"}, "PROPERTY_DOESNT_EXIST"),
        ("spaceships", {"name": "x"}, "Unable to infer object type from: spaceships"),
    ],
)
def test_their_values_are_checked_as_hubspot_does(
    api: TestClient, otype: str, props: dict[str, str], error: str
) -> None:
    r = api.post(f"/crm/v3/objects/{otype}", json={"properties": props}, headers=AUTH)
    assert r.status_code == 400 and error in r.text


def test_a_custom_objects_unique_property_upserts(api: TestClient) -> None:
    body = {"inputs": [{"id": "pet-1", "idProperty": "pet_id", "properties": {"pet_name": "Rex"}}]}
    first = api.post("/crm/objects/2026-09/pets/batch/upsert", json=body, headers=AUTH).json()
    body["inputs"][0]["properties"]["pet_name"] = "Rex II"
    again = api.post("/crm/objects/2026-09/pets/batch/upsert", json=body, headers=AUTH).json()
    assert first["results"][0]["id"] == again["results"][0]["id"]
    assert (
        api.get(f"/crm/v3/objects/pets/{first['results'][0]['id']}", headers=AUTH).json()["properties"][
            "pet_name"
        ]
        == "Rex II"
    )


def test_labels_and_labelled_associations(api: TestClient) -> None:
    labels = api.get("/crm/v4/associations/deals/companies/labels", headers=AUTH).json()["results"]
    by_label = {entry["label"]: entry for entry in labels}
    assert by_label[None]["category"] == "HUBSPOT_DEFINED"
    assert by_label["Primary"]["category"] == "HUBSPOT_DEFINED"
    assert by_label["Reseller"]["category"] == "USER_DEFINED"
    assert (
        api.get("/crm/associations/2026-09/deals/companies/labels", headers=AUTH).json()["results"] == labels
    )
    deal, company = create(api, "deals", dealname="D"), create(api, "companies", name="C")
    r = api.post(
        "/crm/associations/2026-09/deals/companies/batch/create",
        json={
            "inputs": [
                {
                    "from": {"id": deal["id"]},
                    "to": {"id": company["id"]},
                    "types": [
                        {
                            "associationCategory": "USER_DEFINED",
                            "associationTypeId": by_label["Reseller"]["typeId"],
                        }
                    ],
                }
            ]
        },
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    listed = api.get(f"/crm/v4/objects/deals/{deal['id']}/associations/companies", headers=AUTH).json()[
        "results"
    ]
    assert [{t["label"] for t in x["associationTypes"]} for x in listed] == [{None, "Reseller"}]
    back = api.get(f"/crm/v4/objects/companies/{company['id']}/associations/deals", headers=AUTH).json()[
        "results"
    ]
    assert {t["label"] for t in back[0]["associationTypes"]} == {None, "Reseller"}  # the inverse label
    wrong = api.post(
        "/crm/v4/associations/deals/companies/batch/create",
        json={
            "inputs": [
                {
                    "from": {"id": deal["id"]},
                    "to": {"id": company["id"]},
                    "types": [{"associationTypeId": 99999}],
                }
            ]
        },
        headers=AUTH,
    )
    assert wrong.status_code == 400 and "not a valid association type" in wrong.text


def test_line_items_associate_with_deals_and_pets_with_contacts(api: TestClient) -> None:
    deal, item = create(api, "deals", dealname="D"), create(api, "line_items", name="L", quantity="1")
    r = api.post(
        "/crm/v4/associations/line_items/deals/batch/associate/default",
        json={"inputs": [{"from": {"id": item["id"]}, "to": {"id": deal["id"]}}]},
        headers=AUTH,
    )
    assert r.status_code == 200
    listed = api.get(f"/crm/v4/objects/deals/{deal['id']}/associations/line_items", headers=AUTH).json()[
        "results"
    ]
    assert [x["toObjectId"] for x in listed] == [item["id"]]
    pet, contact = create(api, "pets", pet_name="Rex"), create(api, "contacts", email="o@x.com")
    r = api.put(
        f"/crm/v4/objects/pets/{pet['id']}/associations/default/contacts/{contact['id']}", headers=AUTH
    )
    assert r.status_code == 200
    r = api.put(f"/crm/v4/objects/pets/{pet['id']}/associations/default/deals/{deal['id']}", headers=AUTH)
    assert r.status_code == 400 and "No association type between" in r.text


def test_schemas_list_the_custom_objects(api: TestClient) -> None:
    for path in ("/crm-object-schemas/v3/schemas", "/crm-object-schemas/2026-09/schemas", "/crm/v3/schemas"):
        (pets,) = api.get(path, headers=AUTH).json()["results"]
        assert pets["fullyQualifiedName"] == "p997086_pets" and pets["objectTypeId"].startswith("2-")
        assert pets["primaryDisplayProperty"] == "pet_name"
        names = {p["name"] for p in pets["properties"]}
        assert {"pet_name", "pet_id", "hs_object_id"} <= names
        assert pets["associations"][0]["toObjectTypeId"] == "0-1"


def test_a_portal_file_defines_objects_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "portals.toml"
    path.write_text(
        """
[[portals]]
hub_id = 123
access_tokens = ["t"]

[[portals.objects]]
name = "pets"
properties = [{ name = "pet_name" }]

[[portals.association_labels]]
from = "deals"
to = "contacts"
label = "Decision maker"
"""
    )
    (portal,) = load_portals(path)
    assert portal.custom_objects[0]["name"] == "pets"
    assert portal.association_labels == ({"from": "deals", "to": "contacts", "label": "Decision maker"},)
    path.write_text(path.read_text().replace('from = "deals"', 'from = "spaceships"'))
    with pytest.raises(ConfigError, match="spaceships"):
        load_portals(path)
