"""Cloud mode end to end: segment-analytics-python -> relay -> sandbox, read back with HubSpot's SDK."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client

from tests.helpers import RelayProcess, SandboxProcess, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-cloud"


@pytest.fixture
def sandbox() -> Iterator[SandboxProcess]:
    s = SandboxProcess()
    yield s
    s.stop()


def relay_env(sandbox: SandboxProcess) -> dict[str, str]:
    return {
        "HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY,
        "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox.url,
    }


def test_analytics_python_to_hubspot(sandbox: SandboxProcess, data_dir: Path) -> None:
    hs = sandbox.client()
    with RelayProcess(data_dir, env=relay_env(sandbox)) as relay:
        client = Client(WRITE_KEY, host=relay.url, gzip=True, sync_mode=True)
        # a track without an email first: resolved through the identify that follows
        client.track("user-1", "Viewed Product", {"sku": "SKU-1", "price": 19.99})
        client.identify(
            "user-1",
            {
                "email": "peter@initech.com",
                "firstName": "Peter",
                "lastName": "Gibbons",
                "Favorite Color": "red",
                "plan": "enterprise",
                "trial_ends": "2026-12-24",
                "beta_user": True,
                "Shoe Size": 44,
                "lifecyclestage": "customer",
            },
        )
        client.track(
            "user-1",
            "Bought Item",
            {"email": "peter@initech.com", "revenue": 42.5},
            context={"traits": {"jobTitle": "Engineer"}},
        )
        client.group(
            "user-1", "initech", {"name": "Initech", "website": "https://initech.com", "employees": 120}
        )
        assert wait_delivered(relay, 4) == {"delivered": 4, "dead": 0, "other": 0}
        client.identify("user-1", {"lifecyclestage": "lead"})  # backwards: cleared first, then set
        assert wait_delivered(relay, 5) == {"delivered": 5, "dead": 0, "other": 0}

    contact = hs.crm.contacts.basic_api.get_by_id(
        "peter@initech.com",
        id_property="email",
        properties=[
            "firstname",
            "lastname",
            "favorite_color",
            "plan",
            "trial_ends",
            "beta_user",
            "jobtitle",
            "shoe_size",
            "lifecyclestage",
        ],
    )
    assert contact.properties == {
        "firstname": "Peter",
        "lastname": "Gibbons",
        "favorite_color": "red",
        "plan": "enterprise",
        "trial_ends": "1798070400000",
        "beta_user": "true",
        "jobtitle": "Engineer",
        "shoe_size": None,
        "lifecyclestage": "lead",
    }
    events = {e.event_type: e for e in hs.events.events_api.get_page(object_type="contact").results}
    assert set(events) == {"pe997086_viewed_product", "pe997086_bought_item"}
    assert events["pe997086_viewed_product"].properties == {"sku": "SKU-1", "price": "19.99"}
    assert events["pe997086_bought_item"].properties == {"revenue": "42.5"}
    assert {e.object_id for e in events.values()} == {contact.id}
    companies = hs.crm.companies.basic_api.get_page(
        properties=["name", "domain", "numberofemployees"]
    ).results
    assert [c.properties["domain"] for c in companies] == ["initech.com"]
    members = hs.crm.associations.v4.basic_api.get_page("company", companies[0].id, "contact")
    assert [m.to_object_id for m in members.results] == [contact.id]


def mobile_batch(anonymous_id: str) -> dict[str, Any]:
    """A batch as the iOS and Android SDKs send it: screens, device, os and app in context."""
    ctx = {
        "app": {"name": "Shop", "version": "3.2.1", "build": "321", "namespace": "com.example.shop"},
        "device": {"id": "B3F6", "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
        "os": {"name": "iOS", "version": "18.1"},
        "library": {"name": "analytics-ios", "version": "4.1.8"},
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "screen": {"width": 393, "height": 852},
    }

    def m(mtype: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": mtype,
            "messageId": str(uuid.uuid4()),
            "anonymousId": anonymous_id,
            "context": ctx,
            "timestamp": "2026-11-28T11:00:00.000Z",
            **fields,
        }

    return {
        "batch": [
            m("screen", name="Home", properties={"category": "launch"}),
            m("track", event="Product Viewed", properties={"product_id": "p-1"}),
            m("screen", name="Cart"),
            m("identify", userId="mobile-9", traits={"email": "mo@example.com", "firstName": "Mo"}),
            m("track", userId="mobile-9", event="Order Completed", properties={"revenue": 30}),
        ],
        "sentAt": "2026-11-28T11:00:05.000Z",
    }


def test_mobile_batch_events_before_identify_reach_the_contact(
    sandbox: SandboxProcess, data_dir: Path
) -> None:
    hs = sandbox.client()
    with RelayProcess(data_dir, env=relay_env(sandbox)) as relay:
        r = httpx.post(f"{relay.url}/v1/batch", json=mobile_batch("anon-ios-1"), auth=(WRITE_KEY, ""))
        assert r.status_code == 200
        assert wait_delivered(relay, 5) == {"delivered": 5, "dead": 0, "other": 0}
    contact = hs.crm.contacts.basic_api.get_by_id(
        "mo@example.com", id_property="email", properties=["firstname"]
    )
    assert contact.properties["firstname"] == "Mo"
    events = hs.events.events_api.get_page(object_type="contact", object_id=contact.id).results
    assert sorted(e.event_type for e in events) == [
        "pe997086_order_completed",
        "pe997086_product_viewed",
        "pe997086_viewed_screen",
        "pe997086_viewed_screen",
    ]
    screens = sorted(e.properties["name"] for e in events if e.event_type == "pe997086_viewed_screen")
    assert screens == ["Cart", "Home"]


def test_faults_and_kill_9_mid_delivery_change_nothing(sandbox: SandboxProcess, data_dir: Path) -> None:
    httpx.post(
        f"{sandbox.url}/_sandbox/faults",
        json={
            "seed": 3,
            "rules": [
                {"match": "POST *", "error_rate": 0.2, "status": 503, "latency_ms": 20},
                {"match": "POST /events/*/send/batch", "rate_limit_storm": 5},
            ],
        },
    )
    users = 300
    messages = []
    for i in range(users):
        messages.append(
            {
                "type": "identify",
                "userId": f"k{i}",
                "traits": {"email": f"k{i}@x.com", "firstName": "K"},
                "messageId": f"id-{i}",
            }
        )
        messages.append({"type": "track", "userId": f"k{i}", "event": "Signed Up", "messageId": f"tr-{i}"})
    env = {**relay_env(sandbox)}
    relay = RelayProcess(data_dir, env=env).start()
    for start in range(0, len(messages), 100):
        r = httpx.post(
            f"{relay.url}/v1/batch", json={"batch": messages[start : start + 100]}, auth=(WRITE_KEY, "")
        )
        assert r.status_code == 200
    deadline = time.monotonic() + 30
    while httpx.get(f"{sandbox.url}/_sandbox/calls").json()["total"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    relay.kill9()  # mid-delivery
    with RelayProcess(data_dir, env=env) as again:
        counts = wait_delivered(again, 2 * users, timeout=120)
    assert counts == {"delivered": 2 * users, "dead": 0, "other": 0}
    portal = httpx.get(f"{sandbox.url}/_sandbox/portals").json()[0]
    assert portal["contacts"] == users
    hs = sandbox.client()
    events = hs.api_request({"method": "GET", "path": "/events/v3/events?limit=1000"}).json()["results"]
    assert len(events) == users and len({e["id"] for e in events}) == users  # none missing, none twice
    assert httpx.get(f"{sandbox.url}/_sandbox/calls").json()["faults_injected"] > 0


def test_back_pressure_with_segments_own_client_loses_nothing(
    sandbox: SandboxProcess, data_dir: Path
) -> None:
    """Past max_queued the relay answers 429 with Retry-After; analytics-python backs off, resends,
    and every message reaches HubSpot once the queue drains (issue 9, finding 7)."""
    import re

    env = {**relay_env(sandbox), "HUBSPOT_RELAY_MAX_QUEUED": "150"}
    with RelayProcess(data_dir, env=env) as relay:
        # HubSpot slows down, so the queue fills faster than it drains
        httpx.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [{"match": "POST *", "latency_ms": 300}]})
        client = Client(WRITE_KEY, host=relay.url, upload_size=100, max_retries=20)
        for i in range(600):
            client.track(f"bp{i % 30}", "Back Pressure", {"email": f"bp{i % 30}@x.com", "i": i})
        client.flush()
        client.join()
        counts = wait_delivered(relay, 600, timeout=120)
        metrics = httpx.get(f"{relay.url}/metrics").text
    assert counts == {"delivered": 600, "dead": 0, "other": 0}
    refused = re.search(r'hubspot_relay_ingest_requests_total\{status="429"\} (\d+)', metrics)
    assert refused and float(refused.group(1)) > 0, "the flood never met back-pressure"
    assert 'status="500"' not in metrics and 'status="503"' not in metrics
    portal = httpx.get(f"{sandbox.url}/_sandbox/portals").json()[0]
    assert portal["events"] == 600


@pytest.mark.parametrize(
    ("version", "family"),
    [
        (
            None,
            (
                "/crm/objects/2026-09/",
                "/crm/properties/2026-09/",
                "/crm/associations/2026-09/",
                "/events/2026-09/",
            ),
        ),
        ("v3", ("/crm/v3/", "/crm/v4/associations/", "/events/v3/")),
    ],
)
def test_every_call_is_on_the_accounts_api_version(
    sandbox: SandboxProcess, data_dir: Path, version: str | None, family: tuple[str, ...]
) -> None:
    """The default is HubSpot's current dated version; `v3` keeps the numbered paths. Counted at
    the sandbox, and read back with HubSpot's own SDK (which speaks v3)."""
    env = relay_env(sandbox) | ({"HUBSPOT_API_VERSION": version} if version else {})
    hs = sandbox.client()
    with RelayProcess(data_dir, env=env) as relay:
        client = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        client.identify("u1", {"email": "ver@example.com", "firstName": "Vera"})
        client.group("u1", "acme", {"name": "Acme", "website": "acme.example"})
        client.track("u1", "Version Checked", {"family": version or "dated"})
        client.flush()
        assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
    calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
    paths = [label.split(" ", 1)[1] for label in calls]
    assert paths and all(p.startswith(family) for p in paths), paths
    contact = hs.crm.contacts.basic_api.get_by_id(
        "ver@example.com", id_property="email", properties=["firstname"]
    )
    assert contact.properties["firstname"] == "Vera"
    events = hs.api_request({"method": "GET", "path": "/events/v3/events?eventType=pe997086_version_checked"})
    assert len(events.json()["results"]) == 1


