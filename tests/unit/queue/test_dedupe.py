from __future__ import annotations

import pytest

from hubspot_relay.queue.dedupe import RecentKeys


@pytest.mark.parametrize(
    ("size", "claims", "expected"),
    [
        (3, ["a", "b", "a"], [True, True, False]),
        (2, ["a", "b", "c", "a"], [True, True, True, True]),  # "a" fell out of the window
        (2, ["a", "b", "c", "c", "b"], [True, True, True, False, False]),
        (1, ["a", "a", "b", "a"], [True, False, True, True]),
    ],
)
def test_claims(size: int, claims: list[str], expected: list[bool]) -> None:
    keys = RecentKeys(size)
    assert [keys.claim(k) for k in claims] == expected
    assert len(keys) <= size


def test_release_and_initial_keys() -> None:
    keys = RecentKeys(10, [("web", "m1"), ("web", "m2")])
    assert ("web", "m1") in keys and not keys.claim(("web", "m2"))
    keys.release(("web", "m1"))
    assert keys.claim(("web", "m1"))


def test_stays_fast_when_full() -> None:
    keys = RecentKeys(1000)
    for i in range(200_000):  # O(1) per claim: quadratic trimming would take minutes here
        keys.claim(i)
    assert len(keys) == 1000 and 199_999 in keys and 0 not in keys


def test_claim_new_matches_claim() -> None:
    one, many = RecentKeys(3), RecentKeys(3)
    keys = ["a", "b", "a", "c", "d", "e", "a", "b"]
    assert many.claim_new(keys) == [True, True, False, True, True, True, False, False]
    assert [one.claim(k) for k in keys] == [True, True, False, True, True, True, True, True]
    assert len(many) == 3  # trimmed once, at the end of the batch
