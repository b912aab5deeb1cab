"""OAuth apps: the configuration (file and environment), the sandbox's token endpoint as HubSpot
answers it, and one refresh for every process that shares the tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from hubspot_relay.config import load_env, load_file, sandbox_account
from hubspot_relay.credentials import OAuthApp
from hubspot_relay.errors import ConfigError
from hubspot_relay.hubspot.errors import HubSpotError, Kind
from hubspot_relay.hubspot.oauth import OAuthSession, SharedTokens
from hubspot_relay.sandbox import PortalSettings, create_sandbox_app
from hubspot_relay.secrets import Secret

# the refresh-token grant as the relay sends it for APP's install
FORM = {
    "grant_type": "refresh_token",
    "client_id": "app-1",
    "client_secret": "s3cret",
    "refresh_token": "r-1",
}
APP = {"client_id": "app-1", "client_secret": "s3cret", "refresh_tokens": ["r-1"], "token_lifetime_s": 60}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def write(tmp_path: Path, oauth: str, extra: str = "") -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(
        f"""
[[accounts]]
name = "agency-client"
hub_id = 123
{extra}
[accounts.oauth]
{oauth}

[[sources]]
name = "web"
write_key = "wk"
account = "agency-client"
"""
    )
    return path


def test_an_oauth_account_from_a_file_with_its_secrets_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'client_id = "app-1"\nclient_secret = "${SECRET}"\nrefresh_token = "${REFRESH}"')
    config = load_file(path, env={"SECRET": "s3cret", "REFRESH": "r-1"})
    account = config.accounts[0]
    assert account.oauth == OAuthApp("app-1", Secret("s3cret"), Secret("r-1"))
    assert account.api_mode == "v3" and account.access_token is None
    assert account.limits.per_10s == 110  # per app and portal
    assert account.auth == "OAuth app app-1"
    assert "s3cret" not in repr(account) and "r-1" not in repr(account)


@pytest.mark.parametrize(
    ("oauth", "extra", "message"),
    [
        ('client_id = "a"\nclient_secret = "b"', "", "refresh_token"),
        ('client_id = "a b"\nclient_secret = "b"\nrefresh_token = "c"', "", "one word"),
        ('client_id = "a"\nclient_secret = "b"\nrefresh_token = "c"', 'access_token = "pat-1"', "not both"),
    ],
)
def test_an_oauth_table_that_cannot_work_is_refused(
    tmp_path: Path, oauth: str, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_file(write(tmp_path, oauth, extra), env={})


def test_an_oauth_account_from_the_environment() -> None:
    env = {
        "HUBSPOT_HUB_ID": "123",
        "HUBSPOT_RELAY_WRITE_KEY": "wk",
        "HUBSPOT_OAUTH_CLIENT_ID": "app-1",
        "HUBSPOT_OAUTH_CLIENT_SECRET": "s3cret",
        "HUBSPOT_OAUTH_REFRESH_TOKEN": "r-1",
    }
    account = load_env(env).accounts[0]
    assert account.oauth is not None and account.oauth.client_id == "app-1"
    with pytest.raises(ConfigError, match="HUBSPOT_OAUTH_REFRESH_TOKEN"):
        load_env({k: v for k, v in env.items() if k != "HUBSPOT_OAUTH_REFRESH_TOKEN"})


@pytest.fixture
def sandbox() -> tuple[TestClient, Clock]:
    clock = Clock()
    return TestClient(create_sandbox_app([PortalSettings(oauth_apps=(APP,))], clock=clock)), clock


@pytest.mark.parametrize(
    "path", ["/oauth/v1/token", "/oauth/v3/token", "/oauth/2026-03/token", "/oauth/2026-09/token"]
)
def test_the_sandbox_grants_at_every_published_token_path(
    sandbox: tuple[TestClient, Clock], path: str
) -> None:
    api, clock = sandbox
    answer = api.post(path, data=FORM)
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == 60 and body["refresh_token"] == "r-1"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.get("/crm/objects/2026-09/contacts", headers=auth).status_code == 200
    clock.now += 61
    expired = api.get("/crm/objects/2026-09/contacts", headers=auth)
    assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"refresh_token": "nope"}, "BAD_REFRESH_TOKEN"),
        ({"client_secret": "wrong"}, "BAD_CLIENT_SECRET"),
        ({"client_id": "other"}, "BAD_CLIENT_ID"),
        ({"grant_type": "password"}, "BAD_GRANT_TYPE"),
    ],
)
def test_the_sandbox_refuses_a_grant_as_hubspot_does(
    sandbox: tuple[TestClient, Clock], change: dict[str, str], code: str
) -> None:
    api, _ = sandbox
    answer = api.post("/oauth/2026-09/token", data={**FORM, **change})
    assert answer.status_code == 400 and answer.json()["status"] == code


class MemoryCache:
    """SharedCache's contract in one process (Redis's is tested in tests/unit/state)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self.values[key] = value

    async def once(self, key: str, ttl_s: float, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        async with self.locks.setdefault(key, asyncio.Lock()):
            if key not in self.values:
                self.values[key] = await fetch()
            return self.values[key]


@pytest.mark.anyio
async def test_one_refresh_for_every_process_sharing_the_tokens() -> None:
    clock = Clock()
    granted = []

    def answer(request: httpx.Request) -> httpx.Response:
        granted.append(request)
        return httpx.Response(200, json={"access_token": f"t{len(granted)}", "expires_in": 60})

    account = replace(
        sandbox_account(), access_token=None, oauth=OAuthApp("app-1", Secret("s"), Secret("r-1"))
    )
    cache = MemoryCache()
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    processes = [OAuthSession(account, http, SharedTokens(cache, "oauth:1:app-1"), clock) for _ in range(3)]
    assert {await p.token() for p in processes} == {"t1"}
    clock.now += 50  # inside the last quarter of its life: refreshed early, once for all
    assert set(await asyncio.gather(*(p.token() for p in processes))) == {"t2"}
    assert [await p.rejected("t2") for p in processes] == ["t3"] * 3  # a 401: one refresh
    assert len(granted) == 3
    assert b"client_secret=s" in granted[0].content and granted[0].url.path == "/oauth/2026-09/token"
    await http.aclose()


@pytest.mark.anyio
async def test_a_refused_refresh_says_what_to_do_without_the_secrets() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
        )

    account = replace(
        sandbox_account(), access_token=None, oauth=OAuthApp("app-1", Secret("s3"), Secret("r-9"))
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(HubSpotError) as caught:
            await OAuthSession(account, http).token()
    text = caught.value.describe()
    assert (
        caught.value.kind is Kind.CREDENTIALS and "BAD_REFRESH_TOKEN" in text and "install it again" in text
    )
    assert "sekret-xyz" not in text and "r-9" not in text
