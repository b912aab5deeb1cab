"""One HubSpot account's budget shared by every relay process, kept in Redis.

The same rules as `AccountLimiter` (a rolling window held 5% longer than HubSpot's, a per-second
limit, a daily count, pauses a 429 asks for, the share left to other integrations), but the
calls counted, the pauses and the limits learned from HubSpot's headers live in Redis, so that
three processes together stay under the one budget HubSpot gives the portal. Taking a call is
one Lua script: processes cannot both take the last slot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis

from ..errors import DailyLimitReached
from ..hubspot.ratelimit import SLACK, AccountLimiter, _number, next_midnight_utc
from ..redis_values import text

# ARGV: now_ms, per_window, window_ms, per_second (0: none), second_ms, per_day, member, day, midnight_ms
# Returns {0, calls in window, calls today} when the call is counted, {1, wait_ms} to wait, or
# {2, until_ms} when the daily limit is reached.
_ACQUIRE = """
local K = KEYS[1]
local now, per_window, window_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per_second, second_ms, per_day = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local member, day, midnight = ARGV[7], ARGV[8], tonumber(ARGV[9])
local daily = tonumber(redis.call('GET', K .. ':daily') or '0')
if daily > now then return {2, daily} end
local today = tonumber(redis.call('GET', K .. ':day:' .. day) or '0')
if today >= per_day then
  redis.call('SET', K .. ':daily', midnight, 'PX', math.max(1, midnight - now))
  return {2, midnight}
end
local W, S = K .. ':w', K .. ':s'
redis.call('ZREMRANGEBYSCORE', W, '-inf', now - window_ms)
redis.call('ZREMRANGEBYSCORE', S, '-inf', now - second_ms)
local wait = math.max(0, tonumber(redis.call('GET', K .. ':pause') or '0') - now)
local n = redis.call('ZCARD', W)
if n >= per_window then
  local at = redis.call('ZRANGE', W, n - per_window, n - per_window, 'WITHSCORES')
  wait = math.max(wait, tonumber(at[2]) + window_ms - now)
end
if per_second > 0 then
  local m = redis.call('ZCARD', S)
  if m >= per_second then
    local at = redis.call('ZRANGE', S, m - per_second, m - per_second, 'WITHSCORES')
    wait = math.max(wait, tonumber(at[2]) + second_ms - now)
  end
end
if wait > 0 then return {1, math.ceil(wait)} end
redis.call('ZADD', W, now, member)
redis.call('PEXPIRE', W, window_ms * 2)
if per_second > 0 then
  redis.call('ZADD', S, now, member)
  redis.call('PEXPIRE', S, second_ms * 2)
end
local count = redis.call('INCR', K .. ':day:' .. day)
redis.call('EXPIRE', K .. ':day:' .. day, 172800)
return {0, n + 1, count}
"""

# ARGV: now_ms, window_ms, per_window, ours_left_by_hubspot: other apps' calls fill the window.
_OTHERS = """
local K = KEYS[1]
local now, window_ms, per_window, theirs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                                           tonumber(ARGV[4])
local W = K .. ':w'
redis.call('ZREMRANGEBYSCORE', W, '-inf', now - window_ms)
local ours = per_window - redis.call('ZCARD', W)
for i = 1, math.max(0, ours - theirs) do
  redis.call('ZADD', W, now, 'other:' .. now .. ':' .. i .. ':' .. math.random(1000000000))
end
redis.call('PEXPIRE', W, window_ms * 2)
return math.max(0, ours - theirs)
"""

# ARGV: until_ms: pause every process until then (a later pause wins).
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ms = tonumber(ARGV[1])
if until_ms > current then redis.call('SET', KEYS[1], until_ms, 'PX', math.max(1, until_ms - ARGV[2])) end
return 1
"""

REFRESH_S = 5.0  # how often a process adopts limits another process learned


