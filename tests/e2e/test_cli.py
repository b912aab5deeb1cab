"""The `hubspot-relay` command as users type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, RelayProcess, free_port, stored_messages

pytestmark = pytest.mark.e2e


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    return subprocess.run(
        [sys.executable, "-m", "hubspot_relay", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_send_then_status(data_dir: Path) -> None:
    with RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": "wk"}) as relay:
        env = {
            "HUBSPOT_RELAY_URL": relay.url,
            "HUBSPOT_RELAY_WRITE_KEY": "wk",
            "HUBSPOT_RELAY_DATA_DIR": str(data_dir),
        }
        sent = cli(
            "send", "track", "--email", "a@b.com", "--event", "Bought Item", "-p", "revenue=9.5", env=env
        )
        assert sent.returncode == 0, sent.stderr
        ident = cli(
            "send",
            "identify",
            "--email",
            "a@b.com",
            "-t",
            "firstName=Ann",
            "-t",
            "Favorite Color=red",
            env=env,
        )
        assert ident.returncode == 0, ident.stderr
        track, identify = stored_messages(relay.queue_path)
        assert (track["event"], track["properties"]) == ("Bought Item", {"revenue": 9.5, "email": "a@b.com"})
        assert identify["traits"] == {"firstName": "Ann", "Favorite Color": "red", "email": "a@b.com"}
        assert identify["userId"] == "a@b.com"

        deadline = time.monotonic() + 20  # the relay delivers them to its bundled sandbox
        while True:
            status = cli("status", "--json", env=env)
            assert status.returncode == 0, status.stderr
            counts = json.loads(status.stdout)["sources"]["default"]
            if counts["delivered"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {k: counts[k] for k in ("queued", "in_flight", "retrying", "delivered", "dead")} == {
            "queued": 0,
            "in_flight": 0,
            "retrying": 0,
            "delivered": 2,
            "dead": 0,
        }
        sandbox = f"http://127.0.0.1:{relay.sandbox_port}"
        contact = httpx.get(
            f"{sandbox}/crm/v3/objects/contacts/a@b.com?idProperty=email&properties=firstname,favorite_color",
            headers={"Authorization": "Bearer sandbox-token"},
        ).json()
        assert contact["properties"] == {"firstname": "Ann", "favorite_color": "red"}
        table = cli("status", env=env)
        assert "default" in table.stdout and "queued" in table.stdout

        # a value HubSpot refuses: dead-lettered, and status prints HubSpot's reason as it is
        bad = cli("send", "identify", "--email", "b@b.com", "-t", "plan=gold", env=env)
        assert bad.returncode == 0, bad.stderr
        deadline = time.monotonic() + 20
        while json.loads(cli("status", "--json", env=env).stdout)["sources"]["default"]["dead"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        table = cli("status", env=env)
        assert "dead letters by reason" in table.stdout
        assert "[enterprise, free," in table.stdout and "INVALID_OPTION" in table.stdout
        replayed = cli("replay", "--reason", "INVALID_OPTION", env=env)
        assert replayed.returncode == 0 and "re-queued 1 dead-lettered message" in replayed.stdout

        wrong = cli(
            "send",
            "track",
            "--email",
            "a@b.com",
            "--event",
            "E",
            env={**env, "HUBSPOT_RELAY_WRITE_KEY": "nope"},
        )
        assert wrong.returncode == 1 and "401" in wrong.stderr


def test_status_asks_the_running_relay_from_any_folder_with_the_admin_token(
    data_dir: Path, tmp_path: Path
) -> None:
    token = "admin-7f3c"
    env = {"HUBSPOT_RELAY_WRITE_KEY": "wk", "HUBSPOT_RELAY_ADMIN_TOKEN": token}
    with RelayProcess(data_dir, env=env) as relay:
        r = httpx.post(f"{relay.url}/v1/t", json={"userId": "u", "event": "E"}, auth=("wk", ""))
        assert r.status_code == 200
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}

        def status(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "hubspot_relay", "status", *args],
                env={**base, "HUBSPOT_RELAY_URL": relay.url, **extra},
                capture_output=True,
                text=True,
                cwd=elsewhere,  # no data folder here: the answer comes from the relay
                timeout=60,
                check=False,
            )

        ok = status("--json", HUBSPOT_RELAY_ADMIN_TOKEN=token)
        assert ok.returncode == 0, ok.stderr
        report = json.loads(ok.stdout)
        assert report["from"] == relay.url and report["sources"]["default"]["account"] == "sandbox"
        assert "budget" in report["accounts"]["sandbox"]
        table = status(HUBSPOT_RELAY_ADMIN_TOKEN=token)
        assert "account sandbox (hub 997086, API 2026-09, private app token" in table.stdout, table.stdout
        assert "): delivering" in table.stdout
        refused = status(HUBSPOT_RELAY_ADMIN_TOKEN="wrong")
        assert refused.returncode == 2 and "refused" in refused.stderr and token not in refused.stderr
        nobody = status("--url", "http://127.0.0.1:9")
        assert nobody.returncode == 1 and "no relay answers" in nobody.stderr


def test_send_refuses_incomplete_messages() -> None:
    r = cli("send", "track", "--email", "a@b.com")
    assert r.returncode == 2 and "track needs --event" in r.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.toml"
    cfg.write_text(
        '[[accounts]]\nname = "a"\nhub_id = "abc"\naccess_token = "t"\n'
        '[[sources]]\nname = "s"\nwrite_key = "k"\naccount = "a"\n'
    )
    r = cli("serve", "--config", str(cfg))
    assert r.returncode == 2
    assert "accounts[0].hub_id: a Hub ID is a series of digits, like 997086" in r.stderr


def test_serve_refuses_a_legacy_key_that_is_an_auth_code() -> None:
    r = cli(
        "serve",
        env={
            "HUBSPOT_API_KEY": "temporary-code",
            "HUBSPOT_HUB_ID": "997086",
            "HUBSPOT_RELAY_WRITE_KEY": "wk",
        },
    )
    assert r.returncode == 2
    assert "Don't use the temporary authorization code from Settings > API Access" in r.stderr
    assert "temporary-code" not in r.stderr


def test_serve_without_credentials_starts_the_sandbox_and_says_so(data_dir: Path) -> None:
    relay = RelayProcess(data_dir).start()
    sandbox = f"http://127.0.0.1:{relay.sandbox_port}"
    try:
        portals = httpx.get(f"{sandbox}/_sandbox/portals", timeout=5).json()
        assert portals[0]["hub_id"] == "997086"
        log = relay.log()
        assert "NO HUBSPOT CREDENTIALS CONFIGURED" in log
        assert f"started the HubSpot sandbox at {sandbox}" in log
    finally:
        relay.kill9()
    deadline = time.monotonic() + 10  # the sandbox dies with the relay, even after kill -9
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{sandbox}/_sandbox/portals", timeout=0.5)
        except httpx.HTTPError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the sandbox outlived the relay")


def test_status_and_replay_read_a_redis_queue_with_no_relay_running(tmp_path: Path) -> None:
    from tests.conftest import require_tool
    from tests.helpers import free_port
    from tests.redis_server import RedisServer

    redis = RedisServer(tmp_path / "redis", require_tool("redis-server", "the Redis queue")).start()
    try:
        queue = ["--queue", redis.url]
        with RelayProcess(
            tmp_path / "data", env={"HUBSPOT_RELAY_WRITE_KEY": "wk"}, args=tuple(queue)
        ) as relay:
            env = {"HUBSPOT_RELAY_URL": relay.url, "HUBSPOT_RELAY_WRITE_KEY": "wk"}
            assert (
                cli("send", "identify", "--email", "a@b.com", "-t", "firstName=Ann", env=env).returncode == 0
            )
            assert cli("send", "identify", "--email", "b@b.com", "-t", "plan=gold", env=env).returncode == 0
            deadline = time.monotonic() + 30
            while True:
                counts = json.loads(cli("status", "--json", env=env).stdout)["sources"]["default"]
                if counts["delivered"] + counts["dead"] == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        nobody = {"HUBSPOT_RELAY_PORT": str(free_port())}  # no relay answers there: Redis is read
        status = cli("status", "--json", *queue, env=nobody)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["from"] == redis.url
        assert {k: report["sources"]["default"][k] for k in ("delivered", "dead")} == {
            "delivered": 1,
            "dead": 1,
        }
        assert any("INVALID_OPTION" in reason for reason in report["dead_letter_reasons"])
        replayed = cli("replay", "--reason", "INVALID_OPTION", *queue, env=nobody)
        assert replayed.returncode == 0 and "re-queued 1 dead-lettered message" in replayed.stdout
        after = json.loads(cli("status", "--json", *queue, env=nobody).stdout)["sources"]["default"]
        assert (after["queued"], after["dead"]) == (1, 0)
    finally:
        redis.stop()


def test_preview_shows_the_requests_from_a_running_relay_or_alone(tmp_path: Path) -> None:
    message = tmp_path / "identify.json"
    message.write_text(
        json.dumps({"type": "identify", "userId": "u1", "traits": {"email": "p@x.com", "firstName": "Pia"}})
    )
    with RelayProcess(tmp_path / "data") as relay:
        env = {"HUBSPOT_RELAY_URL": relay.url}
        shown = cli("preview", str(message), env=env)
        assert shown.returncode == 0, shown.stderr
        assert "identify would be delivered" in shown.stdout
        assert (
            "POST http://127.0.0.1:" in shown.stdout
            and "/crm/objects/2026-09/contacts/batch/upsert" in shown.stdout
        )
        assert '"firstname": "Pia"' in shown.stdout
        as_json = json.loads(cli("preview", str(message), "--json", env=env).stdout)
        assert as_json["outcome"] == "delivered" and len(as_json["requests"]) == 1
        for other, paths in (
            (
                {"type": "track", "userId": "u1", "event": "Viewed Plan", "properties": {"email": "p@x.com"}},
                ["/events/2026-09/event-definitions", "/events/2026-09/send/batch"],
            ),
            (
                {"type": "group", "userId": "p@x.com", "groupId": "g1", "traits": {"name": "Acme"}},
                [
                    "/crm/objects/2026-09/contacts/batch/upsert",
                    "/crm/objects/2026-09/companies/batch/create",
                    "/crm/associations/2026-09/contact/company/batch/associate/default",
                ],
            ),
        ):
            path = tmp_path / f"{other['type']}.json"
            path.write_text(json.dumps(other))
            shown = json.loads(cli("preview", str(path), "--json", env=env).stdout)
            assert [r["path"] for r in shown["requests"]] == paths, shown
        refused = cli("preview", "-", env=env)  # stdin, empty: not JSON
        assert refused.returncode == 2 and "is not JSON" in refused.stderr
        bad = tmp_path / "bad.json"
        bad.write_text('{"type": "track", "userId": "u1"}')
        refused = cli("preview", str(bad), env=env)
        assert refused.returncode == 1 and "track requires 'event'" in refused.stderr
        sandbox_port = relay.sandbox_port
        calls = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls").json()["by_endpoint"]
        assert not [k for k in calls if k.startswith("POST")]  # nothing was sent
    # no relay, no HubSpot: it says so rather than showing half an answer
    nobody = {"HUBSPOT_RELAY_PORT": str(free_port()), "HUBSPOT_SANDBOX_PORT": str(free_port())}
    alone = cli("preview", str(message), env=nobody)
    assert alone.returncode == 1 and "reading the portal from HubSpot failed" in alone.stderr
