"""The operator's console in headless Chromium: sign-in (and refusal), the dashboard with real
data from Segment's Python SDK, a dead letter replayed from the page, the live debugger, and the
event tester showing requests without sending them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from segment.analytics import Client

from tests.conftest import require_tool
from tests.helpers import RelayProcess

pytestmark = pytest.mark.e2e

TOKEN = "console-test-token-4b1f"
WRITE_KEY = "console-write-key"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    env = {"HUBSPOT_RELAY_ADMIN_TOKEN": TOKEN, "HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY}
    with RelayProcess(tmp_path_factory.mktemp("console"), env=env) as r:
        errors: list[str] = []
        client = Client(WRITE_KEY, host=r.url, on_error=lambda e, b: errors.append(str(e)))
        for i in range(30):
            client.identify(f"user{i}", {"email": f"user{i}@example.com", "firstName": f"U{i}"})
            client.track(f"user{i}", "Signed Up", {"seats": i})
        client.identify("gold", {"email": "gold@example.com", "plan": "gold"})  # HubSpot refuses the option
        client.flush()
        client.shutdown()
        assert not errors
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = api(r, "/admin/api/status")["sources"]["default"]
            if counts["delivered"] + counts["dead"] >= 61:
                break
            time.sleep(0.2)
        yield r


def api(relay: RelayProcess, path: str) -> Any:
    return httpx.get(f"{relay.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}).json()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = require_tool("chromium", "the console's browser tests (Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=path,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, relay: RelayProcess) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(  # (a 400 is the tester's answer to the invalid message a test pastes)
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "status of 400" not in m.text else None,
    )
    page.goto(f"{relay.url}/admin")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#accounts .account")
    yield page
    context.close()
    assert not problems, problems  # no script error, no refused resource (CSP), no 404


def test_sign_in_is_required_and_a_wrong_token_is_refused(browser: Any, relay: RelayProcess) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{relay.url}/admin")
    assert response.status == 200 and page.is_visible("#token") and not page.is_visible("#accounts")
    assert httpx.get(f"{relay.url}/admin/api/status").status_code == 401
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "That is not the admin token" in page.inner_text("#message")
    assert not context.cookies()
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#accounts .account")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    page.click("text=Sign out")
    page.wait_for_selector("#token")
    context.close()


def test_a_cookie_alone_cannot_change_anything_from_another_origin(relay: RelayProcess) -> None:
    with httpx.Client(base_url=relay.url) as http:
        r = http.post("/admin/sign-in", data={"token": TOKEN})
        assert r.status_code == 303
        assert http.get("/admin/api/status").status_code == 200  # a read with the cookie
        forged = http.post("/admin/api/accounts/sandbox/pause", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 401
        assert http.post("/admin/api/replay", json={}).status_code == 401  # no Origin: refused too


def test_the_dashboard_shows_sources_accounts_and_charts_with_real_data(page: Any) -> None:
    row = page.locator("#sources tr[data-source=default] td")
    cells = row.all_inner_texts()
    assert cells[0] == "default" and cells[1] == "sandbox"
    assert int(cells[5].replace(",", "")) == 60 and cells[8] == "1"  # delivered, dead
    received = page.inner_text(".chart[data-series=received] .total")
    assert int(received.replace(",", "")) >= 61
    assert page.locator(".chart svg polyline").count() == 6
    assert "POST /crm/objects/2026-09/contacts/batch/upsert" in page.inner_text("#endpoints")
    assert "calls today" in page.inner_text("#accounts")


def test_pause_and_resume_an_account_from_the_page(page: Any, relay: RelayProcess) -> None:
    page.click(".account button[data-account=sandbox]")
    page.wait_for_selector("text=Paused by an operator")
    assert api(relay, "/admin/api/status")["accounts"]["sandbox"]["paused"] is True
    page.click(".account button[data-account=sandbox]")
    page.wait_for_selector("text=No problems.")
    assert api(relay, "/admin/api/status")["accounts"]["sandbox"]["paused"] is False


def test_a_dead_letter_shows_its_reason_and_is_replayed_from_the_page(page: Any, relay: RelayProcess) -> None:
    page.click("nav button[data-tab=dead]")
    group = page.locator("details.dead-group").first
    group.wait_for()
    assert "INVALID_OPTION" in group.inner_text()
    group.locator("summary").first.click()
    letter = group.locator("details.dead-letter").first
    letter.locator("summary").click()
    assert '"plan": "gold"' in letter.locator("pre").inner_text()
    (before,) = api(relay, "/admin/api/dead-letters")["dead_letters"]
    group.locator(".replay-one").first.click()
    page.wait_for_selector(".replayed")
    assert "Re-queued 1 message" in page.inner_text(".replayed")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # it fails again (HubSpot still refuses): back with its reason
        dead = api(relay, "/admin/api/dead-letters")["dead_letters"]
        if dead and dead[0]["failed_at"] > before["failed_at"]:
            break
        time.sleep(0.2)
    assert len(dead) == 1 and dead[0]["failed_at"] > before["failed_at"]
    assert dead[0]["messageId"] == before["messageId"] and "INVALID_OPTION" in dead[0]["reason"]


def test_the_live_debugger_shows_what_each_message_became(page: Any) -> None:
    page.click("nav button[data-tab=debugger]")
    page.wait_for_selector("#messages tbody tr")
    text = page.inner_text("#messages")
    assert "POST /crm/objects/2026-09/contacts/batch/upsert → 200" in text
    assert "POST /events/2026-09/send/batch → 204" in text or "POST /events/2026-09/send/batch → 200" in text
    assert "delivered" in text


def test_the_event_tester_shows_the_requests_and_sends_nothing(page: Any, relay: RelayProcess) -> None:
    sandbox = f"http://127.0.0.1:{relay.sandbox_port}"
    before = httpx.get(f"{sandbox}/_sandbox/calls").json()["total"]
    queued_before = api(relay, "/admin/api/status")["sources"]["default"]
    page.click("nav button[data-tab=tester]")
    page.fill(
        "#tester-message",
        '{"type": "track", "userId": "user1", "event": "Plan Upgraded", "properties": {"plan": "pro"}}',
    )
    page.click("#tester-preview")
    page.wait_for_selector("#tester-outcome")
    result = page.inner_text("#tester-result")
    assert "It would be delivered" in result
    assert "/events/2026-09/send/batch" in result and '"eventName": "pe997086_plan_upgraded"' in result
    assert '"email": "user1@example.com"' in result  # the identity map was read
    after = httpx.get(f"{sandbox}/_sandbox/calls").json()
    writes = [k for k in after["by_endpoint"] if k.startswith("POST")]
    assert after["total"] - before <= 1  # at most the definitions read, never a write
    assert sum(after["by_endpoint"][k].get("201", 0) for k in writes if "definitions" in k) <= 1
    now = api(relay, "/admin/api/status")["sources"]["default"]
    assert sum(now[k] for k in ("queued", "delivered", "dead")) == sum(
        queued_before[k] for k in ("queued", "delivered", "dead")
    )
    page.fill("#tester-message", '{"type": "track"}')
    page.click("#tester-preview")
    page.wait_for_selector("#tester-outcome.error")
    assert "requires 'userId' or 'anonymousId'" in page.inner_text("#tester-result")
