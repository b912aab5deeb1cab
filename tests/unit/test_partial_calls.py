"""A last, partial upsert call waits for the next cycle's contacts (issue 11): a table of leased
batches -> the contacts upserted now and the messages handed back to wait."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from hubspot_relay.options import DeliveryOptions
from hubspot_relay.pipeline.identity import IdentityMap
from hubspot_relay.pipeline.planner import Planner
from hubspot_relay.pipeline.queue import Leased
from hubspot_relay.pipeline.settlement import Settlement

NOW = time.time()


def identify(i: int, age_s: float) -> Leased:
    body = {"type": "identify", "userId": f"u{i}", "messageId": f"m{i}", "traits": {"email": f"u{i}@x.com"}}
    return Leased(i, "web", f"m{i}", "identify", orjson.dumps(body), NOW - age_s, None, 1)


CASES = [
    # (contacts leased, their age, lease full, held by a call in flight) -> (upserted now, waiting)
    pytest.param(12, 0.1, False, 0, (10, 2), id="young: the partial call waits"),
    pytest.param(12, 5.0, False, 0, (12, 0), id="old enough: it goes"),
    pytest.param(12, 5.0, True, 0, (10, 2), id="old, but more is queued: it waits"),
    pytest.param(10, 0.1, False, 0, (10, 0), id="full calls only: nothing waits"),
    pytest.param(3, 0.1, False, 0, (0, 3), id="young and alone: all wait"),
    pytest.param(3, 5.0, True, 0, (3, 0), id="a full lease with no full call: it goes"),
    pytest.param(12, 0.1, False, 2, (10, 0), id="held ones counted out: two full calls"),
]


@pytest.mark.parametrize(("n", "age", "full", "held", "expected"), CASES)
def test_a_partial_upsert_call(
    tmp_path: Path, n: int, age: float, full: bool, held: int, expected: tuple[int, int]
) -> None:
    identity = IdentityMap(tmp_path / "identity.sqlite3")
    try:
        planner = Planner(
            "acct", DeliveryOptions(contact_batch=5, batch_wait_ms=1000), identity, clock=lambda: NOW
        )
        s = Settlement(more_waiting=full)
        busy = frozenset(f"u{i}@x.com" for i in range(held))
        (contacts, *_), _ = planner.plan([identify(i, age) for i in range(n)], s, busy)
        assert (len(contacts), len(s.deferred)) == expected
        assert len(s.carried) == held + expected[1]  # the held ones wait for their call in flight
    finally:
        identity.close()
