"""Delivery against the sandbox in the same process (HTTP over an ASGI transport), with one clock
for the queue, the limiter, delivery and the sandbox, moved by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hubspot_relay.queue.protocol import ReplayFilter
from hubspot_relay.sandbox import PortalSettings
from hubspot_relay.sandbox.limits import Budget
from tests.harness import AUTH, Harness, make

pytestmark = pytest.mark.anyio


async def test_identify_and_track(h: Harness) -> None:
    await h.send(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {
                "email": "peter@initech.com",
                "firstName": "Peter",
                "lastName": "Gibbons",
                "Favorite Color": "red",
                "plan": "pro",
                "trialEnds": None,
                "trial_ends": "2026-12-24T15:00:00Z",
                "beta_user": True,
                "Internal Score": 7,
                "company": {"name": "Initech"},
                "createdAt": "2026-01-01T00:00:00Z",
            },
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Bought Item",
            "properties": {"sku": "A-1", "revenue": 9.5},
        },
    )
    await h.drain()
    calls = h.calls()
    props = await h.contact(
        "peter@initech.com",
        "firstname",
        "lastname",
        "favorite_color",
        "plan",
        "trial_ends",
        "beta_user",
        "company",
        "createdate",
        "internal_score",
    )
    assert props == {
        "firstname": "Peter",
        "lastname": "Gibbons",
        "favorite_color": "red",
        "plan": "pro",
        "trial_ends": "1798070400000",
        "beta_user": "true",
        "company": "Initech",
        "createdate": "1767225600000",
        "internal_score": None,
    }
    events = (await h.get("/events/v3/events?eventType=pe997086_bought_item"))["results"]
    assert [(e["properties"], e["occurredAt"]) for e in events] == [
        ({"sku": "A-1", "revenue": "9.5"}, "2026-11-28T11:59:00.000Z")
    ]
    dropped = {(k, r) for _, _, k, r, _ in h.identity.dropped()}
    assert ("internal_score", "not a property in this HubSpot account") in dropped
    assert (await h.queue.counts())["web"].delivered == 2
    # the fewest calls: catalog, one upsert, definitions, one definition created, one send
    assert calls == {
        "GET /crm/properties/2026-09/contacts": 1,
        "POST /crm/objects/2026-09/contacts/batch/upsert": 1,
        "GET /events/2026-09/event-definitions": 1,
        "POST /events/2026-09/event-definitions": 1,
        "POST /events/2026-09/send/batch": 1,
    }


async def test_many_messages_for_one_contact_are_one_upsert(h: Harness) -> None:
    await h.send(
        *[
            {"type": "identify", "userId": "peter@initech.com", "traits": {"firstName": f"P{i}"}}
            for i in range(5)
        ]
    )
    await h.drain()
    assert (await h.contact("peter@initech.com", "firstname")) == {"firstname": "P4"}  # the last one wins
    assert h.calls()["POST /crm/objects/2026-09/contacts/batch/upsert"] == 1


async def test_track_without_email_resolves_through_identify(h: Harness) -> None:
    # anonymous first (the mobile case), identified later in another batch
    await h.send(
        {"type": "screen", "anonymousId": "anon-1", "name": "Home"},
        {"type": "track", "anonymousId": "anon-1", "event": "Added to Cart"},
        {"type": "identify", "anonymousId": "anon-1", "traits": {"firstName": "Ann"}},
    )
    await h.delivery.cycle()
    assert (await h.queue.counts())["web"].retrying == 2  # waiting for an email
    await h.send({"type": "identify", "userId": "ann@x.com", "anonymousId": "anon-1", "traits": {}})
    await h.drain()
    assert (await h.contact("ann@x.com", "firstname")) == {"firstname": "Ann"}  # traits that waited
    names = sorted(e["eventType"] for e in (await h.get("/events/v3/events"))["results"])
    assert names == ["pe997086_added_to_cart", "pe997086_viewed_screen"]


async def test_an_unresolvable_event_is_dead_lettered_after_the_wait(tmp_path: Path) -> None:
    h = await make(tmp_path, unresolved_event_wait_s=120)
    try:
        await h.send({"type": "track", "userId": "nobody", "event": "E"})
        await h.delivery.cycle()
        h.clock.now += 121
        await h.drain(step=61)
        (dead,) = await h.queue.dead_letters()
        assert "no email is known for this user" in dead.reason
    finally:
        await h.queue.close()


async def test_group_creates_and_associates_a_company(h: Harness) -> None:
    await h.send(
        {
            "type": "group",
            "userId": "peter@initech.com",
            "groupId": "g-1",
            "traits": {"name": "Initech", "website": "https://www.initech.com", "employees": 120},
        }
    )
    await h.drain()
    await h.send(
        {"type": "group", "userId": "samir@initech.com", "groupId": "g-1", "traits": {"industry": "Software"}}
    )
    await h.drain()
    companies = await h.get(
        "/crm/objects/2026-09/companies?properties=name,domain,numberofemployees,industry"
    )
    (company,) = companies["results"]
    assert company["properties"] == {
        "name": "Initech",
        "domain": "initech.com",
        "numberofemployees": "120",
        "industry": "Software",
    }
    members = await h.get(f"/crm/v4/objects/companies/{company['id']}/associations/contacts")
    assert len(members["results"]) == 2
    assert h.calls()["POST /crm/objects/2026-09/companies/search"] == 1  # the id is remembered afterwards


async def test_a_backwards_lifecycle_stage_is_cleared_then_set(h: Harness) -> None:
    await h.send({"type": "identify", "userId": "a@b.com", "traits": {"lifecyclestage": "customer"}})
    await h.drain()
    await h.send({"type": "identify", "userId": "a@b.com", "traits": {"lifecyclestage": "lead"}})
    await h.drain()
    assert (await h.contact("a@b.com", "lifecyclestage")) == {"lifecyclestage": "lead"}


async def test_one_bad_record_in_a_batch_of_100_then_replay(h: Harness) -> None:
    await h.send(
        *[
            {"type": "identify", "userId": f"user{i}@x.com", "traits": {"plan": "gold" if i == 37 else "pro"}}
            for i in range(100)
        ]
    )
    await h.drain()
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.dead) == (99, 1)
    (dead,) = await h.queue.dead_letters()
    assert orjson.loads(dead.body)["userId"] == "user37@x.com"
    assert "INVALID_OPTION" in dead.reason and "gold was not one of the allowed options" in dead.reason
    # the account adds the option; the dead letter is replayed and goes through
    r = await h.http.patch(
        "/crm/properties/2026-09/contacts/plan",
        headers=AUTH,
        json={"options": [{"label": v, "value": v} for v in ("free", "pro", "enterprise", "gold")]},
    )
    assert r.status_code == 200
    assert await h.queue.replay(ReplayFilter(reason_contains="INVALID_OPTION")) == 1
    await h.drain()
    assert (await h.contact("user37@x.com", "plan")) == {"plan": "gold"}
    assert (await h.queue.counts())["web"].delivered == 100


async def test_events_refused_by_a_non_enterprise_portal(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=PortalSettings(tier="professional"))
    try:
        await h.send(
            {"type": "identify", "userId": "a@b.com", "traits": {"firstName": "Ann"}},
            {"type": "track", "userId": "a@b.com", "event": "Bought Item"},
        )
        await h.drain()
        assert (await h.contact("a@b.com", "firstname")) == {"firstname": "Ann"}  # contacts keep flowing
        (dead,) = await h.queue.dead_letters()
        assert "refuses custom behavioral events" in dead.reason and "Enterprise" in dead.reason
        assert [kind for _, kind, _, _ in h.identity.problems()] == ["custom_events"]
    finally:
        await h.queue.close()


async def test_faults_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    h = await make(tmp_path, contact_batch=10, event_batch=10)
    await h.http.post(
        "/_sandbox/faults",
        json={
            "seed": 7,
            "rules": [
                {"match": "POST *", "error_rate": 0.3, "status": 503},
                {"match": "POST /events/2026-09/send/batch", "rate_limit_storm": 3},
            ],
        },
    )
    users = 150
    await h.send(
        *[
            m
            for i in range(users)
            for m in (
                {"type": "identify", "userId": f"u{i}@x.com", "traits": {"firstName": f"F{i}"}},
                {"type": "track", "userId": f"u{i}@x.com", "event": "Signed Up"},
            )
        ]
    )
    await h.drain(max_cycles=200)
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.dead) == (2 * users, 0)
    contacts = (await h.get("/_sandbox/portals"))[0]["contacts"]
    events = (await h.get("/events/v3/events?limit=1000"))["results"]
    assert contacts == users and len(events) == users and len({e["id"] for e in events}) == users
    assert h.sandbox.faults.injected > 10
    await h.queue.close()


async def test_daily_limit_pauses_until_reset_and_loses_nothing(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=PortalSettings(budget=Budget(per_10s=100, per_day=3)))
    try:
        await h.send(
            *[{"type": "identify", "userId": f"u{i}@x.com", "traits": {"firstName": "A"}} for i in range(250)]
        )
        await h.delivery.cycle()  # catalog + 2 upserts, then HubSpot's DAILY 429
        assert h.delivery.paused_until > h.clock.now
        assert any(kind == "daily_limit" for _, kind, _, _ in h.identity.problems())
        assert (await h.queue.counts())["web"].dead == 0
        await h.drain(step=3600)
        assert (await h.queue.counts())["web"].delivered == 250
    finally:
        await h.queue.close()


async def test_skipped_messages_make_no_calls(h: Harness) -> None:
    await h.send(
        {"type": "track", "userId": "a@b.com", "event": "E", "integrations": {"HubSpot": False}},
        {"type": "track", "userId": "a@b.com", "event": "E", "_metadata": {"bundled": ["HubSpot"]}},
    )
    await h.drain()
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.skipped) == (0, 2) and h.calls() == {}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        # (delivered, skipped, waiting)
        ([{"type": "identify", "userId": "u1", "traits": {"email": "u1@x.com"}}], (1, 0, 0)),
        ([{"type": "identify", "anonymousId": "a1", "traits": {"firstName": "Ann"}}], (0, 0, 1)),
        (
            [
                {"type": "identify", "anonymousId": "a1", "traits": {"firstName": "Ann"}},
                {"type": "identify", "anonymousId": "a1", "traits": {"email": "ann@x.com"}},
            ],
            (1, 0, 1),  # the first waited; the second delivered both messages' traits
        ),
        ([{"type": "track", "userId": "u", "event": "E", "_metadata": {"bundled": ["HubSpot"]}}], (0, 1, 0)),
        ([{"type": "alias", "userId": "u2", "previousId": "a2"}], (1, 0, 0)),  # a tie, kept
    ],
)
async def test_each_message_is_counted_by_what_became_of_it(
    h: Harness, messages: list[dict[str, Any]], expected: tuple[int, int, int]
) -> None:
    await h.send(*messages)
    await h.drain()
    counts = (await h.queue.counts())["web"]
    assert (counts.delivered, counts.skipped, counts.waiting) == expected


async def test_create_missing_properties_when_asked(tmp_path: Path) -> None:
    h = await make(tmp_path, create_properties=True)
    try:
        await h.send({"type": "identify", "userId": "a@b.com", "traits": {"Shoe Size": 44}})
        await h.drain()
        assert (await h.contact("a@b.com", "shoe_size")) == {"shoe_size": "44"}
    finally:
        await h.queue.close()


async def test_without_auto_created_definitions_unknown_events_are_dead_lettered(tmp_path: Path) -> None:
    h = await make(tmp_path, create_event_definitions=False)
    try:
        await h.send({"type": "track", "userId": "a@b.com", "event": "Bought Item"})
        await h.drain()
        (dead,) = await h.queue.dead_letters()
        assert "no event definition pe997086_bought_item" in dead.reason
    finally:
        await h.queue.close()


async def test_a_refused_token_stops_retrying_and_says_why(h: Harness) -> None:
    h.delivery.client._headers["Authorization"] = "Bearer revoked"
    await h.send({"type": "identify", "userId": "a@b.com", "traits": {"firstName": "A"}})
    await h.drain()
    (dead,) = await h.queue.dead_letters()
    assert dead.reason.startswith("HubSpot 401 INVALID_AUTHENTICATION")
    assert any(kind == "http_401" for _, kind, _, _ in h.identity.problems())


async def test_retries_give_up_after_the_maximum_age(tmp_path: Path) -> None:
    h = await make(tmp_path, retry_max_age_s=600)
    try:
        await h.http.post("/_sandbox/faults", json={"rules": [{"match": "POST *", "error_rate": 1.0}]})
        await h.send({"type": "identify", "userId": "a@b.com", "traits": {"firstName": "A"}})
        await h.drain(step=120)
        (dead,) = await h.queue.dead_letters()
        assert dead.reason.startswith("gave up after") and "HubSpot 502" in dead.reason
    finally:
        await h.queue.close()


async def test_delivery_is_counted_in_prometheus(h: Harness) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("hubspot_relay_settled_messages_total", account="sandbox", outcome="delivered")
    calls = value("hubspot_relay_hubspot_calls_total", account="sandbox", status="200")
    await h.send({"type": "identify", "userId": "a@b.com", "traits": {"firstName": "A"}})
    await h.drain()
    assert value("hubspot_relay_settled_messages_total", account="sandbox", outcome="delivered") == before + 1
    assert value("hubspot_relay_hubspot_calls_total", account="sandbox", status="200") == calls + 2


@pytest.mark.parametrize(
    ("api_version", "families"),
    [
        ("v3", ("/crm/v3/", "/crm/v4/associations/", "/events/v3/")),
        (
            "2026-03",
            (
                "/crm/objects/2026-03/",
                "/crm/properties/2026-03/",
                "/crm/associations/2026-03/",
                "/events/2026-03/",
            ),
        ),
        (
            "2026-09",
            (
                "/crm/objects/2026-09/",
                "/crm/properties/2026-09/",
                "/crm/associations/2026-09/",
                "/events/2026-09/",
            ),
        ),
    ],
)
async def test_every_call_uses_the_accounts_api_version(
    tmp_path: Path, api_version: str, families: tuple[str, ...]
) -> None:
    h = await make(tmp_path, api_version=api_version, create_properties=True)
    try:
        await h.send(
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email": "a@b.com", "firstName": "Ann", "Shoe Size": 44},
            },
            {
                "type": "group",
                "userId": "u1",
                "groupId": "g1",
                "traits": {"name": "Acme", "website": "acme.com"},
            },
            {"type": "track", "userId": "u1", "event": "Bought Item", "properties": {"sku": "x1"}},
        )
        await h.drain()
        labels = [label.split(" ", 1)[1] for label in h.calls()]
        assert labels and all(path.startswith(families) for path in labels), labels
        assert (await h.contact("a@b.com", "shoe_size")) == {"shoe_size": "44"}
        events = (await h.get("/events/v3/events?eventType=pe997086_bought_item"))["results"]
        assert len(events) == 1
        assert (await h.queue.counts())["web"].delivered == 3
    finally:
        await h.queue.close()


async def _all_contacts(h: Harness) -> list[dict[str, Any]]:
    body = await h.get(
        "/crm/v3/objects/contacts?limit=100&properties=email,segment_user_id,hs_additional_emails,firstname"
    )
    return [r["properties"] for r in body["results"]]


@pytest.mark.parametrize("same_batch", [False, True])
async def test_with_a_user_id_property_a_user_who_changes_email_keeps_one_contact(
    tmp_path: Path, same_batch: bool
) -> None:
    h = await make(tmp_path, user_id_property="segment_user_id")
    try:
        first = {"type": "identify", "userId": "u1", "traits": {"email": "old@x.com", "firstName": "Ann"}}
        second = {"type": "identify", "userId": "u1", "traits": {"email": "new@x.com", "lastName": "Lee"}}
        if same_batch:
            await h.send(first, second)
        else:
            await h.send(first)
            await h.drain()
            await h.send(second)
        await h.send({"type": "track", "userId": "u1", "event": "Moved", "messageId": "t-1"})
        await h.drain()
        (contact,) = await _all_contacts(h)
        assert contact["email"] == "new@x.com" and contact["segment_user_id"] == "u1"
        assert contact["firstname"] == "Ann"
        assert contact["hs_additional_emails"] == ("old@x.com" if not same_batch else None)
        events = (await h.get("/events/v3/events?eventType=pe997086_moved"))["results"]
        assert len(events) == 1
        props = await h.get("/crm/v3/properties/contacts/segment_user_id")
        assert props["hasUniqueValue"] is True  # created on first use, unique
        assert (await h.queue.counts())["web"].delivered == 3
    finally:
        await h.queue.close()


async def test_without_it_a_new_email_is_a_new_contact(h: Harness) -> None:
    await h.send({"type": "identify", "userId": "u1", "traits": {"email": "old@x.com"}})
    await h.drain()
    await h.send({"type": "identify", "userId": "u1", "traits": {"email": "new@x.com"}})
    await h.drain()
    assert sorted(c["email"] for c in await _all_contacts(h)) == ["new@x.com", "old@x.com"]


async def test_messages_without_a_user_id_still_go_by_email(tmp_path: Path) -> None:
    h = await make(tmp_path, user_id_property="segment_user_id")
    try:
        await h.send(
            {"type": "identify", "anonymousId": "a1", "traits": {"email": "anon@x.com", "firstName": "A"}}
        )
        await h.drain()
        (contact,) = await _all_contacts(h)
        assert contact["email"] == "anon@x.com" and contact["segment_user_id"] is None
    finally:
        await h.queue.close()


@pytest.mark.parametrize("empty", ["", None])
async def test_an_empty_or_null_trait_clears_the_property_of_any_type(h: Harness, empty: Any) -> None:
    await h.send(
        {
            "type": "identify",
            "userId": "c@x.com",
            "traits": {"firstName": "Cleo", "trial_ends": "2026-12-01", "beta_user": True, "plan": "pro"},
        }
    )
    await h.drain()
    before = await h.contact("c@x.com", "firstname", "trial_ends", "beta_user", "plan")
    assert before == {"firstname": "Cleo", "trial_ends": "1796083200000", "beta_user": "true", "plan": "pro"}
    await h.send(
        {
            "type": "identify",
            "userId": "c@x.com",
            "traits": {k: empty for k in ("firstName", "trial_ends", "beta_user", "plan")},
        }
    )
    await h.drain()
    after = await h.contact("c@x.com", "firstname", "trial_ends", "beta_user", "plan")
    assert after == {"firstname": None, "trial_ends": None, "beta_user": None, "plan": None}


async def test_delivery_reads_what_the_first_batch_needs_as_it_starts(h: Harness) -> None:
    await h.delivery.warm_up()
    reads = {"GET /crm/properties/2026-09/contacts": 1, "GET /events/2026-09/event-definitions": 1}
    assert h.calls() == reads
    await h.send(
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@x.com"}},
        {"type": "track", "userId": "u1", "event": "Signed Up"},
    )
    await h.drain()
    calls = h.calls()
    assert {k: calls[k] for k in reads} == reads  # not read again by the first batch
    assert calls["POST /events/2026-09/send/batch"] == 1


async def test_a_refused_token_shows_as_delivery_starts(h: Harness) -> None:
    h.delivery.client._headers["Authorization"] = "Bearer revoked"
    await h.delivery.warm_up()
    assert [kind for _, kind, _, _ in h.identity.problems()] == ["http_401"]


async def test_nothing_is_read_ahead_while_paused(h: Harness) -> None:
    h.delivery.pause(True)
    await h.delivery.warm_up()
    assert h.calls() == {}
