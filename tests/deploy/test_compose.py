"""deploy/compose.yaml under podman-compose: Redis, two relays and nginx with a self-signed
certificate, with the sandbox override in place of HubSpot. analytics-next in headless Chromium loads
over https through nginx, with the HubSpot plugin, and delivers; one relay killed (`podman kill`)
loses nothing; X-Forwarded-* headers forged by the browser change nothing the relay builds."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_tool
from tests.deploy.support import CONTAINERS_CONF, contacts_in, doc_command, run, wait_http
from tests.helpers import CHROMIUM_ARGS, ROOT, STOCK_SNIPPET_PAGE, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("heavy")]
WRITE_KEY = "wk-compose"
ADMIN_TOKEN = "a-long-admin-token-1234"
DEFAULT_IMAGES = {
    "REDIS_IMAGE": "docker.io/library/redis:7.4-bookworm",
    "NGINX_IMAGE": "docker.io/library/nginx:1.27-bookworm",
}
STANDIN = "localhost/hubspot-relay-services:bookworm"
FORGED = {
    "X-Forwarded-For": "203.0.113.66",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "http",
}


def images() -> dict[str, str]:
    """The official redis and nginx images where they can be had, else the stand-in (the image
    fixture builds it from Debian's packages)."""
    chosen = {}
    for variable, name in DEFAULT_IMAGES.items():
        found = run(f"podman image exists {name} || podman pull -q {name}", check=False).returncode == 0
        chosen[variable] = name if found else STANDIN
    return chosen


class Compose:
    """podman-compose on a copy of deploy/ with its certificate and relay.env, on free ports."""

    def __init__(self, folder: Path) -> None:
        require_tool("podman-compose", "the compose deployment (Debian's podman-compose)")
        shutil.copytree(ROOT / "deploy", folder / "deploy")
        self.cwd = folder
        self.project = f"hrtest{uuid.uuid4().hex[:6]}"
        self.https, self.http, self.sandbox_port = free_port(), free_port(), free_port()
        self.env = {
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            "HTTPS_PORT": str(self.https),
            "HTTP_PORT": str(self.http),
            "SANDBOX_PORT": str(self.sandbox_port),
            **images(),
        }
        self.files = "-f deploy/compose.yaml -f deploy/compose.sandbox.yaml"
        # The documentation's commands: relay.env from its example, a self-signed certificate.
        for start in ("cp deploy/compose/relay.env.example", "mkdir -p deploy/compose/tls", "openssl req"):
            run(doc_command("docs/deploying.md", start), cwd=folder)
        up = doc_command(
            "docs/deploying.md", "podman-compose -f deploy/compose.yaml -f deploy/compose.sandbox.yaml up"
        )
        self.up = up.replace("podman-compose ", f"podman-compose -p {self.project} ", 1)
        with (folder / "deploy/compose/relay.env").open("a") as env:
            env.write(f"HUBSPOT_RELAY_WRITE_KEY={WRITE_KEY}\nHUBSPOT_RELAY_ADMIN_TOKEN={ADMIN_TOKEN}\n")

    def __call__(self, command: str, **kwargs: Any) -> str:
        result = run(
            f"podman-compose -p {self.project} {self.files} {command}", cwd=self.cwd, env=self.env, **kwargs
        )
        return result.stdout

    @property
    def relay_url(self) -> str:
        return f"https://localhost:{self.https}"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"


@pytest.fixture
def compose(image: str, tmp_path: Path) -> Iterator[Compose]:
    c = Compose(tmp_path)
    try:
        run(c.up, cwd=c.cwd, env=c.env, timeout=300)
        wait_http(f"{c.relay_url}/health", verify=False, what="nginx -> the relays", timeout=90)
        wait_http(f"http://127.0.0.1:{c.sandbox_port}/_sandbox/portals", what="the compose sandbox")
        yield c
    finally:
        for service in ("relay-a", "relay-b", "nginx"):
            logs = run(f"podman logs --tail 40 {c.container(service)}", check=False)
            print(f"--- {service}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        c("down -v", check=False, timeout=300)


@pytest.fixture
def site(compose: Compose, tmp_path: Path) -> Iterator[str]:
    """The shop's own origin (plain http on loopback), loading analytics.js from the relay."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(
        STOCK_SNIPPET_PAGE % {"write_key": WRITE_KEY, "relay": compose.relay_url}
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def test_compose_behind_nginx_with_chromium(compose: Compose, site: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = require_tool("chromium", "the browser through nginx (Debian's chromium)")
    standin = (ROOT / "src/hubspot_relay/web/hubspot-standin.js").read_text()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            # Every request the browser makes carries the forged headers, through nginx.
            context = browser.new_context(ignore_https_errors=True, extra_http_headers=FORGED)
            page = context.new_page()
            # hubspot.js itself is HubSpot's, on the internet: a stand-in answers for it here.
            page.route(
                "https://js.hs-scripts.com/**",
                lambda r: r.fulfill(body=standin, content_type="text/javascript"),
            )
            responses: list[tuple[str, int, str]] = []
            page.on(
                "response",
                lambda r: responses.append((r.url, r.status, r.request.headers.get("x-forwarded-host", ""))),
            )
            page.goto(site)
            page.wait_for_function(
                "window.analytics && window.analytics.initialized === true", timeout=30_000
            )
            page.wait_for_function("window.__hsqLog && window.__hsqLog.length >= 1", timeout=15_000)

            settings = page.evaluate(
                f"fetch('{compose.relay_url}/v1/projects/{WRITE_KEY}/settings').then(r => r.json())"
            )
            io = settings["integrations"]["Segment.io"]
            assert (io["protocol"], io["apiHost"]) == ("https", f"localhost:{compose.https}/v1")
            assert settings["remotePlugins"][0]["url"].startswith(f"https://localhost:{compose.https}/")
            plugin = [r for r in responses if r[0].startswith(compose.relay_url) and "plugin" in r[0]]
            assert plugin and plugin[0][1] == 200, responses
            assert all(r[2] == "evil.example" for r in responses if r[0].startswith(compose.relay_url))
            nginx = run(f"podman logs {compose.container('nginx')}").stdout
            chrome = [line for line in nginx.splitlines() if "HeadlessChrome" in line]
            assert chrome and all("HTTP/2.0" in line for line in chrome)  # HTTP/2 from nginx

            # Device mode: hubspot.js gets the identify in the browser (through the plugin), and
            # the relay stores the message and skips it for HubSpot (sent by the browser already).
            page.evaluate("analytics.identify('web-1', {email: 'browser@example.com', firstName: 'Bea'})")
            page.wait_for_function(
                "window.__hsqLog.some(c => c[0] === 'identify' && c[1].email === 'browser@example.com')",
                timeout=15_000,
            )
            assert settled(compose, "delivered by the browser") >= 2  # the page view and the identify
        finally:
            browser.close()
    # The forged address changed nothing: the settings above named the public https address, and
    # directly, without a browser, a forged Forwarded header too.
    direct = httpx.get(
        f"{compose.relay_url}/v1/projects/{WRITE_KEY}/settings",
        headers={**FORGED, "Forwarded": "host=evil.example;proto=http"},
        verify=False,
    ).json()
    assert direct["integrations"]["Segment.io"]["apiHost"] == f"localhost:{compose.https}/v1"


def settled(compose: Compose, reason: str, timeout: float = 60) -> int:
    """How many messages the relays skipped for `reason`, once that many stop changing."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        status = httpx.get(
            f"{compose.relay_url}/admin/api/status",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            verify=False,
        ).json()
        reasons = status["accounts"]["default"].get("skipped_because", {})
        count = sum(n for why, n in reasons.items() if reason in why)
        if count and count == seen:
            return count
        seen = count
        time.sleep(1)
    raise AssertionError(f"no message skipped for {reason!r}: {status}")


def test_one_relay_killed_loses_nothing(compose: Compose, monkeypatch: pytest.MonkeyPatch) -> None:
    """segment-analytics-python over https (the certificate trusted as a team would trust theirs):
    messages before and after `podman kill` of one relay all reach HubSpot."""
    from segment.analytics import Client

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(compose.cwd / "deploy/compose/tls/cert.pem"))
    sandbox = f"http://127.0.0.1:{compose.sandbox_port}"
    client = Client(write_key=WRITE_KEY, host=compose.relay_url, sync_mode=True, max_retries=5)
    before = [f"before-{i}@example.com" for i in range(20)]
    for i, email in enumerate(before):
        client.identify(f"b-{i}", {"email": email})
    run(f"podman kill {compose.container('relay-a')}")
    after = [f"after-{i}@example.com" for i in range(20)]
    for i, email in enumerate(after):
        client.identify(f"a-{i}", {"email": email})
    client.flush()
    contacts_in(sandbox, before + after, timeout=120)
