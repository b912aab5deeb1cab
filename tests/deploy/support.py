"""What the deployment tests share: the release's version and wheel, commands run the way the
documentation gives them, processes started from an installed relay, and waiting for HubSpot (the
sandbox) to hold what was sent. A helper module: tests import it, never each other."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT

VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WHEEL = ROOT / "dist" / f"hubspot_relay-{VERSION}-py3-none-any.whl"
AUTH = {"Authorization": "Bearer sandbox-token"}
# podman's settings for this machine's kernel (runc, resource limits): see containers.conf.
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# The flags `podman run` needs on the project's machines; a normal host needs none of them.
PODMAN_RUN = "podman --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"


def run(
    command: str,
    *,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """A shell command as a user types it (the documentation's commands are run through here)."""
    result = subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{command}` exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


@contextlib.contextmanager
def dist_lock() -> Iterator[None]:
    """dist/ to one worker at a time: `make image` rebuilds it while another may be installing it."""
    # Outside dist/ and build/, which `make dist` removes (a lock on a removed file locks nothing).
    path = (
        Path(tempfile.gettempdir()) / f"hubspot-relay-dist-{hashlib.sha1(bytes(ROOT)).hexdigest()[:12]}.lock"
    )
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def release_wheel() -> Path:
    """dist/'s wheel of this version (call it holding `dist_lock`): `make test` builds it (`make
    dist`) before the tests; a run without it builds it here."""
    if not WHEEL.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{WHEEL.name} is missing: `make test` runs `make dist` before the tests")
        run("make dist")
    return WHEEL


@contextlib.contextmanager
def process(
    argv: list[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running command with its output in `log`, stopped (SIGTERM, then SIGKILL) at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, *, timeout: float = 60, verify: bool = True, what: str = "") -> httpx.Response:
    """The first 200 from `url` (a server starting up)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=3, verify=verify)
            if r.status_code == 200:
                return r
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.25)
    raise AssertionError(f"{what or url} did not answer 200 within {timeout:.0f} s: {last}")


def contacts_in(sandbox: str, emails: list[str], *, timeout: float = 90) -> dict[str, dict[str, str]]:
    """Every one of `emails` as a contact in the sandbox (its properties), waiting for delivery."""
    found: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=sandbox, headers=AUTH, timeout=10) as http:
        while time.monotonic() < deadline:
            for email in [e for e in emails if e not in found]:
                r = http.get(
                    f"/crm/v3/objects/contacts/{email}",
                    params={"idProperty": "email", "properties": "email,firstname,lastname"},
                )
                if r.status_code == 200:
                    found[email] = r.json()["properties"]
            if len(found) == len(emails):
                return found
            time.sleep(0.5)
    missing = sorted(set(emails) - set(found))
    raise AssertionError(f"{len(missing)} of {len(emails)} contacts never reached HubSpot: {missing[:10]}")


def words(command: str) -> list[str]:
    return shlex.split(command)


def doc_commands(page: str) -> list[str]:
    """The commands a documentation page (or README.md) gives: `$ ` lines of its console blocks and
    the lines of its sh blocks (continuations joined, comments dropped), in order."""
    path = ROOT / page
    commands: list[str] = []
    fence: str | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("```"):
            fence = None if fence else (line[3:].strip() or "text")
            continue
        if fence == "console" and line.startswith("$ "):
            commands.append(line[2:])
        elif fence == "sh" and line and not line.startswith("#"):
            pending += line.removesuffix("\\").strip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append(pending.split("  #")[0].strip())
                pending = ""
    return commands


def doc_command(page: str, start: str) -> str:
    """The one command of `page` that starts with `start`."""
    found = [c for c in doc_commands(page) if c.startswith(start)]
    assert len(found) == 1, f"{page}: {len(found)} commands start with {start!r}: {found}"
    return found[0]