class SharedLimiter(AccountLimiter):
    def __init__(
        self,
        redis: aioredis.Redis,
        key: str,
        per_10s: int,
        per_day: int,
        per_second: int | None = None,
        *,
        reserve: float = 0.0,
        learn: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(per_10s, per_day, per_second, reserve=reserve, learn=learn, clock=clock, sleep=sleep)
        self.redis = redis
        self.key = key
        self._acquire = redis.register_script(_ACQUIRE)
        self._others = redis.register_script(_OTHERS)
        self._pause = redis.register_script(_PAUSE)
        self._refreshed = 0.0
        self._seen = {"window": 0, "today": 0}

    async def _refresh(self, now: float) -> None:
        """Adopt the limits another process learned (the shared figures win)."""
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        shared = {text(k): text(v) for k, v in (await self.redis.hgetall(f"{self.key}:budget")).items()}
        for name in ("window", "day", "second"):
            if name in shared and shared[name].isdigit():
                told = int(shared[name])
                if (usable := self._learn(name, told)) is not None:
                    setattr(
                        self, {"window": "per_10s", "day": "per_day", "second": "per_second"}[name], usable
                    )
        if self.learn and shared.get("window_ms", "").isdigit():
            self.window_s = int(shared["window_ms"]) / 1000

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                await self._refresh(now)
                reply = await self._acquire(
                    keys=[self.key],
                    args=[
                        int(now * 1000),
                        self.per_10s,
                        int(self.window_s * SLACK * 1000),
                        self.per_second or 0,
                        int(SLACK * 1000),
                        self.per_day,
                        f"{int(now * 1000)}:{uuid.uuid4().hex[:12]}",
                        int(now // 86_400),
                        int(next_midnight_utc(now) * 1000),
                    ],
                )
                status = int(reply[0])
                if status == 0:
                    self._seen = {"window": int(reply[1]), "today": int(reply[2])}
                    self._day_count = int(reply[2])
                    return
                if status == 2:
                    self._daily_until = int(reply[1]) / 1000
                    raise DailyLimitReached(self._daily_until)
                await self._sleep(int(reply[1]) / 1000)

    async def after_call(self, headers: Mapping[str, str]) -> None:
        now = self.clock()
        if self.learn_limits(headers):
            await self.redis.hset(
                f"{self.key}:budget",
                mapping={
                    k: v
                    for k, v in {
                        "window": self.budget["window"],
                        "day": self.budget["day"],
                        "second": self.budget["second"],
                        "window_ms": int(self.window_s * 1000),
                    }.items()
                    if v is not None
                },
            )
        theirs = self.others_left(headers)
        if theirs is not None and theirs < self.per_10s - self._seen["window"]:
            await self._others(
                keys=[self.key],
                args=[int(now * 1000), int(self.window_s * SLACK * 1000), self.per_10s, theirs],
            )
        if _number(headers, "x-hubspot-ratelimit-daily-remaining") == 0:
            await self._pause(
                keys=[f"{self.key}:daily"], args=[int(next_midnight_utc(now) * 1000), int(now * 1000)]
            )

    async def after_429(self, policy: str, retry_after: float | None) -> None:
        now = self.clock()
        if policy == "DAILY":
            until = now + retry_after if retry_after else next_midnight_utc(now)
            await self._pause(keys=[f"{self.key}:daily"], args=[int(until * 1000), int(now * 1000)])
            return
        pause = retry_after if retry_after is not None else (1.0 if policy == "SECONDLY" else 10.0)
        await self._pause(keys=[f"{self.key}:pause"], args=[int((now + pause) * 1000), int(now * 1000)])

    def usage(self) -> dict[str, Any]:
        """As the last call taken by this process saw it: all processes' calls counted."""
        now = self.clock()
        return {
            "calls_today": self._seen["today"],
            "per_day": self.per_day,
            "budget_used_today": round(self._seen["today"] / self.per_day, 4) if self.per_day else None,
            "calls_last_10s": self._seen["window"],
            "per_10s": self.per_10s,
            "hubspot_per_10s": self.budget["window"],
            "reserve": self.reserve,
            "daily_limit_until": self._daily_until if self._daily_until > now else None,
            "shared": True,
        }
