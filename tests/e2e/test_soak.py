"""A bounded soak in `make test`: four clients at a steady rate for 60 s, HubSpot answering in
300 ms. Every message is delivered, none is dead-lettered, memory stays flat. (The figures, from
longer runs of bench/soak.py, are in docs/reliability.md; no timing is asserted here.)"""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e


def test_bounded_soak_delivers_everything_with_flat_memory() -> None:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    assert spec and spec.loader
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    seconds = float(os.environ.get("HUBSPOT_RELAY_SOAK_SECONDS", "60"))
    result = soak.run(seconds=seconds, clients=4, rate=100, latency_ms=300)
    print({k: v for k, v in result.items() if k != "samples"})
    assert result["sent"] >= seconds * 100 * 0.8
    assert result["delivered"] == result["sent"] and result["dead"] == 0
    assert result["rss_end_mb"] < result["rss_start_mb"] * 1.5 + 30, "memory grew during the soak"
