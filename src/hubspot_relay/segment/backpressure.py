"""Back-pressure: when the queue or the disk is full, ingest says "later" instead of "yes".

HubSpot takes a few hundred messages a second per account; a flood can be acknowledged a
hundred times faster. Without a limit the queue grows until the disk is gone and no one is told.
Past `max_queued` undelivered messages for a source, or below `min_free_disk_mb` free in the data
folder, ingest answers 429 with `Retry-After` (Segment's clients back off and resend), nothing
already accepted is dropped, and `/health` says why.

The check is on the hot path, so it reads two numbers in memory: the queue's undelivered count
per source, raised by every append and recounted from the queue (which sees deliveries) every
2 s near the limit and every 30 s far from it (a count over millions of rows is not free), and
the free disk space, read every 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("hubspot_relay.backpressure")

REFRESH_SECONDS = 2.0
RECOUNT_FAR_SECONDS = 30.0  # below half the limit a stale count cannot let a flood through
RETRY_AFTER_QUEUE_S = 5
RETRY_AFTER_DISK_S = 60


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str
    retry_after: int


class Backpressure:
    def __init__(
        self,
        max_queued: int,
        min_free_disk_mb: int,
        data_dir: Path,
        *,
        disk_free: Callable[[Path], int | None] = lambda p: shutil.disk_usage(p).free,
        space: str = "the relay's disk",
    ) -> None:
        """`disk_free` and `space`: where the queue keeps messages (the data folder's disk, or
        Redis's memory under its `maxmemory` for the Redis queue: None when it has no limit)."""
        self.max_queued = max_queued
        self.space = space
        self.min_free_bytes = min_free_disk_mb * 1024 * 1024
        self.data_dir = data_dir
        self._disk_free = disk_free
        self.pending: dict[str, int] = {}
        self.free_bytes: int | None = None
        self._was_degraded = False
        self._counted_at = float("-inf")

    def refusal(self, source: str) -> Refusal | None:
        """Why ingest must not take more for `source` now, or None."""
        if self.free_bytes is not None and self.free_bytes < self.min_free_bytes:
            return Refusal(
                "disk_full",
                f"{self.space} has less than {self.min_free_bytes // 1048576} MB free; "
                "retry later (nothing already accepted is lost)",
                RETRY_AFTER_DISK_S,
            )
        if self.pending.get(source, 0) >= self.max_queued:
            return Refusal(
                "queue_full",
                f"{self.max_queued} messages of this source are waiting for HubSpot; "
                "retry later (nothing already accepted is lost)",
                RETRY_AFTER_QUEUE_S,
            )
        return None

    def added(self, source: str, n: int) -> None:
        self.pending[source] = self.pending.get(source, 0) + n

    def update(self, pending: dict[str, int], free_bytes: int | None) -> None:
        self.pending = dict(pending)
        self.free_bytes = free_bytes
        reasons = self.reasons()
        if reasons and not self._was_degraded:
            log.warning("ingest is refusing messages (back-pressure)", reasons=reasons)
        elif self._was_degraded and not reasons:
            log.info("ingest accepts messages again")
        self._was_degraded = bool(reasons)

    def reasons(self) -> list[str]:
        """What /health reports as degraded."""
        out = []
        if self.free_bytes is not None and self.free_bytes < self.min_free_bytes:
            out.append(
                f"{self.space}: {self.free_bytes // 1048576} MB free, "
                f"below min_free_disk_mb={self.min_free_bytes // 1048576}"
            )
        for source, n in sorted(self.pending.items()):
            if n >= self.max_queued:
                out.append(f"source {source!r}: {n} messages queued, max_queued={self.max_queued}")
        return out

    def _recount_due(self, now: float) -> bool:
        near = any(n >= self.max_queued // 2 for n in self.pending.values())
        return now - self._counted_at >= (REFRESH_SECONDS if near else RECOUNT_FAR_SECONDS)

    async def refresh(
        self, pending_counts: Callable[[], Awaitable[dict[str, int]]], *, force: bool = True
    ) -> None:
        now = time.monotonic()
        counts = self.pending
        if force or self._recount_due(now):
            counts = await pending_counts()
            self._counted_at = now
        try:
            free = await asyncio.to_thread(self._disk_free, self.data_dir)
        except OSError:
            free = None
        self.update(counts, free)

    async def watch(
        self, pending_counts: Callable[[], Awaitable[dict[str, int]]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                await self.refresh(pending_counts, force=False)
            except Exception:
                log.exception("back-pressure refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
