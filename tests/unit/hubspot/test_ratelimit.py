from __future__ import annotations

import pytest

from hubspot_relay.errors import DailyLimitReached
from hubspot_relay.hubspot.ratelimit import SLACK, AccountLimiter

pytestmark = pytest.mark.anyio
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 20_000 * DAY + 100.0
        self.sent: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def calls(limiter: AccountLimiter, clock: Clock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(clock.now)
    return times


def peak(times: list[float], span: float) -> int:
    return max(sum(1 for u in times if t <= u < t + span) for t in times)


async def test_rolling_ten_seconds_and_per_second() -> None:
    clock = Clock()
    lim = AccountLimiter(100, 1_000_000, per_second=10, clock=clock, sleep=clock.sleep)
    times = await calls(lim, clock, 250)
    assert peak(times, 1.0) <= 10 and peak(times, 10.0) <= 100
    assert times[-1] - times[0] == pytest.approx(24 * SLACK, rel=0.01)  # 10 a second, no more, no less


async def test_headers_tighten_the_budget() -> None:
    clock = Clock()
    lim = AccountLimiter(100, 1_000_000, clock=clock, sleep=clock.sleep)
    await lim.acquire()
    lim.observe({"x-hubspot-ratelimit-remaining": "0"})  # another app used the window
    start = clock.now
    await lim.acquire()
    assert clock.now - start == pytest.approx(10 * SLACK)


@pytest.mark.parametrize(
    ("policy", "retry_after", "pause"),
    [("TEN_SECONDLY_ROLLING", None, 10.0), ("SECONDLY", None, 1.0), ("TEN_SECONDLY_ROLLING", 3.0, 3.0)],
)
async def test_429_pauses_as_its_policy_says(policy: str, retry_after: float | None, pause: float) -> None:
    clock = Clock()
    lim = AccountLimiter(100, 1_000_000, clock=clock, sleep=clock.sleep)
    lim.rate_limited(policy, retry_after)
    start = clock.now
    await lim.acquire()
    assert clock.now - start == pytest.approx(pause)


async def test_daily_limit_raises_until_midnight() -> None:
    clock = Clock()
    lim = AccountLimiter(100, 3, clock=clock, sleep=clock.sleep)
    await calls(lim, clock, 3)
    with pytest.raises(DailyLimitReached) as info:
        await lim.acquire()
    assert info.value.resets_at == 20_001 * DAY
    clock.now = 20_001 * DAY + 1
    await lim.acquire()
    lim.rate_limited("DAILY", None)
    with pytest.raises(DailyLimitReached):
        await lim.acquire()


# ---- limits learned from HubSpot, with a share left for other integrations (issue 10) ----------

PRO_HEADERS = {
    "x-hubspot-ratelimit-max": "190",
    "x-hubspot-ratelimit-interval-milliseconds": "10000",
    "x-hubspot-ratelimit-daily": "625000",
}


@pytest.mark.parametrize(
    ("learn", "reserve", "headers", "per_10s", "per_day"),
    [
        (True, 0.0, PRO_HEADERS, 190, 625_000),  # raised: the portal is Professional
        (True, 0.1, PRO_HEADERS, 171, 562_500),  # 10% left for the portal's other integrations
        (False, 0.1, PRO_HEADERS, 90, 225_000),  # limits set by hand: a ceiling headers only lower
        (False, 0.0, {"x-hubspot-ratelimit-max": "50"}, 50, 250_000),  # lowered whatever the setting
        (True, 0.0, {"x-hubspot-ratelimit-max": "abc", "x-hubspot-ratelimit-daily": "-1"}, 100, 250_000),
    ],
)
def test_budget_learned_from_hubspots_headers(
    learn: bool, reserve: float, headers: dict[str, str], per_10s: int, per_day: int
) -> None:
    lim = AccountLimiter(100, 250_000, reserve=reserve, learn=learn, clock=Clock())
    lim.observe(headers)
    assert (lim.per_10s, lim.per_day) == (per_10s, per_day)


async def test_a_learned_budget_is_used_and_not_exceeded() -> None:
    clock = Clock()
    lim = AccountLimiter(100, 1_000_000, reserve=0.1, learn=True, clock=clock, sleep=clock.sleep)
    lim.observe(PRO_HEADERS)
    times = await calls(lim, clock, 600)
    assert peak(times, 10.0) == 171  # 90% of 190, all of it


async def test_hubspots_remaining_counts_the_reserve_too() -> None:
    clock = Clock()
    lim = AccountLimiter(190, 1_000_000, reserve=0.1, clock=clock, sleep=clock.sleep)
    await lim.acquire()
    # HubSpot: 189 left of 190. Ours: 170 left of 171. Nobody else is calling: no phantom calls.
    lim.observe({"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-remaining": "189"})
    assert lim.usage()["calls_last_10s"] == 1
    # Another app made 50 calls: HubSpot says 139 left, so ours is 120.
    lim.observe({"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-remaining": "139"})
    assert lim.per_10s - lim.usage()["calls_last_10s"] == 120
