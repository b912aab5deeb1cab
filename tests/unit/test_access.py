"""Forwarded headers: what a trusted proxy says of the client's protocol and host, and that
nobody else is believed (tables; the real server's side is tests/e2e/test_forwarded_headers.py)."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hubspot_relay.access import Access, Forwarded, parse_forwarded
from hubspot_relay.console import console_routes
from hubspot_relay.secrets import Secret


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Forwarded(None, None)),
        (
            {"x-forwarded-proto": "https", "x-forwarded-host": "relay.example"},
            Forwarded("https", "relay.example"),
        ),
        (
            {"x-forwarded-proto": "HTTPS, http", "x-forwarded-host": "a.example, b"},
            Forwarded("https", "a.example"),
        ),
        ({"x-forwarded-proto": "gopher"}, Forwarded(None, None)),
        (
            {"forwarded": "for=203.0.113.9;proto=https;host=relay.example"},
            Forwarded("https", "relay.example"),
        ),
        (
            {"forwarded": 'for="[2001:db8::1]:4711";Proto=https;Host="r.example:8443"'},
            Forwarded("https", "r.example:8443"),
        ),
        ({"forwarded": "for=1.2.3.4;proto=https, for=10.0.0.2;proto=http"}, Forwarded("https", None)),
        (  # Forwarded wins when both are sent
            {"forwarded": "proto=http;host=a.example", "x-forwarded-proto": "https", "x-forwarded-host": "b"},
            Forwarded("http", "a.example"),
        ),
        ({"forwarded": "garbage;;=;x"}, Forwarded(None, None)),
    ],
)
def test_what_a_proxy_says(headers: dict[str, str], expected: Forwarded) -> None:
    assert parse_forwarded(headers) == expected


PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
SAYS_HTTPS = {"X-Forwarded-Proto": "https", "Forwarded": "proto=https"}


@pytest.mark.parametrize(
    ("peer", "secure"),
    [
        ("10.0.0.7", True),  # a trusted proxy: the client used https
        ("127.0.0.1", False),  # loopback is not a proxy unless configured as one
        ("203.0.113.9", False),  # anyone else
    ],
)
def test_the_consoles_cookie_is_secure_on_a_trusted_proxys_word_only(peer: str, secure: bool) -> None:
    access = Access(Secret("tok"), PROXIES)
    app = Starlette(routes=console_routes(access))
    with TestClient(app, base_url="http://relay.internal", client=(peer, 5000)) as c:
        r = c.post("/admin/sign-in", data={"token": "tok"}, headers=SAYS_HTTPS, follow_redirects=False)
    assert r.status_code == 303
    assert ("Secure" in r.headers["set-cookie"]) is secure
