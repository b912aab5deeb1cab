"""The console's sign-in: the token once, then a cookie derived from it; refusals for anything
else, and never an error page, whatever is posted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hubspot_relay.access import SESSION_COOKIE, Access
from hubspot_relay.console import console_routes
from hubspot_relay.secrets import Secret

TOKEN = "s3cret-admin-token"


def client(token: str | None = TOKEN) -> TestClient:
    access = Access(Secret(token) if token else None)
    return TestClient(Starlette(routes=console_routes(access)), base_url="https://relay.example")


def test_the_token_signs_in_with_a_cookie_that_is_not_the_token() -> None:
    c = client()
    r = c.post("/admin/sign-in", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    cookie = r.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie
        and "SameSite=strict" in cookie
        and "Secure" in cookie
        and "Path=/admin" in cookie
    )
    assert TOKEN not in cookie
    page = c.get("/admin")
    assert 'src="/admin/console.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("given_token", ["", "wrong", TOKEN + "x", TOKEN.upper()])
def test_anything_else_is_refused(given_token: str) -> None:
    c = client()
    r = c.post("/admin/sign-in", data={"token": given_token}, follow_redirects=False)
    assert r.status_code == 401 and "That is not the admin token" in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert 'id="token"' in c.get("/admin").text  # still the sign-in form


def test_without_a_token_the_console_is_for_this_machine_only() -> None:
    page = client(None).get("/admin")  # the test client is not a loopback peer
    assert "answers on this machine only" in page.text and "disabled" in page.text


def test_a_forged_cookie_is_not_a_session() -> None:
    c = client()
    c.cookies.set(SESSION_COOKIE, "0" * 64, domain="relay.example", path="/admin")
    assert 'id="token"' in c.get("/admin").text


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_form_gets_a_page_never_an_error(body: bytes) -> None:
    r = client().post(
        "/admin/sign-in", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code in (303, 401, 413)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://relay.example", True),  # the page's own origin (Host)
        ("https://relay.public.example", True),  # the public address, behind a proxy that rewrites Host
        ("https://evil.example", False),
        (None, False),
    ],
)
def test_a_change_with_the_cookie_must_come_from_the_consoles_origin(
    origin: str | None, allowed: bool
) -> None:
    from starlette.requests import Request

    access = Access(Secret(TOKEN), public_url="https://relay.public.example")
    assert access.session is not None
    headers = [(b"host", b"relay.example"), (b"cookie", f"{SESSION_COOKIE}={access.session}".encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/admin/api/replay",
        "headers": headers,
        "client": ("10.0.0.9", 1),
    }
    assert (access.admin(Request(scope)) is None) is allowed
