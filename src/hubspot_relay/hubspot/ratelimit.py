"""One limiter per HubSpot account, shared by every worker that calls it.

It keeps the account under its budget by itself (a rolling 10-second window, the seed's
per-second limit, a daily quota), learns the budget from HubSpot's `X-HubSpot-RateLimit-*`
headers (and other apps' use of it), leaves a share for the portal's other integrations,
and pauses as a 429's `policyName` or
`Retry-After` demands. A daily limit raises `DailyLimitReached` with the reset time, so
the caller leaves its messages queued instead of waiting in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import DailyLimitReached

# Windows are held a little longer than HubSpot's, so that calls sent just inside a window
# cannot arrive just inside the next one's count at HubSpot.
SLACK = 1.05


def next_midnight_utc(now: float) -> float:
    return (now // 86_400 + 1) * 86_400


def _number(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


class AccountLimiter:
    """The account's budget as HubSpot sets it (`per_10s`, `per_day`, `per_second`), less the
    `reserve` share left for the portal's other integrations, is what the relay may use.

    With `learn`, HubSpot's `X-HubSpot-RateLimit-Max`, `-Daily`, `-Secondly` and
    `-Interval-Milliseconds` headers replace the starting figures, up as well as down (a
    Professional portal starts at the tier's 190, an unknown one at 100 until HubSpot says);
    without it (limits set by hand) they only lower them.
    """

    def __init__(
        self,
        per_10s: int,
        per_day: int,
        per_second: int | None = None,
        *,
        reserve: float = 0.0,
        learn: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.reserve = reserve
        self.learn = learn
        self.budget = {"window": per_10s, "day": per_day, "second": per_second}
        self.window_s = 10.0
        self.per_10s = self._usable(per_10s)
        self.per_day = self._usable(per_day)
        self.per_second = self._usable(per_second) if per_second is not None else None
        self.clock = clock
        self._sleep = sleep
        self._window: deque[float] = deque()
        self._second: deque[float] = deque()
        self._day = -1
        self._day_count = 0
        self._paused_until = 0.0
        self._daily_until = 0.0
        self._lock = asyncio.Lock()

    def _usable(self, budget: int) -> int:
        return max(1, int(budget * (1.0 - self.reserve)))

    def _trim(self, now: float) -> None:
        while self._window and self._window[0] <= now - self.window_s * SLACK:
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
            wait = max(wait, self._window[len(self._window) - self.per_10s] + self.window_s * SLACK - now)
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
                await self._sleep(wait)

    def usage(self) -> dict[str, Any]:
        """Calls counted today (UTC, by this process) and in the last window, against the budget."""
        now = self.clock()
        self._trim(now)
        return {
            "calls_today": self._day_count,
            "per_day": self.per_day,
            "budget_used_today": round(self._day_count / self.per_day, 4) if self.per_day else None,
            "calls_last_10s": len(self._window),
            "per_10s": self.per_10s,
            "hubspot_per_10s": self.budget["window"],
            "reserve": self.reserve,
            "daily_limit_until": self._daily_until if self._daily_until > now else None,
        }

    def _learn(self, key: str, told: int | None) -> int | None:
        """HubSpot's figure for one budget, when it is one to adopt (a change we may follow)."""
        current = self.budget[key]
        if told is None or told < 1 or told == current:
            return None
        if self.learn or current is None or told < current:
            self.budget[key] = told
            return self._usable(told)
        return None

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take HubSpot's view of the budget: its limits (see the class), and its count of calls
        left in the window, which includes other apps' calls."""
        now = self.clock()
        self.learn_limits(headers)
        self._trim(now)
        theirs = self.others_left(headers)
        if theirs is not None:
            ours = self.per_10s - len(self._window)
            for _ in range(max(0, ours - theirs)):
                self._window.append(now)  # calls we did not make (another app's) fill the window
        if _number(headers, "x-hubspot-ratelimit-daily-remaining") == 0:
            self._daily_until = next_midnight_utc(now)

    def learn_limits(self, headers: Mapping[str, str]) -> bool:
        """Adopt HubSpot's limits from its headers; True when one changed."""
        before = (self.per_10s, self.per_day, self.per_second, self.window_s)
        interval = _number(headers, "x-hubspot-ratelimit-interval-milliseconds")
        if interval is not None and 1_000 <= interval <= 86_400_000 and self.learn:
            self.window_s = interval / 1000
        if (usable := self._learn("window", _number(headers, "x-hubspot-ratelimit-max"))) is not None:
            self.per_10s = usable
        if (usable := self._learn("day", _number(headers, "x-hubspot-ratelimit-daily"))) is not None:
            self.per_day = usable
        if (usable := self._learn("second", _number(headers, "x-hubspot-ratelimit-secondly"))) is not None:
            self.per_second = usable
        return before != (self.per_10s, self.per_day, self.per_second, self.window_s)

    def others_left(self, headers: Mapping[str, str]) -> int | None:
        """HubSpot's count of calls left in the window, in terms of our share of it (its
        "remaining" counts the whole budget; ours stops short of the reserve)."""
        remaining = _number(headers, "x-hubspot-ratelimit-remaining")
        window = self.budget["window"]
        assert window is not None  # set from per_10s, which every limiter has
        return None if remaining is None else remaining - (window - self.per_10s)

    async def after_call(self, headers: Mapping[str, str]) -> None:
        """What the client reports after each answer (a shared limiter writes it through)."""
        self.observe(headers)

    async def after_429(self, policy: str, retry_after: float | None) -> None:
        self.rate_limited(policy, retry_after)

    def rate_limited(self, policy: str, retry_after: float | None) -> None:
        """A 429: pause everyone as its policy demands."""
        now = self.clock()
        if policy == "DAILY":
            self._daily_until = now + retry_after if retry_after else next_midnight_utc(now)
            return
        pause = retry_after if retry_after is not None else (1.0 if policy == "SECONDLY" else 10.0)
        self._paused_until = max(self._paused_until, now + pause)
