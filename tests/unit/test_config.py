from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.config import load_env, load_file
from hubspot_relay.errors import ConfigError

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
API_KEY = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"

GOOD = f"""
[relay]
data_dir = "/tmp/x"

[[accounts]]
name = "acme"
hub_id = 997086
access_token = "{TOKEN}"

[[accounts]]
name = "old"
hub_id = "123456"
api_key = "{API_KEY}"
limits = {{ per_second = 10, per_day = 40000 }}

[[sources]]
name = "web"
write_key = "wk-web"
account = "acme"

[[sources]]
name = "server"
write_key = "${{SERVER_WK}}"
account = "old"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "relay.toml"
    p.write_text(text)
    return p


def test_good_file(tmp_path: Path) -> None:
    cfg = load_file(write(tmp_path, GOOD), env={"SERVER_WK": "wk-server"})
    acme, old = cfg.accounts
    assert (acme.hub_id, acme.api_mode, acme.limits.per_10s) == ("997086", "v3", 100)
    assert acme.access_token is not None and acme.access_token.reveal() == TOKEN
    assert (old.api_mode, old.limits.per_10s, old.limits.per_day, old.limits.per_second) == (
        "legacy",
        100,
        40000,
        10,
    )
    assert cfg.source_for_write_key("wk-server").name == "server"  # type: ignore[union-attr]
    assert cfg.source_for_write_key("wk-web").account == "acme"  # type: ignore[union-attr]
    assert cfg.source_for_write_key("nope") is None
    assert str(cfg.data_dir) == "/tmp/x"
    assert TOKEN not in repr(cfg)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "hub_id = 997086",
            'hub_id = "99x"',
            r"accounts\[0\].hub_id: a Hub ID is a series of digits, like 997086",
        ),
        (
            f'api_key = "{API_KEY}"',
            'api_key = "abc123"',
            r"accounts\[1\].api_key: .*like dfdbfe6f-.*"
            r"Don't use the temporary authorization code from Settings > API Access",
        ),
        (
            'name = "web"',
            'name = "web"\ncolour = "red"',
            r"unknown field `colour` - |sources\[0\]: Object contains unknown field `colour`",
        ),
        ('account = "acme"', 'account = "nobody"', r"sources\[0\].account: no account is named 'nobody'"),
        ('write_key = "wk-web"', 'write_key = "${SERVER_WK}"', r"sources\[1\].write_key: the same write key"),
        (
            'write_key = "wk-web"',
            'write_key = "${MISSING}"',
            r"sources\[0\].write_key: refers to environment variable MISSING",
        ),
        (
            "limits = { per_second = 10, per_day = 40000 }",
            "limits = { per_second = 0 }",
            r"accounts\[1\].limits.per_second: must be a positive",
        ),
        (
            "limits = { per_second = 10, per_day = 40000 }",
            "limits = { per_minute = 9 }",
            r"accounts\[1\].limits: Object contains unknown field `per_minute`",
        ),
        (f'access_token = "{TOKEN}"', 'api_mode = "v3"', r"accounts\[0\]: api_mode v3 needs access_token"),
        ('data_dir = "/tmp/x"', "data_dir = 5", r"relay.data_dir: Expected `str \| null`, got `int`"),
        ('data_dir = "/tmp/x"', 'public_url = "relay.example"', r"relay.public_url: .*like https://"),
        ('data_dir = "/tmp/x"', 'public_url = "https://x/y"', r"relay.public_url: .*scheme and host only"),
        ('data_dir = "/tmp/x"', 'trusted_proxies = ["10.0.0.0/33"]', r"relay.trusted_proxies: '10.0.0.0/33'"),
        ('data_dir = "/tmp/x"', "max_queued = 0", r"relay.max_queued: must be a whole number of at least 1"),
        ('data_dir = "/tmp/x"', "header_timeout_s = 0", r"relay.header_timeout_s: seconds"),
        ("hub_id = 997086", 'hub_id = 997086\ntier = "gold"', r"accounts\[0\].tier: one of free, starter"),
        (
            "hub_id = 997086",
            "hub_id = 997086\nlimits = { reserve = 1.5 }",
            r"accounts\[0\].limits.reserve: a share",
        ),
        (
            "hub_id = 997086",
            "hub_id = 997086\nlimit_increases = -1",
            r"accounts\[0\].limit_increases: how many",
        ),
        (
            "hub_id = 997086",
            'hub_id = 997086\napi_version = "v4"',
            r"accounts\[0\].api_version: '(v3|2026-03|2026-09)'.*got 'v4'",
        ),
        (
            "hub_id = 997086",
            'hub_id = 997086\napi_version = "2031-03"',
            r"accounts\[0\].api_version: .*newer one than this hubspot-relay knows",
        ),
    ],
)
def test_file_errors_name_the_key(tmp_path: Path, old: str, new: str, error: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=error):
        load_file(write(tmp_path, GOOD.replace(old, new, 1)), env={"SERVER_WK": "wk-server"})


def test_errors_never_echo_secrets(tmp_path: Path) -> None:
    bad_key = "d3adbeef-temporary-auth-code-xyz"
    with pytest.raises(ConfigError) as info:
        load_file(write(tmp_path, GOOD.replace(API_KEY, bad_key)), env={"SERVER_WK": "wk-server"})
    assert bad_key not in str(info.value)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(write(tmp_path, "[[accounts]\nname="))


def test_env_without_credentials_uses_the_sandbox() -> None:
    cfg = load_env({})
    (acc,) = cfg.accounts
    assert acc.sandbox and acc.hub_id == "997086" and acc.api_base == "http://127.0.0.1:8089"
    assert cfg.open_ingest and cfg.source_for_write_key("anything") is not None
    assert cfg.source_for_write_key("") is None


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_HUB_ID": "997086", "HUBSPOT_RELAY_WRITE_KEY": "wk"}, "v3"),
        ({"HUBSPOT_API_KEY": API_KEY, "HUBSPOT_HUB_ID": "997086", "HUBSPOT_RELAY_WRITE_KEY": "wk"}, "legacy"),
        (
            {
                "HUBSPOT_API_KEY": API_KEY,
                "HUBSPOT_ACCESS_TOKEN": TOKEN,
                "HUBSPOT_HUB_ID": "1",
                "HUBSPOT_RELAY_WRITE_KEY": "wk",
            },
            "v3",
        ),
    ],
)
def test_env_modes(env: dict[str, str], mode: str) -> None:
    cfg = load_env(env)
    assert cfg.accounts[0].api_mode == mode
    assert not cfg.open_ingest and cfg.source_for_write_key("wk") is not None
    assert cfg.source_for_write_key("other") is None


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_RELAY_WRITE_KEY": "wk"}, "HUBSPOT_HUB_ID: needed"),
        (
            {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_HUB_ID": "99-70", "HUBSPOT_RELAY_WRITE_KEY": "wk"},
            "HUBSPOT_HUB_ID: a Hub ID is a series of digits",
        ),
        (
            {"HUBSPOT_API_KEY": "nope", "HUBSPOT_HUB_ID": "1", "HUBSPOT_RELAY_WRITE_KEY": "wk"},
            "HUBSPOT_API_KEY: does not look like a HubSpot API key",
        ),
        ({"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_HUB_ID": "1"}, "HUBSPOT_RELAY_WRITE_KEY: needed"),
        ({"HUBSPOT_RELAY_PORT": "http"}, "HUBSPOT_RELAY_PORT: must be a port number"),
        ({"HUBSPOT_RELAY_MAX_QUEUED": "lots"}, "HUBSPOT_RELAY_MAX_QUEUED: must be a whole number"),
        ({"HUBSPOT_RELAY_MIN_FREE_DISK_MB": "-1"}, "HUBSPOT_RELAY_MIN_FREE_DISK_MB: must be a whole number"),
        ({"HUBSPOT_RELAY_PUBLIC_URL": "javascript:alert(1)"}, "HUBSPOT_RELAY_PUBLIC_URL: the address"),
        ({"HUBSPOT_RELAY_TRUSTED_PROXIES": "10.0.0.1,nope"}, "HUBSPOT_RELAY_TRUSTED_PROXIES: 'nope'"),
        (
            {
                "HUBSPOT_API_BASE": "ftp://x",
                "HUBSPOT_ACCESS_TOKEN": TOKEN,
                "HUBSPOT_HUB_ID": "1",
                "HUBSPOT_RELAY_WRITE_KEY": "wk",
            },
            "HUBSPOT_API_BASE: must be an http",
        ),
    ],
)
def test_env_errors(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_env(env)


def test_env_overrides_relay_settings(tmp_path: Path) -> None:
    cfg = load_env({"HUBSPOT_RELAY_DATA_DIR": str(tmp_path), "HUBSPOT_RELAY_PORT": "9999"})
    assert (cfg.data_dir, cfg.port) == (tmp_path, 9999)


def test_relay_hardening_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    text = GOOD.replace(
        'data_dir = "/tmp/x"',
        'data_dir = "/tmp/x"\npublic_url = "https://relay.example/"\ntrusted_proxies = ["10.0.0.0/8"]\n'
        "max_queued = 500\nmin_free_disk_mb = 0\nmetrics_public = true",
    )
    cfg = load_file(write(tmp_path, text), env={"SERVER_WK": "wk-server", "HUBSPOT_RELAY_MAX_QUEUED": "7"})
    assert (cfg.public_url, cfg.max_queued, cfg.min_free_disk_mb, cfg.metrics_public) == (
        "https://relay.example",
        7,
        0,
        True,
    )
    assert [str(n) for n in cfg.trusted_proxies] == ["10.0.0.0/8"]
    env = load_env(
        {"HUBSPOT_RELAY_PUBLIC_URL": "http://127.0.0.1:8088", "HUBSPOT_RELAY_TRUSTED_PROXIES": "::1"}
    )
    assert env.public_url == "http://127.0.0.1:8088" and env.max_queued == 1_000_000


@pytest.mark.parametrize(
    ("extra", "limits"),
    [
        ("", (100, 250_000, None, 0.1, True)),  # unknown tier: Free/Starter's figures, learned upwards
        ('tier = "professional"', (190, 625_000, None, 0.1, True)),
        ('tier = "Enterprise"\nlimit_increases = 2', (250, 3_000_000, None, 0.1, True)),
        ('tier = "enterprise"\nlimits = { per_10s = 150, reserve = 0 }', (150, 1_000_000, None, 0.0, False)),
    ],
)
def test_tier_sets_the_starting_budget(tmp_path: Path, extra: str, limits: tuple[object, ...]) -> None:
    cfg = load_file(
        write(tmp_path, GOOD.replace("hub_id = 997086", "hub_id = 997086\n" + extra, 1)),
        env={"SERVER_WK": "wk-server"},
    )
    got = cfg.account("acme").limits
    assert (got.per_10s, got.per_day, got.per_second, got.reserve, got.learn) == limits


@pytest.mark.parametrize(
    ("lines", "env", "expected"),
    [
        ("", {}, None),
        ('queue_url = "redis://127.0.0.1:6379/2"', {}, "redis://127.0.0.1:6379/2"),
        (
            'queue_url = "${REDIS_URL}"',
            {"REDIS_URL": "rediss://:pw@cache:6380/0"},
            "rediss://:pw@cache:6380/0",
        ),
        ("", {"HUBSPOT_RELAY_QUEUE_URL": "unix:///run/redis.sock"}, "unix:///run/redis.sock"),
        ('queue_url = "redis://a/0"', {"HUBSPOT_RELAY_QUEUE_URL": "redis://b/1"}, "redis://b/1"),
    ],
)
def test_the_redis_queue_is_chosen_by_file_or_environment(
    tmp_path: Path, lines: str, env: dict[str, str], expected: str | None
) -> None:
    text = GOOD.replace('data_dir = "/tmp/x"', f'data_dir = "/tmp/x"\n{lines}')
    cfg = load_file(write(tmp_path, text), {"SERVER_WK": "k", **env})
    assert (cfg.queue_url.reveal() if cfg.queue_url else None) == expected
    if cfg.queue_url:
        assert "pw" not in repr(cfg)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ('queue_url = "http://redis:6379"', "relay.queue_url: a Redis URL is expected"),
        ("queue_partitions = 0", "relay.queue_partitions: from 1 to 64"),
        ("queue_partitions = 65", "relay.queue_partitions: from 1 to 64"),
        ('queue_prefix = "a b"', "relay.queue_prefix"),
        ('queue_url = "${NOPE}"', "relay.queue_url: refers to environment variable NOPE"),
    ],
)
def test_redis_queue_settings_are_checked(tmp_path: Path, lines: str, error: str) -> None:
    text = GOOD.replace('data_dir = "/tmp/x"', f'data_dir = "/tmp/x"\n{lines}')
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        load_file(write(tmp_path, text), {"SERVER_WK": "k"})


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", "2026-09"), ('api_version = "v3"', "v3"), ('api_version = "2026-03"', "2026-03")],
)
def test_api_version_per_account(tmp_path: Path, line: str, expected: str) -> None:
    cfg = load_file(
        write(tmp_path, GOOD.replace("hub_id = 997086", f"hub_id = 997086\n{line}", 1)),
        env={"SERVER_WK": "wk-server"},
    )
    assert cfg.accounts[0].api_version == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "2026-09"), ({"HUBSPOT_API_VERSION": "v3"}, "v3"), ({"HUBSPOT_API_VERSION": "2026-03"}, "2026-03")],
)
def test_api_version_from_the_environment(env: dict[str, str], expected: str) -> None:
    assert load_env(env).accounts[0].api_version == expected
    with_token = {
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_RELAY_WRITE_KEY": "k",
        **env,
    }
    assert load_env(with_token).accounts[0].api_version == expected
    with pytest.raises(ConfigError, match="HUBSPOT_API_VERSION"):
        load_env({**env, "HUBSPOT_API_VERSION": "latest"})


def test_consent_categories_per_source_with_the_accounts_default(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        """
[[accounts]]
name = "acme"
hub_id = 1
access_token = "pat-1"
consent_categories = ["Marketing"]

[[sources]]
name = "web"
write_key = "wk1"
account = "acme"

[[sources]]
name = "server"
write_key = "wk2"
account = "acme"
consent_categories = ["Marketing", "Advertising"]

[[sources]]
name = "internal"
write_key = "wk3"
account = "acme"
consent_categories = []
"""
    )
    sources = {s.name: s.consent_categories for s in load_file(path, env={}).sources}
    assert sources == {"web": ("Marketing",), "server": ("Marketing", "Advertising"), "internal": ()}
