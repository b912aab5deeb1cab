"""A last, partial upsert call waits for the next cycle's contacts (issue 11): a table of leased
batches -> the contacts upserted now and the messages handed back to wait."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_relay.delivery.planner import Planner
from hubspot_relay.delivery.stages.contacts import CONTACTS
from hubspot_relay.options import DeliveryOptions
from hubspot_relay.queue.protocol import Leased
from hubspot_relay.segment.messages import InvalidMessage, accept
from tests.strategies import messages

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
    planner = Planner("acct", DeliveryOptions(contact_batch=5, batch_wait_ms=1000), clock=lambda: NOW)
    busy = frozenset(f"u{i}@x.com" for i in range(held))
    plan = planner.plan([identify(i, age) for i in range(n)], {}, busy, more_waiting=full)
    s = plan.verdicts
    assert (len(plan.of(CONTACTS)), len(s.deferred)) == expected
    assert len(s.carried) == held + expected[1]  # the held ones wait for their call in flight


@given(
    st.lists(st.tuples(messages(), st.floats(0, 5)), min_size=1, max_size=12),
    st.booleans(),
    st.sets(st.sampled_from([f"u{i}@x.com" for i in range(3)])),
)
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_batch_is_planned_with_only_a_tail_left_to_wait(
    tmp_path: Path, batch: list[tuple[dict[str, Any], float]], full: bool, held: set[str]
) -> None:
    """Whatever the messages and their ages: planning does not fail, and what waits for a
    fuller call is a tail of the batch (so each contact's order is kept), never a gap in it."""
    leased = []
    for i, (msg, age) in enumerate(batch):
        try:
            accepted = accept(json.dumps(msg, ensure_ascii=False).encode(), received_at=NOW - age)
        except InvalidMessage:
            continue
        leased.append(Leased(i, "web", accepted.message_id, accepted.type, accepted.body, NOW - age, None, 1))
    planner = Planner("acct", DeliveryOptions(contact_batch=2, batch_wait_ms=1000), clock=lambda: NOW)
    s = planner.plan(leased, {}, frozenset(held), more_waiting=full).verdicts
    ids = [m.id for m in leased]
    if s.deferred:
        first = min(ids.index(i) for i in s.deferred)
        assert all(i in s.carried or i in s.dead or i in s.skipped for i in ids[first:])
