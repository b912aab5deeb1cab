"""Assembles the relay process: configuration, the queue, and the ASGI app around them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .config import Config
from .pipeline.sqlite_queue import SQLiteQueue
from .segment.ingest import RelayApp, create_ingest_app

log = structlog.get_logger("hubspot_relay.server")

# Delivered messages are kept this long so a client's retry of an old request is recognised.
DEDUPE_WINDOW_SECONDS = 24 * 3600
_PRUNE_EVERY_SECONDS = 600


def queue_path(config: Config) -> Any:
    return config.data_dir / "queue.sqlite3"


def build_queue(config: Config) -> SQLiteQueue:
    return SQLiteQueue(queue_path(config))


async def _prune_forever(queue: SQLiteQueue) -> None:
    while True:
        await asyncio.sleep(_PRUNE_EVERY_SECONDS)
        try:
            removed = await queue.prune_delivered(DEDUPE_WINDOW_SECONDS)
            if removed:
                log.info("pruned delivered messages", count=removed)
        except Exception:
            log.exception("pruning delivered messages failed")


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(config: Config, queue: SQLiteQueue | None = None) -> RelayApp:
    """The relay's ASGI app; it opens the queue on start-up and closes it, drained, on shutdown."""
    q = queue or build_queue(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await q.open()
        pruner = asyncio.create_task(_prune_forever(q))
        log.info("queue open", path=str(q.path))
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await q.close()

    app = create_ingest_app(
        config, q, routes=[Route("/metrics", metrics, methods=["GET"])], lifespan=lifespan
    )
    app.state.queue = q
    app.state.config = config
    return app
