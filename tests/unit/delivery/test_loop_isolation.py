"""One message never stalls the rest: an exception while translating, coercing or preparing one
message dead-letters that message alone, with the reason; a cycle that fails anyway gives its
lease back; a stop mid-cycle hands the messages back untouched (issue 9, finding 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubspot_relay.delivery import catalog as contacts_module
from hubspot_relay.delivery import planner as planner_module
from hubspot_relay.queue.protocol import State
from tests.harness import Harness

pytestmark = pytest.mark.anyio


def states(h: Harness) -> dict[str, int]:
    rows = h.queue._db.execute("SELECT message_id, state FROM messages").fetchall()
    return {mid: state for mid, state in rows}


def others(n: int) -> list[dict[str, Any]]:
    return [
        {"type": "identify", "userId": f"u{i}", "messageId": f"ok-{i}", "traits": {"email": f"u{i}@x.com"}}
        for i in range(n)
    ]


async def test_a_superscript_digit_in_a_date_trait_does_not_stall_the_lease(h: Harness) -> None:
    # "²".isdigit() is True and int("²") raises: this once failed every delivery cycle.
    await h.send(
        *others(20),
        {"type": "identify", "userId": "p@x.com", "messageId": "odd", "traits": {"closedate": "²"}},
        *others(20)[10:],
    )
    await h.drain()
    assert set(states(h).values()) == {State.DELIVERED}
    assert (await h.contact("p@x.com", "closedate")).get("closedate") in (None, "")
    dropped = h.identity.dropped("sandbox")
    assert any(k == "closedate" and "not a valid" in r for _, _, k, r, _ in dropped)


async def test_a_message_that_cannot_be_translated_is_dead_lettered_alone(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = planner_module.translate

    def translate(msg: dict[str, Any], options: Any) -> Any:
        if msg.get("messageId") == "poison":
            raise KeyError("boom")
        return real(msg, options)

    monkeypatch.setattr(planner_module, "translate", translate)
    await h.send(*others(5), {"type": "identify", "userId": "q@x.com", "messageId": "poison"})
    await h.drain()
    (dead,) = await h.queue.dead_letters()
    assert dead.message_id == "poison" and "could not translate the message: KeyError" in dead.reason
    assert [s for m, s in states(h).items() if m != "poison"] == [State.DELIVERED] * 5


async def test_an_unforeseen_error_later_is_narrowed_down_to_its_message(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = contacts_module.prepare

    def prepare(raw: dict[str, Any], catalog: Any) -> Any:
        if raw.get("firstname") == "Bobby Tables":
            raise RuntimeError("a bug in coercion")
        return real(raw, catalog)

    monkeypatch.setattr(contacts_module, "prepare", prepare)
    bad = {
        "type": "identify",
        "userId": "b@x.com",
        "messageId": "bad",
        "traits": {"firstName": "Bobby Tables"},
    }
    await h.send(*others(30), bad, *others(40)[30:])
    await h.drain()
    (dead,) = await h.queue.dead_letters()
    assert dead.message_id == "bad"
    assert dead.reason.startswith(
        "hubspot-relay could not deliver this message: RuntimeError: a bug in coercion"
    )
    delivered = [m for m, s in states(h).items() if s == State.DELIVERED]
    assert len(delivered) == 40
    assert (await h.contact("u39@x.com", "email"))["email"] == "u39@x.com"


async def test_a_cycle_that_fails_anyway_gives_its_lease_back_then_dead_letters(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_ack(ids: Any, outcome: str = "delivered") -> None:
        raise RuntimeError("queue trouble")

    monkeypatch.setattr(h.queue, "ack", broken_ack)
    await h.send(*others(3))
    await h.delivery.cycle()
    counts = (await h.queue.counts())["web"]
    assert (counts.in_flight, counts.retrying) == (0, 3)  # not "in flight" for ever
    (reason,) = {r for (r,) in h.queue._db.execute("SELECT last_error FROM messages")}
    assert "delivery failed: RuntimeError: queue trouble" in reason
    # It keeps failing: once past the maximum age the messages end as dead letters.
    h.clock.now += h.delivery.options.retry_max_age_s + 1
    await h.delivery.cycle()
    assert (await h.queue.counts())["web"].dead == 3


async def test_a_stop_mid_cycle_hands_the_lease_back_untouched(h: Harness) -> None:
    await h.send(*others(3))
    started = asyncio.Event()
    real_batch = h.client_batch = h.delivery.client.batch

    async def slow_batch(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await asyncio.sleep(3600)
        return await real_batch(*args, **kwargs)

    h.delivery.client.batch = slow_batch  # type: ignore[method-assign]
    task = asyncio.create_task(h.delivery.cycle())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = h.queue._db.execute("SELECT state, attempts, visible_at FROM messages").fetchall()
    assert rows == [(State.READY, 0, 0)] * 3


async def test_a_refused_token_on_events_is_reported_as_the_token(h: Harness) -> None:
    h.delivery.client._headers["Authorization"] = "Bearer revoked"
    await h.send({"type": "track", "userId": "u", "event": "Signed Up", "properties": {"email": "e@x.com"}})
    await h.drain()
    (dead,) = await h.queue.dead_letters()
    assert "access token or API key is refused" in dead.reason
    kinds = [kind for _, kind, _, _ in h.identity.problems()]
    assert kinds == ["http_401"]  # not "custom_events": the events are not what HubSpot refuses
