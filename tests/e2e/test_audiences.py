"""Audiences, consent and subscriptions end to end, with segment-analytics-python against the
sandbox at HubSpot's pace (300 ms a call), read back with hubspot-sdk: 1,000 contacts enter an
audience and 300 leave it, half in each shape, and end in the right list in a handful of
membership calls; a stream with mixed consent reaches HubSpot exactly where it is granted;
unsubscribes and resubscribes read back through the communication-preferences endpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubspot_sdk import HubSpot
from segment.analytics import Client

from tests.helpers import RelayProcess, SandboxProcess, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-audiences"
PERSONAS = {"computation_class": "audience", "computation_key": "trial_users", "space_id": "spa_1"}


def config(tmp_path: Path, sandbox: SandboxProcess) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(f"""
[[accounts]]
name = "shop"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{sandbox.url}"
tier = "enterprise"

[accounts.subscriptions]
unsubscribe_events = ["Unsubscribed"]
subscribe_events = ["Subscribed"]
subscription_id = 1

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "shop"
consent_categories = ["Marketing"]
""")
    return path


def enter(client: Client, i: int, member: bool) -> None:
    user, email = f"u{i}", f"u{i}@example.com"
    if i % 2 == 0:  # the identify shape
        client.identify(user, {"email": email, "trial_users": member}, context={"personas": PERSONAS})
    else:  # the track shape
        client.track(
            user,
            "Audience Entered" if member else "Audience Exited",
            {"audience_key": "trial_users", "trial_users": member},
            context={"personas": PERSONAS, "traits": {"email": email}},
        )


def test_audiences_consent_and_subscriptions(tmp_path: Path) -> None:
    sandbox = SandboxProcess()
    httpx.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [{"match": "*", "latency_ms": 300}]})
    try:
        with RelayProcess(tmp_path / "data", args=("--config", str(config(tmp_path, sandbox)))) as relay:
            client = Client(WRITE_KEY, host=relay.url, max_queue_size=20_000, upload_size=100)
            for i in range(1000):
                enter(client, i, True)
            client.flush()
            assert wait_delivered(relay, 1000, timeout=120) == {"delivered": 1000, "dead": 0, "other": 0}
            for i in range(300):
                enter(client, i, False)
            # consent: 40 tracks, the 20 that grant Marketing reach HubSpot
            for i in range(40):
                prefs: dict[str, Any] = {"Marketing": i % 2 == 0, "Analytics": True}
                client.track(
                    f"c{i}",
                    "Consent Check",
                    {"email": f"c{i}@example.com"},
                    context={"consent": {"categoryPreferences": prefs}},
                )
            # subscriptions: 5 unsubscribe, then 2 of them subscribe again
            for i in range(5):
                client.track(f"s{i}", "Unsubscribed", {"email": f"s{i}@example.com"})
            client.flush()
            for i in range(2):
                client.track(f"s{i}", "Subscribed", {"email": f"s{i}@example.com"})
            client.flush()
            total = 1000 + 300 + 40 + 5 + 2
            counts = wait_delivered(relay, total - 20, timeout=120)
            assert counts["dead"] == 0
            time.sleep(2)

        calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
        httpx.post(f"{sandbox.url}/_sandbox/faults", json={"rules": []})  # reading back: no latency
        hs = HubSpot(access_token="sandbox-token", base_url=sandbox.url, max_retries=0)
        found = hs.crm.lists.with_raw_response.get_by_object_type_and_name(
            "trial_users", object_type_id="0-1"
        ).json()
        ids = sorted(
            m.record_id for m in hs.crm.lists.list_memberships(found["list"]["listId"], limit=2000).results
        )
        emails = set()
        for start in range(0, len(ids), 100):
            read = hs.crm.objects.contacts.batch.get(
                inputs=[{"id": i} for i in ids[start : start + 100]],
                properties=["email"],
                properties_with_history=[],
            )
            emails |= {r.properties["email"] for r in read.results}
        assert emails == {f"u{i}@example.com" for i in range(300, 1000)}
        membership_calls = sum(calls["PUT /crm/lists/2026-09/{id}/memberships/add-and-remove"].values())
        print(f"audience figures: 1,300 memberships in {membership_calls} calls (minimum 2)")
        assert membership_calls <= 10

        events = hs.events.occurrences.list(
            object_type="contact", event_type="pe997086_consent_check", limit=100
        )
        assert (
            sorted(e.properties.get("email", "") or e.object_id for e in events.results)
            and len(events.results) == 20
        )

        for i, expected in [(0, "SUBSCRIBED"), (1, "SUBSCRIBED"), (2, "UNSUBSCRIBED"), (4, "UNSUBSCRIBED")]:
            statuses = hs.communication_preferences.get_statuses(f"s{i}@example.com", channel="EMAIL")
            assert [(s.subscription_id, s.status) for s in statuses.results] == [(1, expected)]
        hs.close()
    finally:
        sandbox.stop()
