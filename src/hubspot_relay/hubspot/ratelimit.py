"""One limiter per HubSpot account, shared by every worker that calls it.

It keeps the account under its budget by itself (a rolling 10-second window, the seed's
per-second limit, a daily quota), tightens itself from HubSpot's `X-HubSpot-RateLimit-*`
headers (other apps may share the budget), and pauses as a 429's `policyName` or
`Retry-After` demands. A daily limit raises `DailyLimitReached` with the reset time, so
the caller leaves its messages queued instead of waiting in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

# Windows are held a little longer than HubSpot's, so that calls sent just inside a window
# cannot arrive just inside the next one's count at HubSpot.
SLACK = 1.05


class DailyLimitReached(Exception):
    def __init__(self, resets_at: float) -> None:
        super().__init__(
            f"HubSpot's daily API limit is reached; delivery resumes at the reset ({resets_at:.0f})"
        )
        self.resets_at = resets_at


def next_midnight_utc(now: float) -> float:
    return (now // 86_400 + 1) * 86_400


class AccountLimiter:
    def __init__(
        self,
        per_10s: int,
        per_day: int,
        per_second: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.per_10s = per_10s
        self.per_day = per_day
        self.per_second = per_second
        self.clock = clock
        self._sleep = sleep
        self._window: deque[float] = deque()
        self._second: deque[float] = deque()
        self._day = -1
        self._day_count = 0
        self._paused_until = 0.0
        self._daily_until = 0.0
        self._lock = asyncio.Lock()

    def _trim(self, now: float) -> None:
        while self._window and self._window[0] <= now - 10.0 * SLACK:
            self._window.popleft()
        while self._second and self._second[0] <= now - 1.0 * SLACK:
            self._second.popleft()
        day = int(now // 86_400)
        if day != self._day:
            self._day, self._day_count = day, 0

    def _wait(self, now: float) -> float:
        self._trim(now)
        if self._daily_until > now:
            raise DailyLimitReached(self._daily_until)
        if self._day_count >= self.per_day:
            self._daily_until = next_midnight_utc(now)
            raise DailyLimitReached(self._daily_until)
        wait = max(0.0, self._paused_until - now)
        if len(self._window) >= self.per_10s:
            wait = max(wait, self._window[len(self._window) - self.per_10s] + 10.0 * SLACK - now)
        if self.per_second is not None and len(self._second) >= self.per_second:
            wait = max(wait, self._second[len(self._second) - self.per_second] + 1.0 * SLACK - now)
        return wait

    async def acquire(self) -> None:
        """Wait for room in the budget, then count one call."""
        async with self._lock:
            while True:
                now = self.clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._window.append(now)
                    self._second.append(now)
                    self._day_count += 1
                    return
                await self._sleep(wait)  # type: ignore[misc]

    def usage(self) -> dict[str, Any]:
        """Calls counted today (UTC, by this process) and in the last 10 s, against the budget."""
        now = self.clock()
        self._trim(now)
        return {
            "calls_today": self._day_count,
            "per_day": self.per_day,
            "budget_used_today": round(self._day_count / self.per_day, 4) if self.per_day else None,
            "calls_last_10s": len(self._window),
            "per_10s": self.per_10s,
            "daily_limit_until": self._daily_until if self._daily_until > now else None,
        }

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take HubSpot's view of the budget when it is tighter than ours."""
        now = self.clock()
        self._trim(now)
        remaining = headers.get("x-hubspot-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            ours = self.per_10s - len(self._window)
            for _ in range(max(0, ours - int(remaining))):
                self._window.append(now)  # calls we did not make (another app's) fill the window
        daily = headers.get("x-hubspot-ratelimit-daily-remaining")
        if daily is not None and daily.isdigit() and int(daily) == 0:
            self._daily_until = next_midnight_utc(now)

    def rate_limited(self, policy: str, retry_after: float | None) -> None:
        """A 429: pause everyone as its policy demands."""
        now = self.clock()
        if policy == "DAILY":
            self._daily_until = now + retry_after if retry_after else next_midnight_utc(now)
            return
        pause = retry_after if retry_after is not None else (1.0 if policy == "SECONDLY" else 10.0)
        self._paused_until = max(self._paused_until, now + pause)
