"""Assembling the process: one delivery loop per account that has sources (HubSpot off counts),
each over the backend's stores, limiter and machine failures; the app opens and closes its
queue and stops its loops within the grace."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hubspot_relay.backends import backend_for
from hubspot_relay.config import Source, sandbox_account
from hubspot_relay.secrets import Secret
from hubspot_relay.server import _recent_row, _stop_within, build_deliveries, create_app
from hubspot_relay.state.identity import IdentityMap
from tests.helpers import sandbox_config

pytestmark = pytest.mark.anyio


def test_one_loop_per_account_with_sources(tmp_path: Path) -> None:
    idle = replace(sandbox_account(), name="idle", hub_id="42")
    cfg = replace(
        sandbox_config(tmp_path, "wk"),
        accounts=(sandbox_account(), idle),
        sources=(
            Source("web", Secret("wk"), "sandbox"),
            Source("ios", Secret("wk2"), "sandbox", enabled=False),
        ),
    )
    identity = IdentityMap(tmp_path / "identity.sqlite3")
    try:
        backend = backend_for(cfg)
        (delivery,) = build_deliveries(backend, identity, lambda: 3)
        assert delivery.account.name == "sandbox"
        assert delivery.sources == ["web", "ios"]  # a source with HubSpot off: its messages are skipped
        assert delivery.planner.disabled == {"ios"}
        assert delivery.machine_failures == backend.machine_failures
        assert delivery.in_flight_share() == max(8, -(-cfg.accounts[0].delivery.max_in_flight // 3))
    finally:
        identity.close()


def test_the_app_opens_and_closes_its_queue(tmp_path: Path) -> None:
    app = create_app(sandbox_config(tmp_path, "wk"), deliver=False)
    with TestClient(app, client=("127.0.0.1", 1)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert (tmp_path / "queue.sqlite3").exists()
    assert not (tmp_path / "identity.sqlite3").exists()  # no delivery: no identity map opened


async def test_tasks_that_outlive_the_grace_are_cancelled() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    stuck = asyncio.create_task(asyncio.sleep(3600))
    await _stop_within([done, stuck], 0.05)
    assert done.done() and not done.cancelled()
    assert stuck.cancelled()


@pytest.mark.parametrize(
    ("body", "error", "expected"),
    [
        (b'{"event":"Signed Up","_metadata":{"bundled":["HubSpot"]}}', None,
         ("Signed Up", "delivered", "HubSpot got it in the browser")),
        (b'{"event":"Signed Up"}', "HubSpot 400: bad", ("Signed Up", "delivered", "HubSpot 400: bad")),
        (b"not json", None, (None, "delivered", "")),
    ],
)  # fmt: skip
def test_a_demo_row(body: bytes, error: str | None, expected: tuple[object, str, str]) -> None:
    row = _recent_row("m1", "track", 3, error, body)
    assert (row["event"], row["state"], row["note"]) == expected
