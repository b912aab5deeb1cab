"""An OAuth account against the sandbox's token endpoint, on the harness's clock: access tokens
that live 60 s through several expiries, one that expires on the way (401, one refresh, the same
call again), a refresh token HubSpot rotates kept across a restart, and a revoked install: the
account's problem in words, its messages waiting (not dead-lettered) until it is fixed. No
secret reaches the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.credentials import OAuthApp
from hubspot_relay.hubspot.oauth import FileTokens
from hubspot_relay.sandbox import PortalSettings
from hubspot_relay.secrets import Secret
from tests.harness import Harness, make

pytestmark = pytest.mark.anyio

APP = OAuthApp("app-1", Secret("s3cret-app"), Secret("refresh-one"))


def portal(*, rotate: bool = False, lifetime: float = 60.0) -> PortalSettings:
    spec = {
        "client_id": "app-1",
        "client_secret": "s3cret-app",
        "refresh_tokens": ["refresh-one"],
        "token_lifetime_s": lifetime,
        "rotate_refresh_tokens": rotate,
    }
    return PortalSettings(oauth_apps=(spec,))


def identifies(round_: int, n: int = 10) -> list[dict[str, Any]]:
    return [
        {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com", "firstName": f"r{round_}"}}
        for i in range(n)
    ]


def statuses(h: Harness, endpoint: str) -> list[int]:
    return [status for _, label, status, *_ in h.sandbox.calls if label == endpoint]


async def close(h: Harness) -> None:
    await h.queue.close()
    h.identity.close()


async def test_through_several_expiries_and_one_on_the_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = await make(tmp_path, portal=portal(), oauth=APP)
    try:
        for round_ in range(4):  # each round a minute apart: every token has run out by the next
            h.clock.now += 61 if round_ else 0
            await h.send(*identifies(round_))
            await h.drain()
        assert h.sandbox.accounts.oauth.refreshes == 4
        h.sandbox.accounts.oauth.expire_all()  # runs out between the relay's check and HubSpot
        await h.send(*identifies(9))
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead, counts.retrying) == (50, 0, 0)
        refused = [(label, status) for _, label, status, *_ in h.sandbox.calls if status == 401]
        assert len(refused) == 1  # the call that carried it was made again with a fresh token
        assert statuses(h, refused[0][0])[-1] == 200
        assert (await h.contact("u3@x.com", "firstname"))["firstname"] == "r9"
        assert h.sandbox.accounts.oauth.refreshes == 5
        assert h.delivery.client.oauth is not None and h.delivery.client.oauth.refreshes == 5
    finally:
        await close(h)
    out = capsys.readouterr()
    for secret in ("s3cret-app", "refresh-one"):
        assert secret not in out.out + out.err
    assert not any(token in out.out for token in h.sandbox.accounts.oauth.access_tokens)


async def test_a_rotated_refresh_token_is_kept_across_a_restart(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=portal(rotate=True), oauth=APP)
    try:
        for round_ in range(3):
            await h.send(*identifies(round_, 3))
            await h.drain()
            h.clock.now += 61
        kept = await FileTokens(tmp_path / "oauth.json").load()
        assert kept is not None and kept["refresh_token"] != "refresh-one"
        assert kept["refresh_token"] in h.sandbox.accounts.oauth.refresh_tokens
        assert "refresh-one" not in h.sandbox.accounts.oauth.refresh_tokens  # HubSpot moved on
        # A restart: a new client, the configured (old) refresh token, the same data folder.
        sandbox = h.sandbox
        await close(h)
        h = await make(tmp_path, portal=portal(rotate=True), oauth=APP)
        h.sandbox.accounts.oauth = sandbox.accounts.oauth  # the same HubSpot
        h.sandbox.accounts.oauth.clock = h.clock
        h.clock.now = sandbox.clock.now
        await h.send(*identifies(7, 3))
        await h.drain()
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (12, 0)  # 9 before the restart, 3 after
        assert h.identity.problems() == []
        assert (await h.contact("u2@x.com", "firstname"))["firstname"] == "r7"
    finally:
        await close(h)


async def test_a_revoked_install_is_the_accounts_problem_and_its_messages_wait(tmp_path: Path) -> None:
    h = await make(tmp_path, portal=portal(), oauth=APP)
    try:
        await h.send(*identifies(0, 3))
        await h.drain()
        h.sandbox.accounts.oauth.revoke("refresh-one")  # uninstalled
        h.clock.now += 61
        tracks = [{"type": "track", "userId": f"u{i}", "event": "Signed Up"} for i in range(3)]
        await h.send(*identifies(1, 3), *tracks)  # events too: not "custom events refused"
        await h.drain(max_cycles=5, step=600.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead, counts.retrying) == (3, 0, 6)
        problems = {kind: message for _, kind, message, _ in h.identity.problems()}
        assert list(problems) == ["oauth"]
        assert "BAD_REFRESH_TOKEN" in problems["oauth"] and "install it again" in problems["oauth"]
        assert "refresh-one" not in problems["oauth"] and "s3cret" not in problems["oauth"]
        h.sandbox.accounts.oauth.revoked.clear()  # installed again (the same token, for the test)
        h.clock.now += 4000
        await h.drain(step=3601.0)
        counts = (await h.queue.counts())["web"]
        assert (counts.delivered, counts.dead) == (9, 0)
    finally:
        await close(h)
