"""Legacy mode end to end, with the seed's own Python examples sent by segment-analytics-python."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.helpers import RelayProcess, SandboxProcess, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-legacy"
API_KEY = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"


def legacy_env(sandbox: SandboxProcess) -> dict[str, str]:
    return {
        "HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY,
        "HUBSPOT_API_KEY": API_KEY,
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox.url,
        "HUBSPOT_TRACK_BASE": sandbox.url,
    }


@pytest.fixture
def sandbox() -> Iterator[SandboxProcess]:
    s = SandboxProcess("--limit-1s", "10")
    yield s
    s.stop()


def test_the_seeds_python_examples(sandbox: SandboxProcess, data_dir: Path) -> None:
    env = legacy_env(sandbox)
    with RelayProcess(data_dir, env=env) as relay:
        analytics = Client(WRITE_KEY, host=relay.url, sync_mode=True)
        analytics.identify(
            "YOUR_USER_ID",
            {
                "email": "peter@initech.com",
                "firstName": "Peter",
                "Favorite Color": "red",
                "Internal Score": 7,
            },
        )
        analytics.track(
            user_id="YOUR_USER_ID", event="Bought Item", properties={"email": "peter@initech.com"}
        )
        analytics.track(
            user_id="YOUR_USER_ID",
            event="Bought Item",
            properties={"email": "peter@initech.com"},
            context={"traits": {"firstname": "Peter", "lastname": "Gibbons"}},
        )
        assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
        assert "[API legacy, API key]" in relay.log()
        assert API_KEY not in relay.log()  # the key is masked wherever it would appear

    calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()
    assert set(calls["by_endpoint"]) == {
        "GET /properties/v1/contacts/properties",
        "POST /contacts/v1/contact/batch/",
        "GET /v1/event",
    }
    assert calls["peak_1s"] <= 10 and calls["by_status"].get("429", 0) == 0
    profile = httpx.get(
        f"{sandbox.url}/contacts/v1/contact/email/peter@initech.com/profile", params={"hapikey": API_KEY}
    ).json()
    props = {k: v["value"] for k, v in profile["properties"].items()}
    assert (props["firstname"], props["lastname"], props["favorite_color"]) == ("Peter", "Gibbons", "red")
    assert "internal_score" not in props
    events = httpx.get(f"{sandbox.url}/_sandbox/portals/997086/legacy-events").json()["results"]
    assert [(e["eventId"], e["email"]) for e in events] == [("Bought Item", "peter@initech.com")] * 2
    assert events[1]["properties"] == {"firstname": "Peter", "lastname": "Gibbons"}


def test_5000_queued_messages_never_exceed_10_calls_a_second(sandbox: SandboxProcess, data_dir: Path) -> None:
    env = legacy_env(sandbox)
    messages = [
        {"type": "identify", "userId": f"l{i}@x.com", "traits": {"firstName": "L"}} for i in range(4950)
    ]
    messages += [{"type": "track", "userId": f"l{i}@x.com", "event": "Signed Up"} for i in range(50)]
    with RelayProcess(data_dir, env=env) as relay:
        for start in range(0, len(messages), 100):
            r = httpx.post(
                f"{relay.url}/v1/batch", json={"batch": messages[start : start + 100]}, auth=(WRITE_KEY, "")
            )
            assert r.status_code == 200
        assert wait_delivered(relay, 5000, timeout=120) == {"delivered": 5000, "dead": 0, "other": 0}
    calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()
    assert calls["peak_1s"] <= 10 and calls["by_status"].get("429", 0) == 0
    assert calls["by_endpoint"]["GET /v1/event"] == {"200": 50}
