"""The backend seam: one configuration -> its stores (SQLite in the data folder, or one Redis),
what people are shown of them, and which errors are the store failing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.backends import backend_for, identity_path, queue_path
from hubspot_relay.errors import MACHINE_FAILURES
from hubspot_relay.hubspot.ratelimit import AccountLimiter
from hubspot_relay.secrets import Secret
from tests.helpers import sandbox_config

pytestmark = pytest.mark.anyio


def test_embedded(tmp_path: Path) -> None:
    cfg = sandbox_config(tmp_path, "wk")
    backend = backend_for(cfg)
    assert not backend.shared and not backend.exists()
    assert backend.where == str(queue_path(cfg)) == str(tmp_path / "queue.sqlite3")
    assert backend.described.endswith("(SQLite, WAL, group commit)")
    assert backend.cache() is None and backend.ownership() is None
    assert backend.identity(if_exists=True) is None  # never written: nothing to read
    assert not identity_path(cfg).exists()
    limiter = backend.limiter(cfg.accounts[0])
    assert type(limiter) is AccountLimiter
    assert backend.machine_failures == MACHINE_FAILURES


async def test_shared_on_redis(tmp_path: Path, redis_server: Any) -> None:
    url = redis_server.url.replace("redis://", "redis://:hunter2@")
    cfg = replace(
        sandbox_config(tmp_path, "wk"), queue_url=Secret(url), queue_prefix=f"t-{uuid.uuid4().hex[:8]}"
    )
    backend = backend_for(cfg)
    assert backend.shared and backend.exists()
    assert "hunter2" not in backend.where and "hunter2" not in backend.described
    assert backend.where == redis_server.url.replace("redis://", "redis://***@")
    # The test server has no password: opened through the plain URL.
    backend = backend_for(replace(cfg, queue_url=Secret(redis_server.url)))
    await backend.queue.open()
    try:
        assert backend.cache() is not None
        assert backend.ownership() is not None
        assert type(backend.limiter(cfg.accounts[0])) is not AccountLimiter  # the budget in Redis
        assert backend.log_fields()["partitions"] == cfg.queue_partitions
        warning = await backend.durability_warning()
        assert warning is None  # the test server runs with appendonly yes, appendfsync always
    finally:
        await backend.queue.close()


def test_a_queue_given_is_used(tmp_path: Path) -> None:
    cfg = sandbox_config(tmp_path, "wk")
    q = backend_for(cfg).queue
    assert backend_for(cfg, q).queue is q
