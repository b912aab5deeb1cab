"""The systemd unit's sandboxing, scored by systemd itself (`systemd-analyze security`): an exposure
of 3.0 or less, and a unit stripped of its sandboxing scored far worse (the score means something)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.helpers import ROOT

UNIT = ROOT / "deploy" / "systemd" / "hubspot-relay.service"
SANDBOXING = re.compile(
    r"^(Capability|Ambient|NoNew|Protect|Private|Restrict|Remove|Lock|Memory|SystemCall|Device|UMask)\w*=.*\n",
    re.M,
)


def exposure(analyze: str, unit: Path) -> float:
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout + result.stderr)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    return float(found.group(1))


def test_the_unit_is_sandboxed_to_an_exposure_of_3_or_less(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "scoring the systemd unit")
    score = exposure(analyze, UNIT)
    assert score <= 3.0, f"exposure {score}"
    threshold = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=30", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert threshold.returncode == 0, threshold.stdout[-2000:]

    bare = tmp_path / UNIT.name
    bare.write_text(SANDBOXING.sub("", UNIT.read_text()))
    assert "ProtectSystem" not in bare.read_text()
    assert exposure(analyze, bare) > 6.0


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ExecStart", "/opt/hubspot-relay/bin/hubspot-relay serve --config /etc/hubspot-relay/relay.toml"),
        ("EnvironmentFile", "/etc/hubspot-relay/env"),
        ("StateDirectory", "hubspot-relay"),
        ("User", "hubspot-relay"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
    ],
)
def test_the_unit_says(key: str, expected: str) -> None:
    values = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.M)
    assert expected in values, values


def test_the_unit_waits_longer_than_the_relay_takes_to_stop() -> None:
    """TimeoutStopSec above the relay's own deadlines for a clean stop (uvicorn's graceful
    shutdown, then delivery's grace), so that systemd never SIGKILLs a relay that is draining."""
    from hubspot_relay.cli.serve import GRACEFUL_SHUTDOWN_S
    from hubspot_relay.server import STOP_GRACE_SECONDS

    stop = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.M)
    assert stop and int(stop.group(1)) > GRACEFUL_SHUTDOWN_S + STOP_GRACE_SECONDS + 10
