"""Legacy mode, as the seed describes it: API key + Hub ID, contacts v1, the events HTTP API."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.config import RateLimits
from hubspot_relay.sandbox import PortalSettings
from hubspot_relay.sandbox.gateway import peak as _peak
from hubspot_relay.sandbox.limits import Budget
from tests.harness import make

pytestmark = pytest.mark.anyio
KEY = "hapikey=dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"


async def test_the_seeds_examples(tmp_path: Path) -> None:
    h = await make(tmp_path, legacy=True)
    try:
        await h.send(
            # analytics.identify with custom traits: "Favorite Color" arrives as favorite_color
            {
                "type": "identify",
                "userId": "YOUR_USER_ID",
                "traits": {
                    "email": "peter@initech.com",
                    "firstName": "Peter",
                    "Favorite Color": "red",
                    "Shoe Size": 44,
                },
            },
            # analytics.track(user_id='YOUR_USER_ID', event='Bought Item', properties={'email': ...})
            {
                "type": "track",
                "userId": "YOUR_USER_ID",
                "event": "Bought Item",
                "properties": {"email": "peter@initech.com", "revenue": 9.5},
            },
            # ... with context={'traits': {'firstname': 'Peter', 'lastname': 'Gibbons'}}
            {
                "type": "track",
                "userId": "YOUR_USER_ID",
                "event": "Bought Item",
                "properties": {"email": "samir@initech.com"},
                "context": {"traits": {"firstname": "Samir", "lastname": "Nagheenanajar"}},
            },
        )
        await h.drain()
        calls = h.calls()
        assert calls == {
            "GET /properties/v1/contacts/properties": 1,
            "POST /contacts/v1/contact/batch/": 1,
            "GET /v1/event": 2,
        }
        profile = (await h.http.get(f"/contacts/v1/contact/email/peter@initech.com/profile?{KEY}")).json()
        props = {k: v["value"] for k, v in profile["properties"].items()}
        assert (props["firstname"], props["favorite_color"]) == ("Peter", "red")
        assert "shoe_size" not in props and "Shoe Size" not in props  # not a contact property: removed
        events = (await h.http.get("/_sandbox/portals/997086/legacy-events")).json()["results"]
        assert [(e["eventId"], e["email"], e["value"]) for e in events] == [
            ("Bought Item", "peter@initech.com", "9.5"),
            ("Bought Item", "samir@initech.com", None),
        ]
        samir = (await h.http.get(f"/contacts/v1/contact/email/samir@initech.com/profile?{KEY}")).json()
        assert {k: v["value"] for k, v in samir["properties"].items() if k in ("firstname", "lastname")} == {
            "firstname": "Samir",
            "lastname": "Nagheenanajar",
        }
    finally:
        await h.queue.close()


async def test_an_existing_event_id_can_be_used(tmp_path: Path) -> None:
    h = await make(tmp_path, legacy=True, event_names={"Bought Item": "000000123456"})
    try:
        await h.send(
            {"type": "track", "userId": "u", "event": "Bought Item", "properties": {"email": "a@b.com"}}
        )
        await h.drain()
        events = (await h.http.get("/_sandbox/portals/997086/legacy-events")).json()["results"]
        assert [e["eventId"] for e in events] == ["000000123456"]
    finally:
        await h.queue.close()


async def test_5000_messages_within_10_calls_a_second_and_the_daily_quota(tmp_path: Path) -> None:
    portal = PortalSettings(budget=Budget(per_10s=100, per_day=60, per_second=10))
    # the relay knows the account's quota (60 a day here); the portal enforces it too
    h = await make(tmp_path, legacy=True, portal=portal, limits=RateLimits(100, 60, 10))
    try:
        messages = [
            {"type": "identify", "userId": f"u{i}@x.com", "traits": {"firstName": "U"}} for i in range(4900)
        ]
        messages += [{"type": "track", "userId": f"u{i}@x.com", "event": "Signed Up"} for i in range(100)]
        await h.send(*messages)
        await h.drain(max_cycles=200, step=3600)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (5000, 0)  # the daily 429 paused, nothing was lost
        times = [t for t, _, status, *_ in h.sandbox.calls if status != 429]
        assert _peak(times, 1.0) <= 10
        per_day: dict[int, int] = {}
        for t in times:
            per_day[int(t // 86_400)] = per_day.get(int(t // 86_400), 0) + 1
        assert max(per_day.values()) <= 60 and len(per_day) >= 3  # 150 calls at 60 a day: three days
        assert len((await h.http.get("/_sandbox/portals/997086/legacy-events")).json()["results"]) == 100
    finally:
        await h.queue.close()


async def test_values_are_cleared_and_value_is_the_events_m(tmp_path: Path) -> None:
    h = await make(tmp_path, legacy=True)
    try:
        await h.send(
            {
                "type": "identify",
                "userId": "c@x.com",
                "traits": {"firstName": "Cleo", "trial_ends": "2026-12-01", "beta_user": True},
            }
        )
        await h.drain()
        await h.send(
            {
                "type": "identify",
                "userId": "c@x.com",
                "traits": {"trial_ends": "", "beta_user": None, "firstName": ""},
            }
        )
        await h.send({"type": "track", "userId": "c@x.com", "event": "Donated", "properties": {"value": 25}})
        await h.drain()
        profile = (await h.http.get(f"/contacts/v1/contact/email/c@x.com/profile?{KEY}")).json()
        props = {k: v["value"] for k, v in profile["properties"].items()}
        assert "trial_ends" not in props and "beta_user" not in props and "firstname" not in props
        events = (await h.http.get("/_sandbox/portals/997086/legacy-events")).json()["results"]
        assert [(e["eventId"], e["value"]) for e in events] == [("Donated", "25")]
    finally:
        await h.queue.close()
