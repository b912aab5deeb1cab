"""HubSpot's API budgets per token: a rolling 10-second window, a daily quota (reset at
midnight UTC here), the seed era's per-second limit, and the search endpoints' own
per-second limit. Calls refused with a 429 do not count against the budget."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    per_10s: int = 100
    per_day: int = 250_000
    per_second: int | None = None  # the seed's "10 calls per second" (legacy API keys)
    search_per_second: int = 5


class TokenLimiter:
    """The usage of one token; `admit` says which policy a new call breaks, or records it."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._window: deque[float] = deque()  # admitted calls in the last 10 s
        self._second: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day = -1
        self._day_count = 0

    def _trim(self, now: float) -> None:
        for q, span in ((self._window, 10.0), (self._second, 1.0), (self._search, 1.0)):
            while q and q[0] <= now - span:
                q.popleft()
        day = int(now // 86_400)
        if day != self._day:
            self._day, self._day_count = day, 0

    def admit(self, now: float, *, search: bool = False) -> str | None:
        self._trim(now)
        b = self.budget
        if self._day_count >= b.per_day:
            return "DAILY"
        if len(self._window) >= b.per_10s:
            return "TEN_SECONDLY_ROLLING"
        if b.per_second is not None and len(self._second) >= b.per_second:
            return "SECONDLY"
        if search and len(self._search) >= b.search_per_second:
            return "SECONDLY"
        self._window.append(now)
        self._second.append(now)
        if search:
            self._search.append(now)
        self._day_count += 1
        return None

    def headers(self, now: float) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers HubSpot sends with every authenticated response."""
        self._trim(now)
        b = self.budget
        out = {
            "X-HubSpot-RateLimit-Daily": str(b.per_day),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, b.per_day - self._day_count)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(b.per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, b.per_10s - len(self._window))),
        }
        if b.per_second is not None:
            out["X-HubSpot-RateLimit-Secondly"] = str(b.per_second)
            out["X-HubSpot-RateLimit-Secondly-Remaining"] = str(max(0, b.per_second - len(self._second)))
        return out
