"""Settling a batch: one write per outcome, and messages that failed alike come back together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from hubspot_relay.delivery.settlement import Settlement, backoff, settle
from hubspot_relay.queue.protocol import Leased

pytestmark = pytest.mark.anyio


class RecordingQueue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, ...]] = []

    async def ack(self, ids: Sequence[int], outcome: str = "delivered") -> None:
        self.calls.append(("ack", list(ids)))

    async def release(self, ids: Sequence[int]) -> None:
        self.calls.append(("release", list(ids)))

    async def retry(self, ids: Sequence[int], delay: float, error: str) -> None:
        self.calls.append(("retry", list(ids), delay, error))

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        self.calls.append(("dead", list(ids), reason))


def leased(i: int, attempts: int = 1, received_at: float = 1000.0) -> Leased:
    return Leased(i, "web", f"m{i}", "track", b"{}", received_at, None, attempts)


@pytest.mark.parametrize(
    ("attempts", "jitter", "expected"),
    [(1, 0.0, 0.5), (1, 0.5, 1.0), (2, 0.5, 2.0), (3, 0.0, 2.0), (13, 0.5, 3600.0), (40, 0.99, 3600 * 1.49)],
)
def test_backoff(attempts: int, jitter: float, expected: float) -> None:
    assert backoff(attempts, jitter) == pytest.approx(expected)


async def test_a_batch_that_failed_alike_comes_back_together_in_one_write() -> None:
    q = RecordingQueue()
    s = Settlement()
    s.fail([1, 2, 3], "waiting for an identify", retry_in=0.0)
    s.fail([4], "HubSpot answered 503", retry_in=0.0)
    s.carried.add(5)
    await settle(q, "a", [leased(i) for i in range(1, 7)], s, retry_max_age_s=3600, now=1001.0)
    kinds = [c[0] for c in q.calls]
    assert kinds.count("retry") == 2
    retries = {c[3]: (c[1], c[2]) for c in q.calls if c[0] == "retry"}
    assert retries["waiting for an identify"][0] == [1, 2, 3]
    assert retries["waiting for an identify"][1] == retries["HubSpot answered 503"][1]  # one jitter
    assert ("release", [5]) in q.calls and ("ack", [6]) in q.calls


async def test_retries_past_their_maximum_age_are_dead_letters_with_the_reason() -> None:
    q = RecordingQueue()
    s = Settlement()
    s.fail([1, 2], "HubSpot answered 503", retry_in=0.0)
    await settle(
        q, "a", [leased(1, attempts=7, received_at=0.0), leased(2)], s, retry_max_age_s=100, now=1001.0
    )
    assert ("dead", [1], "gave up after 7 attempts: HubSpot answered 503") in q.calls
    assert [c[1] for c in q.calls if c[0] == "retry"] == [[2]]


@pytest.mark.parametrize(
    ("status", "outcome", "problem"),
    [
        (429, "retry", None),
        (500, "retry", None),
        (503, "retry", None),
        (400, "dead", None),
        (404, "dead", None),
        (409, "dead", None),
        (401, "dead", "http_401"),
        (403, "dead", "http_403"),
    ],
)
def test_the_one_table_of_what_a_refusal_means(status: int, outcome: str, problem: str | None) -> None:
    from hubspot_relay.delivery.settlement import refuse
    from hubspot_relay.hubspot.errors import HubSpotError

    reported: list[tuple[str, str]] = []
    s = Settlement()
    error = HubSpotError.from_response(status, b'{"message": "no"}', {})
    refuse(error, [1, 2], s, report=lambda name, reason: reported.append((name, reason)))
    assert (sorted(s.retry) if outcome == "retry" else sorted(s.dead)) == [1, 2]
    assert not (s.dead if outcome == "retry" else s.retry)
    assert [name for name, _ in reported] == ([problem] if problem else [])
    if status == 401:
        assert "access token or API key is refused" in s.dead[1]


def test_planning_verdicts_are_taken_into_the_batch() -> None:
    batch, planned = Settlement(), Settlement()
    planned.fail([1], "waiting for an email", retry_in=0.0)
    planned.fail([2], "cannot translate")
    planned.skipped.add(3)
    planned.waiting.add(4)
    planned.carried.add(5)
    batch.absorb(planned)
    assert (batch.retry[1][1], batch.dead[2]) == ("waiting for an email", "cannot translate")
    assert (batch.skipped, batch.waiting, batch.carried) == ({3}, {4}, {5})
