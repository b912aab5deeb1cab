from __future__ import annotations

from hubspot_relay.sandbox.limits import Budget, TokenLimiter

DAY = 86_400.0


def test_rolling_ten_seconds() -> None:
    lim = TokenLimiter(Budget(per_10s=3, per_day=100))
    t = 1000 * DAY
    assert [lim.admit(t + i * 0.1) for i in range(4)] == [None, None, None, "TEN_SECONDLY_ROLLING"]
    assert lim.headers(t + 0.5)["X-HubSpot-RateLimit-Remaining"] == "0"
    assert lim.admit(t + 9.99) == "TEN_SECONDLY_ROLLING"  # rolling, not a fixed bucket
    assert lim.admit(t + 10.01) is None  # the first call has left the window
    assert lim.headers(t + 10.01)["X-HubSpot-RateLimit-Daily-Remaining"] == "96"


def test_daily_quota_resets_at_midnight_utc() -> None:
    lim = TokenLimiter(Budget(per_10s=100, per_day=2))
    t = 1000 * DAY + DAY - 30  # 30 s before midnight
    assert [lim.admit(t), lim.admit(t + 1), lim.admit(t + 2)] == [None, None, "DAILY"]
    assert lim.admit(t + 31) is None  # after midnight
    assert lim.headers(t + 31)["X-HubSpot-RateLimit-Daily-Remaining"] == "1"


def test_seed_per_second_and_search_limits() -> None:
    lim = TokenLimiter(Budget(per_10s=100, per_day=1000, per_second=2, search_per_second=1))
    t = 1000 * DAY
    assert [lim.admit(t), lim.admit(t + 0.1), lim.admit(t + 0.2)] == [None, None, "SECONDLY"]
    assert lim.admit(t + 1.05, search=True) is None
    assert lim.admit(t + 1.06, search=True) == "SECONDLY"
    assert lim.headers(t + 1.06)["X-HubSpot-RateLimit-Secondly"] == "2"


def test_refused_calls_do_not_count() -> None:
    lim = TokenLimiter(Budget(per_10s=1, per_day=10))
    t = 1000 * DAY
    lim.admit(t)
    for i in range(5):
        assert lim.admit(t + 1 + i) == "TEN_SECONDLY_ROLLING"
    assert lim.headers(t + 6)["X-HubSpot-RateLimit-Daily-Remaining"] == "9"


def test_headers() -> None:
    lim = TokenLimiter(Budget(per_10s=190, per_day=1_000_000))
    lim.admit(5.0)
    assert lim.headers(5.0) == {
        "X-HubSpot-RateLimit-Daily": "1000000",
        "X-HubSpot-RateLimit-Daily-Remaining": "999999",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "189",
    }
