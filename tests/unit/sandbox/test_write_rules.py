"""Write validation enforcement in the sandbox: from API version 2026-09 a portal's required
properties (on the create form, or when another property has a value) refuse a write that leaves
them empty, with HubSpot's 400 naming the property; one refused record fails its batch and nothing
of it is written; earlier versions' paths are not held to the rules."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from hubspot_relay.sandbox import PortalSettings, create_sandbox_app
from hubspot_relay.sandbox.write_rules import enforced

AUTH = {"Authorization": "Bearer sandbox-token"}
RULES = (
    {"object_type": "contacts", "name": "company"},
    {
        "object_type": "contacts",
        "name": "jobtitle",
        "when": {"property": "lifecyclestage", "value": "customer"},
    },
)


@pytest.fixture
def api() -> TestClient:
    return TestClient(create_sandbox_app([PortalSettings(required_properties=RULES)]))


def upsert(api: TestClient, version: str, *inputs: dict[str, Any]) -> Any:
    prefix = "/crm/v3/objects" if version == "v3" else f"/crm/objects/{version}"
    return api.post(f"{prefix}/contacts/batch/upsert", json={"inputs": list(inputs)}, headers=AUTH)


def contact(email: str, **props: str) -> dict[str, Any]:
    return {"id": email, "idProperty": "email", "properties": props}


@pytest.mark.parametrize(
    ("path", "held"),
    [
        ("/crm/objects/2026-09/contacts/batch/upsert", True),
        ("/crm/objects/2027-03/contacts", True),
        ("/crm/objects/2026-03/contacts/batch/upsert", False),
        ("/crm/v3/objects/contacts/batch/upsert", False),
    ],
)
def test_which_versions_are_held_to_the_rules(path: str, held: bool) -> None:
    assert enforced(path) is held


@pytest.mark.parametrize(
    ("writes", "refused"),
    [
        ([contact("a@x.com", company="Acme")], None),
        ([contact("a@x.com", firstname="Ann")], "company"),  # a create without it
        ([contact("a@x.com", company="Acme", lifecyclestage="customer")], "jobtitle"),
        ([contact("a@x.com", company="Acme", lifecyclestage="customer", jobtitle="CTO")], None),
    ],
)
def test_a_write_is_held_to_the_rules(
    api: TestClient, writes: list[dict[str, Any]], refused: str | None
) -> None:
    r = upsert(api, "2026-09", *writes)
    if refused is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR" and f'"{refused}"' in body["message"]
    assert body["errors"][0]["context"] == {"propertyName": [refused]}


def test_an_update_needs_only_what_its_change_makes_required(api: TestClient) -> None:
    assert upsert(api, "2026-09", contact("a@x.com", company="Acme")).status_code == 200
    assert upsert(api, "2026-09", contact("a@x.com", firstname="Ann")).status_code == 200  # not a create
    r = upsert(api, "2026-09", contact("a@x.com", lifecyclestage="customer"))
    assert r.status_code == 400 and '"jobtitle"' in r.json()["message"]


def test_one_refused_record_fails_the_batch_and_nothing_is_written(api: TestClient) -> None:
    r = upsert(api, "2026-09", contact("a@x.com", company="Acme"), contact("b@x.com", firstname="Bo"))
    assert r.status_code == 400
    read = api.get("/crm/objects/2026-09/contacts/a@x.com?idProperty=email", headers=AUTH)
    assert read.status_code == 404


def test_earlier_versions_are_not_held_to_them(api: TestClient) -> None:
    assert upsert(api, "2026-03", contact("a@x.com", firstname="Ann")).status_code == 200
    assert upsert(api, "v3", contact("b@x.com", firstname="Bo")).status_code == 200


def test_a_single_create_is_held_too(api: TestClient) -> None:
    r = api.post("/crm/objects/2026-09/contacts", json={"properties": {"email": "c@x.com"}}, headers=AUTH)
    assert r.status_code == 400 and '"company"' in r.json()["message"]
