"""What relay processes that share a Redis queue also share: HubSpot's property catalogs and
event definitions, so that each is read once for all of them rather than once per process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis

from ..redis_values import raw

LOCK_S = 10.0  # how long a process has to read and store what the others wait for
POLL_S = 0.05


class SharedCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def once(self, key: str, ttl_s: float, fetch: Callable[[], Awaitable[bytes]]) -> bytes: ...


class RedisCache:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self.redis.get(f"{self.prefix}:cache:{key}")
        return raw(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self.redis.set(f"{self.prefix}:cache:{key}", value, px=max(1, int(ttl_s * 1000)))

    async def once(self, key: str, ttl_s: float, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached value, or `fetch()`ed by one process while the others wait for it (at
        start-up, every process wants the catalog at once: HubSpot is asked once)."""
        lock = f"{self.prefix}:cache-lock:{key}"
        waited = 0.0
        while True:
            if (cached := await self.get(key)) is not None:
                return cached
            if await self.redis.set(lock, b"1", nx=True, px=int(LOCK_S * 1000)) or waited >= LOCK_S:
                try:
                    value = await fetch()
                    await self.set(key, value, ttl_s)
                    return value
                finally:
                    await self.redis.delete(lock)
            await asyncio.sleep(POLL_S)
            waited += POLL_S
