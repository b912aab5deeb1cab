from __future__ import annotations

import pytest

from hubspot_relay.hubspot.ratelimit import SLACK, AccountLimiter, DailyLimitReached

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
