"""Device mode in headless Chromium: the real @segment/analytics-next (from npm), loaded by a page on
another origin with the stock-snippet pattern, fetching its settings and our HubSpot plugin from the
relay; a local stand-in for hubspot.js records every _hsq command."""

from __future__ import annotations

import http.server
import sqlite3
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import require_tool
from tests.helpers import CHROMIUM_ARGS, ROOT, STOCK_SNIPPET_PAGE, RelayProcess, SandboxProcess, free_port

pytestmark = pytest.mark.e2e
WRITE_KEY = "wk-browser"


def shop_page(relay: str) -> str:
    return STOCK_SNIPPET_PAGE % {"write_key": WRITE_KEY, "relay": relay}


ANALYTICS_JS = (
    ROOT / "assets" / "analytics-js" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return require_tool("chromium", "the device-mode browser tests (Debian's chromium)")


@pytest.fixture
def relay(data_dir: Path) -> Iterator[RelayProcess]:
    if not (ANALYTICS_JS / "standalone.js").exists():
        pytest.fail(f"{ANALYTICS_JS} is missing: make test installs it (assets/analytics-js)")
    env = {"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY, "HUBSPOT_RELAY_ANALYTICS_JS_DIR": str(ANALYTICS_JS)}
    with RelayProcess(data_dir, env=env) as r:
        yield r


@pytest.fixture
def site(tmp_path: Path, relay: RelayProcess) -> Iterator[str]:
    """The shop's own origin, serving the page (another port: another origin than the relay)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(shop_page(relay.url))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def hsq_log(page: Any) -> list[Any]:
    return list(page.evaluate("window.__hsqLog || []"))


def wait_for(page: Any, count: int) -> list[Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = hsq_log(page)
        if len(log) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"_hsq got {hsq_log(page)}, expected {count} commands")


def stored(relay: RelayProcess) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{relay.queue_path}?mode=ro", uri=True) as db:
        return [orjson.loads(r[0]) for r in db.execute("SELECT body FROM messages ORDER BY id")]


def test_analytics_next_with_the_hubspot_plugin(chromium_path: str, relay: RelayProcess, site: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(site)
            page.wait_for_function(
                "window.analytics && window.analytics.initialized === true", timeout=20_000
            )

            # the first page: hubspot.js counts it when it loads, the plugin adds nothing
            assert wait_for(page, 1) == [["(automatic page view)", "/index.html"]]
            # identify without an email: nothing for HubSpot (the seed: an email is required)
            page.evaluate("analytics.identify('u-1', {firstName: 'Ann'})")
            time.sleep(0.3)
            assert len(hsq_log(page)) == 1
            # identify with an email: queued with normalized traits, sent with the next page view
            page.evaluate("""analytics.identify('u-1', {email: 'peter@initech.com', firstName: 'Peter',
                'Favorite Color': 'red', company: {name: 'Initech'}, createdAt: '2026-01-01T00:00:00Z',
                address: {city: 'Austin', postalCode: '78701'}, tags: ['a', 'b'], nothing: null})""")
            page.evaluate("analytics.page({path: '/pricing'})")
            log = wait_for(page, 4)
            assert log[1:4] == [
                [
                    "identify",
                    {
                        "email": "peter@initech.com",
                        "firstname": "Peter",
                        "favorite_color": "red",
                        "company": "Initech",
                        "createdate": 1767225600000,
                        "city": "Austin",
                        "zip": "78701",
                        "tags": "a;b",
                    },
                ],
                ["setPath", "/pricing"],
                ["trackPageView"],
            ]
            # track: a custom behavioral event with HubSpot's name and normalized properties
            page.evaluate(
                "analytics.track('Bought Item', {revenue: 9.5, 'Gift Wrap': true, shipping: {cost: 5}})"
            )
            log = wait_for(page, 5)
            assert log[4] == [
                "trackCustomBehavioralEvent",
                {
                    "name": "pe997086_bought_item",
                    "properties": {"gift_wrap": True, "revenue": 9.5, "shipping_cost": 5},
                },
            ]
            assert not [c for c in console if "hubspot-relay" in c]  # no snippet warning: none on this page
        finally:
            browser.close()

    # the cloud copies reached the relay, marked as delivered by the browser...
    deadline = time.monotonic() + 15
    while len(stored(relay)) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    messages = stored(relay)
    assert sorted(m["type"] for m in messages) == ["identify", "identify", "page", "page", "track"]
    assert all("HubSpot" in m["_metadata"]["bundled"] for m in messages)
    assert all(m["context"]["library"]["name"] == "analytics.js" for m in messages)
    # ...and were not sent to HubSpot (the sandbox) a second time
    time.sleep(1.0)
    calls = httpx.get(f"http://127.0.0.1:{relay.sandbox_port}/_sandbox/calls").json()
    assert not [k for k in calls["by_endpoint"] if "batch/upsert" in k or "/send/batch" in k]


def test_existing_hubspot_snippet_is_reused_with_a_warning(
    chromium_path: str, relay: RelayProcess, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    root = tmp_path / "site2"
    root.mkdir()
    existing = f'<script id="hs-script-loader" src="{relay.url}/demo/hubspot-standin.js"></script>'
    (root / "index.html").write_text(shop_page(relay.url).replace("<body>", "<body>" + existing))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            warnings: list[str] = []
            page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function(
                "window.analytics && window.analytics.initialized === true", timeout=20_000
            )
            page.evaluate("analytics.track('Signed Up')")
            log = wait_for(page, 2)
            assert log[0][0] == "(automatic page view)" and log[1][0] == "trackCustomBehavioralEvent"
            loaders = page.evaluate("document.querySelectorAll('script[src*=\"hubspot-standin\"]').length")
            assert loaders == 1  # not loaded a second time
            assert sum("HubSpot's own snippet is on this page" in w for w in warnings) == 1
            browser.close()
    finally:
        server.shutdown()


def test_hubspot_js_waits_for_end_user_consent(chromium_path: str, data_dir: Path, tmp_path: Path) -> None:
    """A source mapped to the Marketing consent category: while the page's events refuse it,
    hubspot.js is not loaded and _hsq is not touched; the first event that grants it loads
    hubspot.js, and that event and the next ones reach _hsq. The refused events do not reach
    HubSpot through the relay either."""
    from playwright.sync_api import sync_playwright

    sandbox = SandboxProcess()
    relay = RelayProcess(data_dir, env={"HUBSPOT_RELAY_ANALYTICS_JS_DIR": str(ANALYTICS_JS)})
    config = tmp_path / "relay.toml"
    config.write_text(f"""
[[accounts]]
name = "shop"
hub_id = 997086
access_token = "sandbox-token"
api_base = "{sandbox.url}"
options = {{ browser_script_url = "http://127.0.0.1:{relay.port}/demo/hubspot-standin.js" }}

[[sources]]
name = "web"
write_key = "{WRITE_KEY}"
account = "shop"
consent_categories = ["Marketing"]
""")
    relay.args = ("--config", str(config))
    root = tmp_path / "site3"
    root.mkdir()
    no_first_page = shop_page(relay.url).replace("a.page()\n", "")
    (root / "index.html").write_text(no_first_page)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refused = "{context: {consent: {categoryPreferences: {Marketing: false, Analytics: true}}}}"
    granted = "{context: {consent: {categoryPreferences: {Marketing: true}}}}"
    loaders = "document.querySelectorAll('script[src*=\"hubspot-standin\"]').length"
    try:
        with relay, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function(
                "window.analytics && window.analytics.initialized === true", timeout=20_000
            )
            page.evaluate(f"analytics.track('Viewed Plans', {{}}, {refused})")
            page.evaluate(f"analytics.identify('u-1', {{email: 'ann@x.com'}}, {refused})")
            time.sleep(1.0)
            assert page.evaluate(loaders) == 0 and page.evaluate("typeof window._hsq") == "undefined"
            page.evaluate(f"analytics.track('Chose Plan', {{plan: 'pro'}}, {granted})")
            log = wait_for(page, 2)
            assert page.evaluate(loaders) == 1
            # hubspot.js, loaded now, counts the page it loads on and runs what was queued for it
            assert [c[0] for c in log].count("(automatic page view)") == 1
            assert [
                "trackCustomBehavioralEvent",
                {"name": "pe997086_chose_plan", "properties": {"plan": "pro"}},
            ] in log
            assert len(log) == 2  # nothing of the refused identify and track
            browser.close()
            deadline = time.monotonic() + 15
            while len(stored(relay)) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(m["event"] for m in stored(relay) if m["type"] == "track") == [
                "Chose Plan",
                "Viewed Plans",
            ]
    finally:
        server.shutdown()
        sandbox.stop()
