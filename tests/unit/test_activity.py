"""What the people watching see: counts per minute, the terminal's summary line, the debugger's
trace of what became of each message."""

from __future__ import annotations

from collections import Counter

import pytest

from hubspot_relay.activity import TRACE, Activity, Trace, summary
from tests.harness import Harness


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_per_minute_over_the_last_hour() -> None:
    clock = Clock(60 * 30_000_000)
    a = Activity(clock)
    a.add("received:web", 5)
    clock.now += 60
    a.add("received:web", 2)
    a.add("dead:web")
    clock.now += 61 * 60  # an hour later: the first minute has left
    a.add("received:web", 7)
    series = a.series()
    assert series["start"] == (clock.now // 60 - 59) * 60 and series["minutes"] == 60
    assert series["keys"]["received:web"][-1] == 7 and sum(series["keys"]["received:web"]) == 7
    assert "dead:web" not in series["keys"]
    assert a.total == Counter({"received:web": 14, "dead:web": 1})
    assert len(a._minutes) <= 61


def test_nothing_added_for_zero() -> None:
    a = Activity(Clock())
    a.add("received:web", 0)
    assert not a.total and not a.series()["keys"]


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (Counter(), None),
        (
            Counter({"received:web": 1200, "received:app": 4, "delivered:web": 1180, "calls:main:200": 14}),
            "last 60 s: received 1,204, delivered 1,180, skipped 0, waiting 0, retrying 0, dead 0; "
            "HubSpot calls 14",
        ),
        (
            Counter({"dead:web": 2, "calls:main:400": 1, "calls:main:error": 2, "calls:main:200": 3}),
            "last 60 s: received 0, delivered 0, skipped 0, waiting 0, retrying 0, dead 2; "
            "HubSpot calls 6 (3 failed)",
        ),
        (
            Counter({"refused:web": 3, "skipped:web": 1, "waiting:web": 2}),
            "last 60 s: received 0, delivered 0, skipped 1, waiting 2, retrying 0, dead 0, "
            "refused at ingest 3; HubSpot calls 0",
        ),
    ],
)
def test_summary_line(delta: Counter[str], expected: str | None) -> None:
    assert summary(delta, 60) == expected


def test_the_trace_keeps_the_latest_messages_only() -> None:
    t = Trace(size=3, clock=Clock())
    for i in range(5):
        t.call([("web", f"m{i}", "track")], {"call": "POST /x", "status": 200})
    t.settled("web", "m4", "track", "delivered")
    assert [x.message_id for x in t.latest()] == ["m4", "m3", "m2"]
    assert t.get("web", "m0") is None
    assert t.get("web", "m4") is not None and t.get("web", "m4").outcome == "delivered"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_the_trace_shows_the_calls_a_message_went_into_and_why_others_were_not_sent(
    h: Harness,
) -> None:
    await h.send(
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@x.com"}, "messageId": "id-1"},
        {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "tr-1"},
        {"type": "page", "anonymousId": "a", "messageId": "pg-1", "_metadata": {"bundled": ["HubSpot"]}},
        {"type": "identify", "anonymousId": "a9", "traits": {"firstName": "N"}, "messageId": "id-2"},
    )
    await h.drain()
    identify = TRACE.get("web", "id-1")
    assert identify is not None and identify.outcome == "delivered"
    assert [(s["call"], s["status"], s["inputs"]) for s in identify.steps] == [
        ("POST /crm/objects/2026-09/contacts/batch/upsert", 200, 1)
    ]
    track = TRACE.get("web", "tr-1")
    assert track is not None and track.outcome == "delivered"
    assert track.steps[-1]["call"] == "POST /events/2026-09/send/batch" and track.steps[-1]["status"] in (
        200,
        204,
    )
    page = TRACE.get("web", "pg-1")
    assert page is not None and page.outcome == "skipped" and "browser" in page.reason and not page.steps
    waiting = TRACE.get("web", "id-2")
    assert waiting is not None and waiting.outcome == "waiting" and "email" in waiting.reason
