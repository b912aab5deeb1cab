"""The sandbox's HTTP API through Starlette's test client, with a clock the tests move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hubspot_relay.sandbox import PortalSettings, create_sandbox_app
from hubspot_relay.sandbox.limits import Budget

TOKEN = "sandbox-token"
API_KEY = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 20_000 * DAY + 3600.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **settings: Any) -> TestClient:
    return TestClient(create_sandbox_app([PortalSettings(**settings)], clock=clock))


@pytest.fixture
def api(clock: Clock) -> Iterator[TestClient]:
    with make(clock) as c:
        yield c


def upsert(api: TestClient, *inputs: dict[str, Any]) -> Any:
    return api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": list(inputs)}, headers=AUTH)


def contact(email: str, **props: str) -> dict[str, Any]:
    return {"id": email, "idProperty": "email", "properties": props}


# ---- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "message"),
    [
        ({}, "", "Authentication credentials not found"),
        ({"Authorization": "Bearer wrong"}, "", "access token is invalid"),
        ({}, "?hapikey=00000000-0000-0000-0000-000000000000", "The API key provided is invalid"),
    ],
)
def test_authentication_failures(api: TestClient, headers: dict[str, str], query: str, message: str) -> None:
    r = api.get("/crm/v3/properties/contacts" + query, headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert message in body["message"] and body["correlationId"]


def test_legacy_api_key_authenticates(api: TestClient) -> None:
    assert api.get(f"/properties/v1/contacts/properties?hapikey={API_KEY}").status_code == 200


# ---- contacts v3 ------------------------------------------------------------------------------


def test_create_get_update_and_conflict(api: TestClient) -> None:
    r = api.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "Peter@Initech.com", "firstname": "Peter"}},
        headers=AUTH,
    )
    assert r.status_code == 201
    created = r.json()
    assert created["properties"] == {"email": "Peter@Initech.com", "firstname": "Peter"}
    assert {"id", "createdAt", "updatedAt", "archived"} <= created.keys()
    got = api.get(
        "/crm/v3/objects/contacts/peter@initech.com?idProperty=email&properties=firstname,email", headers=AUTH
    ).json()
    assert got["id"] == created["id"] and got["properties"]["firstname"] == "Peter"
    r = api.patch(
        f"/crm/v3/objects/contacts/{created['id']}",
        json={"properties": {"lastname": "Gibbons"}},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.json()["properties"] == {"lastname": "Gibbons"}
    dup = api.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": "peter@initech.com"}}, headers=AUTH
    )
    assert dup.status_code == 409
    assert dup.json()["category"] == "CONFLICT"
    assert dup.json()["message"] == f"Contact already exists. Existing ID: {created['id']}"
    missing = api.get("/crm/v3/objects/contacts/nobody@x.com?idProperty=email", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_default_properties_are_returned_when_none_are_asked(api: TestClient) -> None:
    upsert(api, contact("a@b.com", firstname="Ann", favorite_color="red"))
    got = api.get("/crm/v3/objects/contacts/a@b.com?idProperty=email", headers=AUTH).json()
    assert set(got["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }


def test_batch_upsert_creates_and_updates(api: TestClient) -> None:
    r = upsert(api, contact("a@b.com", firstname="Ann"))
    assert r.status_code == 200 and r.json()["results"][0]["new"] is True
    r = upsert(api, contact("A@B.com", lastname="Lee"), contact("c@d.com", plan="pro"))
    body = r.json()
    assert body["status"] == "COMPLETE" and {"startedAt", "completedAt"} <= body.keys()
    assert [x["new"] for x in body["results"]] == [False, True]
    got = api.get(
        "/crm/v3/objects/contacts/a@b.com?idProperty=email&properties=firstname,lastname", headers=AUTH
    ).json()
    assert got["properties"] == {"firstname": "Ann", "lastname": "Lee"}


@pytest.mark.parametrize(
    ("props", "error", "message"),
    [
        ({"shoe_size": "9"}, "PROPERTY_DOESNT_EXIST", 'Property \\"shoe_size\\" does not exist'),
        ({"hs_object_id": "7"}, "READ_ONLY_VALUE", "is a read only property"),
        (
            {"trial_ends": "1500000000123"},
            "INVALID_DATE",
            "1500000000123 is at 2:40:0.123 UTC, not midnight!",
        ),
        ({"plan": "gold"}, "INVALID_OPTION", "gold was not one of the allowed options"),
        ({"lifecyclestage": "buyer"}, "INVALID_OPTION", "buyer was not one of the allowed options"),
        ({"beta_user": "maybe"}, "INVALID_OPTION", "maybe was not one of the allowed options"),
    ],
)
def test_one_invalid_input_fails_the_whole_batch(
    api: TestClient, props: dict[str, str], error: str, message: str
) -> None:
    r = upsert(api, contact("good@x.com", firstname="Good"), contact("bad@x.com", **props))
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    assert f'"error":"{error}"' in body["message"] and message in body["message"]
    assert body["errors"][0]["code"] == error
    assert api.get("/crm/v3/objects/contacts/good@x.com?idProperty=email", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [{"id": "a@b.com", "idProperty": "email", "properties": {"age": 3}}]},
            "must be a string, got int",
        ),
        (
            {"inputs": [{"id": "a@b.com", "idProperty": "email", "properties": {"beta_user": True}}]},
            "must be a string, got bool",
        ),
        ({"inputs": [contact(f"u{i}@x.com") for i in range(101)]}, "at most 100 inputs per call; got 101"),
        ({"inputs": [contact("a@b.com"), contact("A@b.com")]}, "Duplicate IDs found in batch input"),
        ({"input": []}, "expected an object with 'inputs'"),
        (
            {"inputs": [{"id": "x", "idProperty": "firstname", "properties": {}}]},
            "not a unique identifier property",
        ),
        (
            {"inputs": [{"id": "a@b", "idProperty": "email", "properties": {}}]},
            "Email address a@b is invalid",
        ),
    ],
)
def test_batch_refusals(api: TestClient, body: dict[str, Any], message: str) -> None:
    r = api.post("/crm/v3/objects/contacts/batch/upsert", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]


def test_invalid_json(api: TestClient) -> None:
    r = api.post("/crm/v3/objects/contacts/batch/upsert", content=b"{nope", headers=AUTH)
    assert r.status_code == 400 and r.json()["message"].startswith("Invalid input JSON on line 1")


def test_batch_read_reports_missing_with_207(api: TestClient) -> None:
    upsert(api, contact("a@b.com", firstname="Ann"))
    r = api.post(
        "/crm/v3/objects/contacts/batch/read",
        headers=AUTH,
        json={
            "idProperty": "email",
            "properties": ["firstname"],
            "inputs": [{"id": "a@b.com"}, {"id": "z@z.com"}],
        },
    )
    assert r.status_code == 207
    body = r.json()
    assert [x["properties"] for x in body["results"]] == [{"firstname": "Ann"}]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"]["ids"] == [
        "z@z.com"
    ]


def test_search_and_dated_paths(api: TestClient) -> None:
    upsert(api, contact("a@b.com", firstname="Ann"), contact("c@d.com", firstname="Cy"))
    r = api.post(
        "/crm/objects/2026-03/contacts/search",
        headers=AUTH,
        json={
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "C@D.COM"}]}],
            "properties": ["firstname"],
        },
    )
    assert r.status_code == 200
    assert r.json()["total"] == 1 and r.json()["results"][0]["properties"] == {"firstname": "Cy"}
    page = api.get("/crm/objects/2026-03/contacts?limit=1", headers=AUTH).json()
    assert len(page["results"]) == 1 and page["paging"]["next"]["after"]


def test_lifecycle_stage_never_moves_backwards(api: TestClient) -> None:
    upsert(api, contact("a@b.com", lifecyclestage="customer"))
    upsert(api, contact("a@b.com", lifecyclestage="lead"))
    get = "/crm/v3/objects/contacts/a@b.com?idProperty=email&properties=lifecyclestage"
    assert api.get(get, headers=AUTH).json()["properties"]["lifecyclestage"] == "customer"
    upsert(api, contact("a@b.com", lifecyclestage=""))  # cleared first...
    upsert(api, contact("a@b.com", lifecyclestage="lead"))  # ...then set
    assert api.get(get, headers=AUTH).json()["properties"]["lifecyclestage"] == "lead"


def test_dates_are_stored_as_epoch_millis(api: TestClient) -> None:
    upsert(api, contact("a@b.com", trial_ends="2026-11-28", createdate="2026-11-01T10:00:00Z"))
    props = api.get(
        "/crm/v3/objects/contacts/a@b.com?idProperty=email&properties=trial_ends,createdate", headers=AUTH
    ).json()["properties"]
    assert props == {"trial_ends": "1795824000000", "createdate": "1793527200000"}


# ---- properties, companies, associations --------------------------------------------------------


def test_properties_list_get_create(api: TestClient) -> None:
    listed = api.get("/crm/v3/properties/contacts", headers=AUTH).json()["results"]
    by_name = {p["name"]: p for p in listed}
    assert by_name["email"]["hasUniqueValue"] and by_name["trial_ends"]["type"] == "date"
    r = api.post(
        "/crm/v3/properties/contacts",
        headers=AUTH,
        json={
            "name": "shoe_size",
            "label": "Shoe size",
            "type": "number",
            "fieldType": "number",
            "groupName": "x",
        },
    )
    assert r.status_code == 201 and r.json()["name"] == "shoe_size"
    assert api.get("/crm/v3/properties/contacts/shoe_size", headers=AUTH).json()["type"] == "number"
    again = api.post(
        "/crm/v3/properties/contacts", headers=AUTH, json={"name": "shoe_size", "type": "number"}
    )
    assert again.status_code == 409
    assert upsert(api, contact("a@b.com", shoe_size="44")).status_code == 200


def test_company_and_association(api: TestClient) -> None:
    person = upsert(api, contact("a@b.com")).json()["results"][0]["id"]
    company = api.post(
        "/crm/v3/objects/companies",
        headers=AUTH,
        json={"properties": {"name": "Initech", "domain": "initech.com"}},
    ).json()["id"]
    r = api.put(f"/crm/v4/objects/contact/{person}/associations/default/company/{company}", headers=AUTH)
    assert r.status_code == 200
    assert r.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 279,
    }
    listed = api.get(f"/crm/v4/objects/companies/{company}/associations/contacts", headers=AUTH).json()
    assert listed["results"][0]["toObjectId"] == str(person)
    assert listed["results"][0]["associationTypes"][0]["typeId"] == 280
    missing = api.put(f"/crm/v4/objects/contact/{person}/associations/default/company/999999", headers=AUTH)
    assert missing.status_code == 404


# ---- custom behavioral events -----------------------------------------------------------------


def define(api: TestClient, name: str = "bought_item", **extra: Any) -> Any:
    return api.post(
        "/events/v3/event-definitions",
        headers=AUTH,
        json={
            "label": "Bought Item",
            "name": name,
            "primaryObject": "CONTACT",
            "propertyDefinitions": [{"name": "sku", "label": "SKU", "type": "string"}],
            **extra,
        },
    )


def test_event_definition_send_dedupe_and_read_back(api: TestClient) -> None:
    r = define(api)
    assert r.status_code == 201 and r.json()["fullyQualifiedName"] == "pe997086_bought_item"
    assert define(api).status_code == 409
    event = {
        "eventName": "pe997086_bought_item",
        "email": "peter@initech.com",
        "uuid": "u-1",
        "occurredAt": "2026-11-28T12:00:00Z",
        "properties": {"sku": "A-1", "hs_page_url": "https://x/"},
    }
    assert api.post("/events/v3/send", json=event, headers=AUTH).status_code == 204
    assert api.post("/events/v3/send", json=event, headers=AUTH).status_code == 204  # a replay
    batch = {"inputs": [dict(event, uuid="u-2"), dict(event, uuid="u-1")]}
    assert api.post("/events/v3/send/batch", json=batch, headers=AUTH).status_code == 204
    events = api.get(
        "/events/v3/events?objectType=contact&eventType=pe997086_bought_item", headers=AUTH
    ).json()
    assert sorted(e["id"] for e in events["results"]) == ["u-1", "u-2"]
    first = events["results"][0]
    assert first["occurredAt"] == "2026-11-28T12:00:00.000Z" and first["properties"]["sku"] == "A-1"
    who = api.get("/crm/v3/objects/contacts/peter@initech.com?idProperty=email", headers=AUTH)
    assert who.status_code == 200 and who.json()["id"] == first["objectId"]  # created by the event
    assert api.get("/_sandbox/calls").json()["events_dropped_as_duplicates"] == 2


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"email": "a@b.com"}, "eventName is required"),
        ({"eventName": "pe997086_nope", "email": "a@b.com"}, "Event pe997086_nope does not exist"),
        ({"eventName": "pe997086_bought_item"}, "One of email, utk or objectId is required"),
        (
            {"eventName": "pe997086_bought_item", "email": "a@b.com", "properties": {"color": "red"}},
            "Property color does not exist on event",
        ),
        (
            {"eventName": "pe997086_bought_item", "email": "a@b.com", "properties": {"sku": "x" * 257}},
            "longer than 256 characters",
        ),
        (
            {"eventName": "pe997086_bought_item", "email": "a@b.com", "occurredAt": "soon"},
            "occurredAt 'soon'",
        ),
    ],
)
def test_event_refusals(api: TestClient, event: dict[str, Any], message: str) -> None:
    define(api)
    r = api.post("/events/v3/send", json=event, headers=AUTH)
    assert r.status_code == 400 and message in r.json()["message"]
    assert r.json()["category"] == "VALIDATION_ERROR"


def test_events_batch_limit_and_one_bad_input(api: TestClient) -> None:
    define(api)
    good = {"eventName": "pe997086_bought_item", "email": "a@b.com"}
    r = api.post("/events/v3/send/batch", json={"inputs": [good] * 501}, headers=AUTH)
    assert r.status_code == 400 and "at most 500 inputs" in r.json()["message"]
    r = api.post(
        "/events/v3/send/batch",
        json={"inputs": [good, {"eventName": "pe997086_x", "email": "a@b.com"}]},
        headers=AUTH,
    )
    assert r.status_code == 400
    assert api.get("/events/v3/events", headers=AUTH).json()["results"] == []


def test_events_need_enterprise(clock: Clock) -> None:
    with make(clock, tier="professional") as api:
        r = api.post("/events/v3/send", json={"eventName": "pe997086_x", "email": "a@b.com"}, headers=AUTH)
        assert r.status_code == 403
        body = r.json()
        assert body["category"] == "MISSING_SCOPES"
        assert body["errors"][0]["context"]["requiredGranularScopes"] == ["analytics.behavioral_events.send"]
        assert define(api).status_code == 403
        assert upsert(api, contact("a@b.com")).status_code == 200  # contacts still work


# ---- legacy (the seed's API key era) ------------------------------------------------------------


def test_legacy_contacts(api: TestClient) -> None:
    q = f"?hapikey={API_KEY}"
    r = api.post(
        f"/contacts/v1/contact/createOrUpdate/email/peter@initech.com/{q}",
        json={"properties": [{"property": "firstname", "value": "Peter"}]},
    )
    assert r.status_code == 200 and r.json()["isNew"] is True
    vid = r.json()["vid"]
    r = api.post(
        f"/contacts/v1/contact/createOrUpdate/email/peter@initech.com/{q}",
        json={"properties": [{"property": "favorite_color", "value": "red"}]},
    )
    assert r.json() == {"vid": vid, "isNew": False}
    bad = api.post(
        f"/contacts/v1/contact/createOrUpdate/email/peter@initech.com/{q}",
        json={"properties": [{"property": "Favorite Color", "value": "red"}]},
    )
    assert bad.status_code == 400
    assert bad.json()["validationResults"][0]["error"] == "PROPERTY_DOESNT_EXIST"
    r = api.post(
        f"/contacts/v1/contact/batch/{q}",
        json=[
            {"email": "a@b.com", "properties": [{"property": "lastname", "value": "Lee"}]},
            {"email": "peter@initech.com", "properties": [{"property": "lastname", "value": "Gibbons"}]},
        ],
    )
    assert r.status_code == 202
    profile = api.get(f"/contacts/v1/contact/email/peter@initech.com/profile{q}").json()
    assert profile["vid"] == vid and profile["portal-id"] == 997086
    assert {
        k: v["value"]
        for k, v in profile["properties"].items()
        if k in ("firstname", "lastname", "favorite_color")
    } == {"firstname": "Peter", "lastname": "Gibbons", "favorite_color": "red"}
    missing = api.get(f"/contacts/v1/contact/email/nobody@x.com/profile{q}")
    assert missing.status_code == 404 and missing.json()["message"] == "contact does not exist"
    bad_batch = api.post(
        f"/contacts/v1/contact/batch/{q}",
        json=[
            {"email": "z@z.com", "properties": []},
            {"email": "y@y.com", "properties": [{"property": "x", "value": 1}]},
        ],
    )
    assert bad_batch.status_code == 400
    assert bad_batch.json()["failureMessages"][0]["index"] == 1
    props = api.get(f"/properties/v1/contacts/properties{q}").json()
    assert any(p["name"] == "favorite_color" and p["readOnlyValue"] is False for p in props)


def test_tracking_pixel_records_the_event_and_properties(api: TestClient) -> None:
    r = api.get("/v1/event?_a=997086&_n=Bought%20Item&email=peter@initech.com&_m=9.5&firstname=Peter&bogus=1")
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert r.content.startswith(b"GIF89a")
    events = api.get("/_sandbox/portals/997086/legacy-events").json()["results"]
    assert [(e["eventId"], e["email"], e["value"]) for e in events] == [
        ("Bought Item", "peter@initech.com", "9.5")
    ]
    got = api.get(
        "/crm/v3/objects/contacts/peter@initech.com?idProperty=email&properties=firstname", headers=AUTH
    )
    assert got.json()["properties"] == {"firstname": "Peter"}


# ---- limits -----------------------------------------------------------------------------------


def test_ten_second_limit_429_body_and_headers(clock: Clock) -> None:
    with make(clock, budget=Budget(per_10s=3, per_day=1000)) as api:
        statuses = []
        for _ in range(4):
            r = api.get("/crm/v3/properties/contacts", headers=AUTH)
            statuses.append(r.status_code)
            clock.now += 0.1
        assert statuses == [200, 200, 200, 429]
        body = r.json()
        assert set(body) == {"status", "message", "errorType", "correlationId", "policyName", "requestId"}
        assert (body["status"], body["errorType"], body["policyName"]) == (
            "error",
            "RATE_LIMIT",
            "TEN_SECONDLY_ROLLING",
        )
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert r.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert r.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "997"
        clock.now += 10
        ok = api.get("/crm/v3/properties/contacts", headers=AUTH)
        assert ok.status_code == 200 and ok.headers["X-HubSpot-RateLimit-Remaining"] == "2"


def test_daily_limit_until_midnight(clock: Clock) -> None:
    with make(clock, budget=Budget(per_10s=100, per_day=2)) as api:
        assert [api.get("/crm/v3/properties/contacts", headers=AUTH).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        r = api.get("/crm/v3/properties/contacts", headers=AUTH)
        assert (
            r.json()["policyName"] == "DAILY" and r.json()["message"] == "You have reached your daily limit."
        )
        clock.now = (clock.now // DAY + 1) * DAY + 1
        assert api.get("/crm/v3/properties/contacts", headers=AUTH).status_code == 200


def test_seed_per_second_limit_and_search_limit(clock: Clock) -> None:
    with make(clock, budget=Budget(per_10s=100, per_day=1000, per_second=10)) as api:
        codes = [
            api.get(f"/properties/v1/contacts/properties?hapikey={API_KEY}").status_code for _ in range(11)
        ]
        assert codes == [200] * 10 + [429]
        clock.now += 1.5
        body = {"filterGroups": []}
        codes = [
            api.post("/crm/v3/objects/contacts/search", json=body, headers=AUTH).status_code for _ in range(6)
        ]
        assert codes == [200] * 5 + [429]


# ---- faults and inspection --------------------------------------------------------------------


def test_faults(api: TestClient) -> None:
    r = api.post(
        "/_sandbox/faults",
        json={
            "seed": 1,
            "rules": [
                {"match": "POST /crm/v3/objects/contacts/batch/*", "error_rate": 1.0, "status": 503},
                {"match": "GET /crm/v3/properties/*", "rate_limit_storm": 2},
                {"match": "GET /crm/v3/objects/*", "timeout_rate": 1.0, "timeout_s": 0.01},
            ],
        },
    )
    assert r.status_code == 200
    assert upsert(api, contact("a@b.com")).status_code == 503
    storm = [api.get("/crm/v3/properties/contacts", headers=AUTH) for _ in range(3)]
    assert [s.status_code for s in storm] == [429, 429, 200]
    assert (
        storm[0].json()["policyName"] == "TEN_SECONDLY_ROLLING"
        and "X-HubSpot-RateLimit-Max" in storm[0].headers
    )
    assert api.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 504
    assert api.get("/_sandbox/faults").json()["injected"] == 4
    bad = api.post("/_sandbox/faults", json={"rules": [{"error_rate": 2}]})
    assert bad.status_code == 400
    api.post("/_sandbox/faults", json={"rules": []})
    assert upsert(api, contact("a@b.com")).status_code == 200


def test_calls_inspection_and_reset(api: TestClient, clock: Clock) -> None:
    for _ in range(3):
        upsert(api, contact("a@b.com"))
        clock.now += 0.4
    clock.now += 20
    api.get("/crm/v3/objects/contacts/a@b.com?idProperty=email", headers=AUTH)
    api.get("/crm/v3/properties/contacts")  # 401
    calls = api.get("/_sandbox/calls").json()
    assert calls["total"] == 5
    assert calls["by_endpoint"]["POST /crm/v3/objects/contacts/batch/upsert"] == {"200": 3}
    assert calls["by_endpoint"]["GET /crm/v3/objects/contacts/{email}"] == {"200": 1}
    assert calls["by_status"] == {"200": 4, "401": 1}
    assert (calls["peak_10s"], calls["peak_1s"]) == (3, 3)
    api.post("/_sandbox/reset")
    assert api.get("/_sandbox/calls").json()["total"] == 0
    assert api.get("/crm/v3/objects/contacts/a@b.com?idProperty=email", headers=AUTH).status_code == 404


def test_state_survives_a_restart_in_a_sqlite_file(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "sandbox.sqlite3"
    with TestClient(create_sandbox_app([PortalSettings()], clock=clock, state_path=path)) as api:
        upsert(api, contact("a@b.com", firstname="Ann"))
        define(api)
        api.post("/crm/v3/properties/contacts", headers=AUTH, json={"name": "shoe_size", "type": "number"})
    with TestClient(create_sandbox_app([PortalSettings()], clock=clock, state_path=path)) as api:
        got = api.get("/crm/v3/objects/contacts/a@b.com?idProperty=email&properties=firstname", headers=AUTH)
        assert got.json()["properties"] == {"firstname": "Ann"}
        assert api.get("/events/v3/event-definitions/bought_item", headers=AUTH).status_code == 200
        assert api.get("/crm/v3/properties/contacts/shoe_size", headers=AUTH).status_code == 200


@pytest.mark.parametrize("version", ["2026-03", "2026-09"])
def test_the_dated_paths_are_the_numbered_ones(api: TestClient, version: str) -> None:
    """HubSpot's date-versioned family, served with the same semantics as v3 (and v4's associations)."""
    v3 = api.get("/crm/v3/properties/contacts", headers=AUTH).json()
    assert api.get(f"/crm/properties/{version}/contacts", headers=AUTH).json() == v3
    created = api.post(
        f"/crm/properties/{version}/contacts",
        json={
            "name": "shoe_size",
            "label": "Shoe size",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
        headers=AUTH,
    )
    assert created.status_code == 201
    assert api.get("/crm/v3/properties/contacts/shoe_size", headers=AUTH).status_code == 200
    r = api.post(
        f"/crm/objects/{version}/contacts/batch/upsert",
        json={"inputs": [contact("d@x.com", shoe_size="44")]},
        headers=AUTH,
    )
    assert r.status_code == 200
    contact_id = r.json()["results"][0]["id"]
    company = api.post(
        f"/crm/objects/{version}/companies", json={"properties": {"name": "Acme"}}, headers=AUTH
    ).json()
    r = api.post(
        f"/crm/associations/{version}/contacts/companies/batch/associate/default",
        json={"inputs": [{"from": {"id": contact_id}, "to": {"id": company["id"]}}]},
        headers=AUTH,
    )
    assert r.status_code == 200
    listed = api.get(f"/crm/v4/objects/contacts/{contact_id}/associations/companies", headers=AUTH).json()
    assert [a["toObjectId"] for a in listed["results"]] == [company["id"]]
    definition = api.post(
        f"/events/{version}/event-definitions",
        json={"label": "Dated", "name": "dated", "primaryObject": "CONTACT", "propertyDefinitions": []},
        headers=AUTH,
    )
    assert definition.status_code == 201
    sent = api.post(
        f"/events/{version}/send/batch",
        json={"inputs": [{"eventName": definition.json()["fullyQualifiedName"], "email": "d@x.com"}]},
        headers=AUTH,
    )
    assert sent.status_code == 204
    assert len(api.get("/events/v3/events", headers=AUTH).json()["results"]) == 1
    assert api.get("/crm/objects/2025-09/contacts", headers=AUTH).status_code == 404  # no such version