def test_a_user_who_changes_email_keeps_one_contact(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """With `user_id_property`, contacts are keyed by userId: segment-analytics-python's identify
    with a new email updates the same contact (HubSpot keeps the old email aside)."""
    config = tmp_path / "relay.toml"
    config.write_text(
        f"""
[[accounts]]
name = "main"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{sandbox.url}"
options = {{ user_id_property = "segment_user_id" }}

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "main"
"""
    )
    hs = sandbox.client()
    with RelayProcess(tmp_path / "data", args=("--config", str(config))) as relay:
        client = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        client.identify("user-7", {"email": "first@example.com", "firstName": "Rae"})
        client.flush()
        assert wait_delivered(relay, 1)["delivered"] == 1
        client.identify("user-7", {"email": "second@example.com", "lastName": "Diaz"})
        client.track("user-7", "Email Changed", {"step": 2})
        client.flush()
        assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
    found = hs.crm.contacts.basic_api.get_page(
        limit=10, properties=["email", "firstname", "lastname", "segment_user_id", "hs_additional_emails"]
    ).results
    assert len(found) == 1
    (contact,) = found
    assert contact.properties["email"] == "second@example.com"
    assert (contact.properties["firstname"], contact.properties["lastname"]) == ("Rae", "Diaz")
    assert contact.properties["segment_user_id"] == "user-7"
    assert contact.properties["hs_additional_emails"] == "first@example.com"
    events = hs.api_request({"method": "GET", "path": "/events/v3/events?eventType=pe997086_email_changed"})
    assert [e["objectId"] for e in events.json()["results"]] == [contact.id]


def test_an_empty_value_clears_a_date_and_context_traits_make_a_contact(
    sandbox: SandboxProcess, data_dir: Path
) -> None:
    """What other Segment-compatible clients send: `"test_date": ""` clears the date set before,
    and an identify whose traits are only in `context.traits` still makes the contact."""
    from hubspot.crm.properties import PropertyCreate

    hs = sandbox.client()
    hs.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="test_date",
            label="Test date",
            type="date",
            field_type="date",
            group_name="contactinformation",
        ),
    )
    with RelayProcess(data_dir, env=relay_env(sandbox)) as relay:
        client = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        client.identify("u-date", {"email": "date@example.com", "test_date": "2026-12-24"})
        client.flush()
        assert wait_delivered(relay, 1)["delivered"] == 1
        set_ = hs.crm.contacts.basic_api.get_by_id(
            "date@example.com", id_property="email", properties=["test_date"]
        )
        assert set_.properties["test_date"] is not None
        client.identify("u-date", {"email": "date@example.com", "test_date": ""})
        client.identify("u-ctx", context={"traits": {"email": "ctx@example.com", "firstName": "Cora"}})
        client.flush()
        assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
    cleared = hs.crm.contacts.basic_api.get_by_id(
        "date@example.com", id_property="email", properties=["test_date"]
    )
    assert cleared.properties.get("test_date") is None
    made = hs.crm.contacts.basic_api.get_by_id(
        "ctx@example.com", id_property="email", properties=["firstname"]
    )
    assert made.properties["firstname"] == "Cora"
