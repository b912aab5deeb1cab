"""A default installation against portals that serve different published spellings of HubSpot's
2026-09 custom-event paths, driven by segment-analytics-python: the relay asks the portal which it
serves, delivers there and says so in `status`; against a portal serving none, the problem is shown
and nothing is dead-lettered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.e2e.test_cli import cli
from tests.helpers import RelayProcess, SandboxProcess, wait_delivered

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-paths"


def send(relay: RelayProcess) -> None:
    analytics = Client(WRITE_KEY, host=relay.url, sync_mode=True)
    analytics.identify("u1", {"email": "ann@x.com", "firstName": "Ann"})
    analytics.track("u1", "Plan Chosen", {"plan": "pro"})
    analytics.track("u1", "Plan Chosen", {"plan": "team"})
    analytics.flush()


def env_for(sandbox: SandboxProcess) -> dict[str, str]:
    return {
        "HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY,
        "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox.url,
    }


def status(relay: RelayProcess) -> tuple[dict[str, object], str]:
    env = {"HUBSPOT_RELAY_URL": relay.url, "HUBSPOT_RELAY_DATA_DIR": str(relay.data_dir)}
    report = json.loads(cli("status", "--json", env=env).stdout)
    return report["accounts"]["default"], cli("status", env=env).stdout


@pytest.mark.parametrize("served", ["/events/2026-09", "/events/custom/2026-09"])
def test_events_go_where_the_portal_serves_them(tmp_path: Path, served: str) -> None:
    sandbox = SandboxProcess("--event-paths", f"2026-09={served}")
    try:
        with RelayProcess(tmp_path / "data", env=env_for(sandbox)) as relay:
            send(relay)
            assert wait_delivered(relay, 3) == {"delivered": 3, "dead": 0, "other": 0}
            account, table = status(relay)
            assert account["api_version"] == "2026-09" and account["auth"] == "private app token"
            assert account["paths"]["custom_events"] == served  # type: ignore[index]
            assert f"custom events at {served}" in table
        calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
        assert calls[f"POST {served}/send/batch"].get("204", 0) >= 1
        elsewhere = [k for k in calls if k.startswith("POST /events") and not k.startswith(f"POST {served}/")]
        assert elsewhere == []
        events = httpx.get(
            f"{sandbox.url}/events/v3/events",
            params={"eventType": "pe997086_plan_chosen"},
            headers={"Authorization": "Bearer sandbox-token"},
        ).json()["results"]
        assert [e["properties"]["plan"] for e in events] == ["pro", "team"]
    finally:
        sandbox.stop()


def test_a_portal_serving_none_shows_the_problem_and_keeps_the_events(tmp_path: Path) -> None:
    sandbox = SandboxProcess("--event-paths", "2026-09=")
    try:
        with RelayProcess(tmp_path / "data", env=env_for(sandbox)) as relay:
            send(relay)
            deadline = time.monotonic() + 30
            while True:
                account, table = status(relay)
                kinds = [p["kind"] for p in account["problems"]]  # type: ignore[union-attr]
                if "unserved_path" in kinds or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert "unserved_path" in kinds and "api_version" in table
            assert "custom events: no published path answered yet" in table
            counts = wait_delivered(relay, 1)
            assert counts["delivered"] == 1 and counts["dead"] == 0  # the identify went; the tracks wait
            time.sleep(2)
            assert wait_delivered(relay, 1)["dead"] == 0
            assert account["retrying"] + account["queued"] + account["in_flight"] >= 2  # type: ignore[operator]
        calls = httpx.get(f"{sandbox.url}/_sandbox/calls").json()["by_endpoint"]
        assert [k for k in calls if k.startswith("POST /events")] == []  # nothing sent to an unanswered path
        asked = ("/events/2026-09", "/events/custom/2026-09", "/events/v3/2026-09")
        assert all(calls[f"GET {p}/event-definitions"].get("404", 0) >= 1 for p in asked)
    finally:
        sandbox.stop()
