from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def require_tool(name: str, why: str) -> str:
    """A system tool the test needs: skipped locally when missing, a failure in CI (CI=true)."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI ({why}) but is not installed")
    pytest.skip(f"{name} not installed ({why})")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One redis-server for the session (tests keep apart by key prefix)."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"), require_tool("redis-server", "the Redis queue"))
    server.start()
    yield server
    server.stop()
