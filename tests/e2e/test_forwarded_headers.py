"""Forwarded headers through the real server (uvicorn, as `serve` runs it): believed from a peer
in `trusted_proxies` only. uvicorn's own proxy handling believes them from loopback by default,
before the relay could check; it is off. Requests here come from 127.0.0.1, which is not a
trusted proxy (the proxies are 10.0.0.0/8); the in-process tests in tests/unit/test_admin.py
cover a trusted proxy and an untrusted remote address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import RelayProcess

pytestmark = pytest.mark.e2e

WK = "wk-forwarded"


def plugin_url(relay: RelayProcess, headers: dict[str, str]) -> Any:
    r = httpx.get(f"{relay.url}/v1/projects/{WK}/settings", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["remotePlugins"][0]["url"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "http://{host}/plugins/hubspot.js"),
        (
            {"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
            "http://{host}/plugins/hubspot.js",
        ),
        ({"X-Forwarded-Proto": "https"}, "http://{host}/plugins/hubspot.js"),
        ({"Forwarded": "for=10.1.2.3;proto=https;host=evil.example"}, "http://{host}/plugins/hubspot.js"),
    ],
)
def test_loopback_is_not_a_trusted_proxy(tmp_path: Path, headers: dict[str, str], expected: str) -> None:
    env = {"HUBSPOT_RELAY_WRITE_KEY": WK, "HUBSPOT_RELAY_TRUSTED_PROXIES": "10.0.0.0/8"}
    with RelayProcess(tmp_path, env=env, args=("--no-deliver",)) as relay:
        host = f"127.0.0.1:{relay.port}"
        assert plugin_url(relay, headers) == expected.format(host=host)
        # a loopback peer relaying someone else's request is not local: no admin data without a token
        status = httpx.get(f"{relay.url}/admin/api/status", headers=headers).status_code
        assert status == (200 if "X-Forwarded-For" not in headers and "Forwarded" not in headers else 403)
