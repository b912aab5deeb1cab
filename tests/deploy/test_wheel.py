"""The release's wheel installed alone in a fresh venv, as a team installs it: its version, `serve`
against the sandbox it carries, segment-analytics-python delivered, the console and device mode
served from the package (analytics.js included), and the systemd unit verified against that install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.conftest import require_tool
from tests.deploy.support import (
    VERSION,
    contacts_in,
    dist_lock,
    doc_command,
    process,
    release_wheel,
    run,
    wait_http,
)
from tests.helpers import ROOT, free_port

# "heavy": the tests that build or install run one after another on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("heavy")]
UNIT = ROOT / "deploy" / "systemd" / "hubspot-relay.service"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A machine's root in miniature: the wheel in a venv at /opt/hubspot-relay, as the unit expects."""
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def installed(root: Path) -> Path:
    """bin/ of a venv holding only the wheel and what it depends on (from PyPI), made by the
    documentation's own commands with /opt/hubspot-relay under `root`."""
    opt = root / "opt" / "hubspot-relay"
    ours = lambda command: command.replace("/opt/hubspot-relay", str(opt)).replace("dist/", f"{ROOT}/dist/")  # noqa: E731
    python = getattr(sys, "_base_executable", sys.executable)
    venv = doc_command("docs/deploying.md", "python3 -m venv")
    run(ours(venv).replace("python3", python, 1), cwd=root)
    with dist_lock():
        release_wheel()
        run(ours(doc_command("docs/deploying.md", "/opt/hubspot-relay/bin/pip install")), cwd=root)
    version = run(ours(doc_command("docs/deploying.md", "/opt/hubspot-relay/bin/hubspot-relay --version")))
    assert version.stdout.strip() == f"hubspot-relay {VERSION}"
    return opt / "bin"


def test_the_wheel_alone_knows_its_version_and_where_it_lives(installed: Path, tmp_path: Path) -> None:
    assert (
        run(f"{installed}/hubspot-relay --version", cwd=tmp_path).stdout.strip() == f"hubspot-relay {VERSION}"
    )
    where = run(f"{installed}/python -c 'import hubspot_relay; print(hubspot_relay.__file__)'", cwd=tmp_path)
    assert where.stdout.startswith(str(installed.parent)), "the fresh venv imported the source tree"
    files = run(f"{installed}/python -m pip show --files hubspot-relay", cwd=tmp_path).stdout
    assert "hubspot_relay/web/analytics-js/standalone.js" in files
    assert "hubspot_relay/web/console.html" in files


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The wheel's sandbox and the wheel's relay delivering to it, from an empty folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    sandbox_port, relay_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox,
        "HUBSPOT_TRACK_BASE": sandbox,
        "HUBSPOT_RELAY_WRITE_KEY": "wk-wheel",
        "HUBSPOT_RELAY_ADMIN_TOKEN": "admin-token-for-the-wheel-test",
        "HUBSPOT_RELAY_PORT": str(relay_port),
    }
    with (
        process(
            [f"{installed}/hubspot-relay", "sandbox", "--port", str(sandbox_port)],
            log=tmp_path / "sandbox.log",
            cwd=empty,
        ),
        process([f"{installed}/hubspot-relay", "serve"], log=tmp_path / "relay.log", env=env, cwd=empty),
    ):
        wait_http(f"{sandbox}/_sandbox/portals", what="the wheel's sandbox")
        relay = f"http://127.0.0.1:{relay_port}"
        wait_http(f"{relay}/health", what="the wheel's relay")
        yield relay, sandbox
    log = (tmp_path / "relay.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_the_wheel_serves_delivers_and_shows_its_console_and_device_mode(
    served: tuple[str, str],
) -> None:
    relay, sandbox = served
    client = Client(write_key="wk-wheel", host=relay, sync_mode=True, max_retries=3)
    client.identify("wheel-1", {"email": "wheel@example.com", "firstName": "Wendy"})
    client.track("wheel-1", "Installed From A Wheel", {"version": VERSION})
    client.flush()
    assert contacts_in(sandbox, ["wheel@example.com"])["wheel@example.com"]["firstname"] == "Wendy"

    console = httpx.get(f"{relay}/admin", follow_redirects=True)
    assert console.status_code == 200 and "<html" in console.text.lower()
    settings = httpx.get(f"{relay}/v1/projects/wk-wheel/settings").json()
    assert settings["integrations"]["HubSpot"]["hubId"] == "997086"
    bundle = httpx.get(f"{relay}/analytics.js/v1/wk-wheel/analytics.min.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/javascript")
    assert len(bundle.content) > 50_000  # Segment's analytics.js itself, from the package
    plugin = settings["remotePlugins"][0]["url"]
    assert httpx.get(plugin).status_code == 200


def test_the_systemd_unit_verifies_against_the_installed_wheel(root: Path, installed: Path) -> None:
    """`systemd-analyze verify` on a root holding the unit, systemd's own units and the venv at
    /opt/hubspot-relay: the unit's executable, user set-up and options all check out."""
    analyze = require_tool("systemd-analyze", "checking the systemd unit")
    (root / "etc" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / UNIT.name)
    units = Path("/usr/lib/systemd/system")
    if not (root / "usr" / "lib" / "systemd" / "system").exists():
        shutil.copytree(units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # and without the install, verify notices (the check can fail)
    shutil.move(installed / "hubspot-relay", installed / "hubspot-relay.away")
    try:
        missing = subprocess.run(
            [analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, check=False
        )
    finally:
        shutil.move(installed / "hubspot-relay.away", installed / "hubspot-relay")
    assert missing.returncode != 0 and "hubspot-relay" in missing.stderr
