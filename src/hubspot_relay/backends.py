"""The one seam between the relay and where it keeps its state: for a configuration, the queue,
the identity map, the caches and limiters processes share, and partition ownership, embedded
(SQLite files in the data folder) or shared by many processes (one Redis).

Only this module names a backend class: the server, the CLI and delivery work through the
`Queue`, `Identities`, `SharedCache` and `AccountLimiter` contracts. It also says which errors
are the store failing (`Backend.machine_failures`): a machine failure, never a message's fault.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .config import Account, Config
from .errors import MACHINE_FAILURES
from .hubspot.ratelimit import AccountLimiter
from .queue.partitions import Ownership
from .queue.protocol import Queue
from .queue.redis_streams import RedisQueue, free_memory
from .queue.sqlite import SQLiteQueue
from .secrets import redacted_url
from .segment.backpressure import Backpressure
from .state.identity import Identities, IdentityMap
from .state.redis_identity import RedisIdentityMap
from .state.regulations import RedisRegulations, Regulations, SQLiteRegulations
from .state.shared_cache import RedisCache, SharedCache
from .state.shared_limiter import SharedLimiter


class Membership(Protocol):
    """Which live process delivers which partition (Redis); `members` counts the processes."""

    members: list[str]

    async def beat(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def leave(self) -> None: ...


def queue_path(config: Config) -> Path:
    return config.data_dir / "queue.sqlite3"


def identity_path(config: Config) -> Path:
    return config.data_dir / "identity.sqlite3"


@dataclass
class Backend:
    """A configuration's stores, opened lazily: `queue` is built at once (unopened), the rest on
    demand."""

    config: Config
    queue: Queue
    machine_failures: tuple[type[BaseException], ...] = field(default=MACHINE_FAILURES)

    @property
    def shared(self) -> bool:
        """Processes share the queue, the budget and the caches (Redis)."""
        return isinstance(self.queue, RedisQueue)

    @property
    def where(self) -> str:
        """Where the queue lives, for people (a Redis URL without its password)."""
        if self.config.queue_url:
            return redacted_url(self.config.queue_url.reveal())
        return str(queue_path(self.config))

    @property
    def described(self) -> str:
        if self.config.queue_url:
            return (
                f"{self.where} (Redis Streams, {self.config.queue_partitions} partitions, shared with every "
                "relay process using it)"
            )
        return f"{self.where} (SQLite, WAL, group commit)"

    def exists(self) -> bool:
        """Whether there is anything to read without a relay running (a Redis queue always is)."""
        return bool(self.config.queue_url) or queue_path(self.config).exists()

    def log_fields(self) -> dict[str, object]:
        q = self.queue
        if isinstance(q, RedisQueue):
            return {"redis": q.path, "partitions": q.partitions, "consumer": q.consumer}
        return {"path": self.where}

    def identity(self, *, if_exists: bool = False) -> Identities | None:
        """The identity map (None with `if_exists` when an embedded one was never written)."""
        if self.config.queue_url:
            return RedisIdentityMap(self.config.queue_url.reveal(), prefix=self.config.queue_prefix)
        if if_exists and not identity_path(self.config).exists():
            return None
        return IdentityMap(identity_path(self.config))

    def regulations(self) -> Regulations:
        """Right-to-be-forgotten requests and suppressions: Redis for every process, else a file."""
        if self.config.queue_url:
            return RedisRegulations(self.config.queue_url.reveal(), prefix=self.config.queue_prefix)
        return SQLiteRegulations(self.config.data_dir / "regulations.sqlite3")

    def cache(self) -> SharedCache | None:
        """Catalogs and event definitions read once for every process (None: one process)."""
        q = self.queue
        return RedisCache(q.redis, self.config.queue_prefix) if isinstance(q, RedisQueue) else None

    def limiter(self, account: Account) -> AccountLimiter:
        """One account's budget: in this process, or in Redis for every process that shares it."""
        limits = account.limits
        q = self.queue
        if isinstance(q, RedisQueue):
            return SharedLimiter(
                q.redis,
                f"{self.config.queue_prefix}:budget:{account.hub_id}:{account.api_mode}",
                limits.per_10s,
                limits.per_day,
                limits.per_second,
                reserve=limits.reserve,
                learn=limits.learn,
            )
        return AccountLimiter(
            limits.per_10s, limits.per_day, limits.per_second, reserve=limits.reserve, learn=limits.learn
        )

    def ownership(self) -> Membership | None:
        """Partition ownership among live processes (Redis), else None: one process has all."""
        q = self.queue
        return Ownership(q) if isinstance(q, RedisQueue) else None

    def backpressure(self) -> Backpressure:
        """Ingest's limits: queued messages per source, and free space where the queue is kept."""
        c = self.config
        q = self.queue
        if isinstance(q, RedisQueue):
            return Backpressure(
                c.max_queued,
                c.min_free_disk_mb,
                c.data_dir,
                disk_free=free_memory(q.url),
                space="Redis's memory (maxmemory)",
            )
        return Backpressure(c.max_queued, c.min_free_disk_mb, c.data_dir)

    async def durability_warning(self) -> str | None:
        """Why acknowledged messages could be lost by the store as it is set up, or None."""
        q = self.queue
        return await q.durability() if isinstance(q, RedisQueue) else None


def backend_for(config: Config, queue: Queue | None = None) -> Backend:
    """The stores a configuration names: SQLite in the data folder, or Redis at `queue_url`."""
    if queue is None:
        if config.queue_url:
            queue = RedisQueue(
                config.queue_url.reveal(), prefix=config.queue_prefix, partitions=config.queue_partitions
            )
        else:
            queue = SQLiteQueue(queue_path(config))
    return Backend(config, queue)


def is_machine_failure(error: BaseException) -> bool:
    return isinstance(error, MACHINE_FAILURES)


__all__ = ["MACHINE_FAILURES", "Backend", "backend_for", "identity_path", "is_machine_failure", "queue_path"]
