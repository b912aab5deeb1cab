"""What a new user meets in the first ten minutes: ports in use, a quiet clean stop, --version,
and `status` telling skipped and waiting messages apart from delivered ones."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, RelayProcess, free_port

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path, port: int, sandbox_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(
        {
            "HUBSPOT_RELAY_DATA_DIR": str(tmp_path / "data"),
            "HUBSPOT_RELAY_PORT": str(port),
            "HUBSPOT_SANDBOX_PORT": str(sandbox_port),
        }
    )
    return env


def _serve(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubspot_relay", "serve", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port held by a program that is not ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_the_relays_port_in_use_is_one_clear_line_before_anything_starts(
    tmp_path: Path, squatter: int
) -> None:
    sandbox_port = free_port()
    done = _serve(_env(tmp_path, squatter, sandbox_port))
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert f"port {squatter} on 127.0.0.1 is in use by another program" in text
    assert "--port or HUBSPOT_RELAY_PORT" in text
    assert "listening on" not in text and "Traceback" not in text and "Errno" not in text
    assert not (tmp_path / "data" / "sandbox.sqlite3").exists()  # nothing was started
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/portals", timeout=1)


def test_a_port_held_by_another_relay_says_so(tmp_path: Path) -> None:
    first = RelayProcess(tmp_path / "first").start()
    try:
        done = _serve(_env(tmp_path, first.port, free_port()))
        assert done.returncode == 1
        assert "in use by another hubspot-relay" in done.stderr
    finally:
        first.stop()


def test_the_sandboxs_port_in_use_names_the_variable_that_moves_it(tmp_path: Path, squatter: int) -> None:
    port = free_port()
    done = _serve(_env(tmp_path, port, squatter))
    assert done.returncode == 1
    assert (
        f"port {squatter}, where the HubSpot sandbox should run, is in use by another program" in done.stderr
    )
    assert "HUBSPOT_SANDBOX_PORT" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "listening on" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3


def test_a_clean_stop_is_quiet_and_exits_0(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "r", args=("--log-level", "info")).start()
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGTERM)
    assert relay.proc.wait(20) == 0
    log = relay.log()
    assert "Traceback" not in log and "error" not in log.lower()
    assert "HubSpot sandbox on" not in log  # the bundled sandbox's banner goes to its own log
    assert "sandbox.log" in log


def test_version_option_and_command() -> None:
    for args in (["--version"], ["-V"], ["version"]):
        done = subprocess.run(
            [sys.executable, "-m", "hubspot_relay", *args], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 0 and done.stdout.strip().split()[-1][0].isdigit()


def test_help_shows_flags_as_flags_and_errors_without_prefixes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hubspot_relay", "status", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert "--json" in done.stdout and "<bool>" not in done.stdout and "BOOLEAN" not in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "hubspot_relay", "send", "foo"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2 and "'foo' is not one of" in done.stderr and "Value error" not in done.stderr


def test_status_shows_skipped_and_waiting_apart_from_delivered(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "r").start()
    try:
        batch = [
            {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}, "messageId": "m1"},
            {"type": "identify", "anonymousId": "a1", "traits": {"firstName": "Ann"}, "messageId": "m2"},
            {
                "type": "page",
                "anonymousId": "a2",
                "name": "Home",
                "messageId": "m3",
                "_metadata": {"bundled": ["HubSpot"]},
            },
        ]
        httpx.post(f"{relay.url}/v1/batch", json={"batch": batch}, auth=("k", "")).raise_for_status()
        deadline = time.monotonic() + 30
        while True:
            report = json.loads(
                subprocess.run(
                    [sys.executable, "-m", "hubspot_relay", "status", "--json", "--url", relay.url],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=True,
                ).stdout
            )
            row = report["sources"]["default"]
            if row["delivered"] + row["skipped"] + row["waiting"] == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (row["delivered"], row["skipped"], row["waiting"]) == (1, 1, 1)
        table = subprocess.run(
            [sys.executable, "-m", "hubspot_relay", "status", "--url", relay.url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "160"},
            check=True,
        ).stdout
        assert "skipped" in table and "waiting" in table
    finally:
        relay.stop()


def test_the_terminal_says_what_happened_once_a_period(tmp_path: Path) -> None:
    relay = RelayProcess(
        tmp_path / "r", env={"HUBSPOT_RELAY_SUMMARY_EVERY_S": "1"}, args=("--log-level", "info")
    ).start()
    try:
        batch = [
            {"type": "identify", "userId": f"u{i}", "traits": {"email": f"u{i}@x.com"}} for i in range(3)
        ]
        httpx.post(f"{relay.url}/v1/batch", json={"batch": batch}, auth=("k", "")).raise_for_status()
        deadline = time.monotonic() + 20
        while "delivered 3" not in relay.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [line for line in relay.log().splitlines() if "last 1 s:" in line]
        assert any("received 3" in line for line in lines), relay.log()
        assert any("delivered 3" in line and "HubSpot calls" in line for line in lines)
        assert "POST /v1/batch" not in relay.log()  # no line per request
    finally:
        relay.stop()
