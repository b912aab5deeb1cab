"""What relay processes that share a Redis queue also share: HubSpot's property catalogs and
event definitions, so that each is read once for all of them rather than once per process."""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aioredis


class SharedCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...


class RedisCache:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self.redis.get(f"{self.prefix}:cache:{key}")
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self.redis.set(f"{self.prefix}:cache:{key}", value, px=max(1, int(ttl_s * 1000)))
