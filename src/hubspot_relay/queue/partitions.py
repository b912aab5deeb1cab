"""Sharing the Redis queue's partitions among the relay processes that are alive.

Each process beats every second (a sorted set of members, each with its expiry). Who should hold
a partition is decided by rendezvous hashing over the live members, so a process that joins or
leaves moves only its share. Holding is a key with a time to live, renewed by the holder:
- a partition that should be ours and is free is taken; if its last holder did not hand it over
  (it died), its leases are made visible again at once (`RedisQueue.reclaim`);
- after Redis failed or lost a hold (a restart), leases in our partitions that this process does
  not hold (a reply lost with the connection) are made visible again before the next lease;
- a partition we hold that should now be another's is no longer leased from, and is handed over
  once every message we leased there is settled, so one user's messages are never delivered by
  two processes at once;
- a process that dies (a crash, kill -9, the OOM killer) closes its connections to Redis: once
  none of its named connections is seen at two beats in a row its partitions are freed at once;
  a process cut off without closing them (a machine gone from the network) stops renewing and its
  partitions are free after `ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Callable
from typing import cast

import structlog

from ..redis_values import text
from .redis_streams import RedisQueue, client_name

log = structlog.get_logger("hubspot_relay.partitions")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_GIVE_UP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_FORGET = """
redis.call('ZREM', KEYS[1], ARGV[1])
local freed = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    freed = freed + 1
  end
end
return freed
"""


def owner_of(partition: int, members: list[str]) -> str | None:
    """Rendezvous hashing: the member with the highest score for this partition."""
    if not members:
        return None
    return max(members, key=lambda m: (zlib.crc32(f"{m}/{partition}".encode()), m))


class Ownership:
    def __init__(
        self,
        queue: RedisQueue,
        *,
        ttl_s: float = 6.0,
        beat_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.name = queue.consumer
        self.ttl_s = ttl_s
        self.beat_s = beat_s
        self.clock = clock
        self.held: set[int] = set()
        self.members: list[str] = []
        self._unseen: set[str] = set()  # members with no connection at the last beat
        self._can_list_clients = True
        queue.owned = set()  # nothing is leased until the first beat says what is ours

    def _key(self, *parts: object) -> str:
        return self.queue._key(*parts)

    async def beat(self) -> None:
        r = self.queue.redis
        now_ms = int(self.clock() * 1000)
        ttl_ms = int(self.ttl_s * 1000)
        members_key = self._key("members")
        await r.zadd(members_key, {self.name: now_ms + ttl_ms})
        await r.zremrangebyscore(members_key, "-inf", now_ms)
        self.members = sorted(text(cast(bytes, m)) for m in await r.zrange(members_key, 0, -1))
        for dead in await self._disconnected():
            freed = await r.eval(
                _FORGET,
                1 + self.queue.partitions,
                members_key,
                *(self._key("own", p) for p in range(self.queue.partitions)),
                dead,
            )
            self.members.remove(dead)
            log.warning(
                "a relay process is gone (its connections to Redis closed)", process=dead, freed=freed
            )
        wanted = {p for p in range(self.queue.partitions) if owner_of(p, self.members) == self.name}
        for p in sorted(self.held):
            # A hold that lapsed (this process stalled past the time to live, or Redis restarted
            # without it) is taken back if free; left alone if another process has it now. Either
            # way Redis may have lost or kept what we cannot tell: leases there that this process
            # does not hold are made visible again before the next lease (`RedisQueue.suspect`).
            renewed = await r.eval(_RENEW, 1, self._key("own", p), self.name, ttl_ms)
            if not renewed:
                self.queue.suspect()
                if not await r.set(self._key("own", p), self.name, nx=True, px=ttl_ms):
                    self.held.discard(p)
                    log.warning("partition lost to another process", partition=p)
        taken = []
        for p in sorted(wanted - self.held):
            if await r.set(self._key("own", p), self.name, nx=True, px=ttl_ms):
                self.held.add(p)
                taken.append(p)
        if taken:
            reclaimed = await self.queue.reclaim(taken)
            log.info(
                "partitions taken", partitions=taken, leases_reclaimed=reclaimed, members=len(self.members)
            )
        for p in sorted(self.held - wanted):
            if self.queue.leased_here(p) == 0:
                await r.eval(_GIVE_UP, 1, self._key("own", p), self.name)
                self.held.discard(p)
                log.info("partition handed over", partition=p)
        self.queue.owned = self.held & wanted

    async def _disconnected(self) -> list[str]:
        """Members none of whose connections Redis has seen at this beat and the one before (one
        beat alone could be a reconnection). Empty when the server refuses CLIENT LIST (some
        managed services do): then only the time to live tells."""
        if not self._can_list_clients:
            return []
        try:
            clients = await self.queue.redis.client_list(_type="normal")
        except Exception as e:
            self._can_list_clients = False
            log.info(
                "cannot list Redis clients: a dead process is noticed after the time to live", error=str(e)
            )
            return []
        connected = {str(c.get("name", "")) for c in clients}
        unseen = {m for m in self.members if m != self.name and client_name(m) not in connected}
        dead, self._unseen = sorted(unseen & self._unseen), unseen
        return dead

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as e:
                self.queue.suspect()
                log.warning("partition heartbeat failed", error=f"{type(e).__name__}: {e}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.beat_s)

    async def leave(self) -> None:
        """A clean stop: hand every partition over at once (nothing is leased any more)."""
        self.queue.owned = set()
        r = self.queue.redis
        for p in sorted(self.held):
            await r.eval(_GIVE_UP, 1, self._key("own", p), self.name)
        self.held.clear()
        await r.zrem(self._key("members"), self.name)
