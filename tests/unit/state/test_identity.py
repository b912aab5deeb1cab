"""The identity map: ids tied to emails, traits waiting for an email; what it keeps in memory
never disagrees with the file (a restart reads the same answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.state import identity as identity_module
from hubspot_relay.state.identity import IdentityMap


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "identity.sqlite3"


def reopened(path: Path) -> IdentityMap:
    return IdentityMap(path)


@pytest.mark.parametrize(
    ("steps", "ids", "expected"),
    [
        # (link ids -> email)..., the ids asked about, the email expected
        ([(("u1",), "a@x.io")], ("u1",), "a@x.io"),
        ([(("u1", "anon1"), "a@x.io")], ("anon1",), "a@x.io"),
        ([(("u1",), "a@x.io"), (("u1",), "b@x.io")], ("u1",), "b@x.io"),  # a later tie wins
        ([(("u1",), "a@x.io"), (("u2",), "b@x.io")], ("u2", "u1"), "b@x.io"),  # the first id known
        ([(("u1",), "a@x.io")], ("nobody",), None),
        ([(("u1",), "a@x.io"), (("u1", "anon9"), None)], ("anon9",), "a@x.io"),  # tied through u1
    ],
)
def test_ties(
    path: Path, steps: list[tuple[tuple[str, ...], str | None]], ids: tuple[str, ...], expected: str | None
) -> None:
    m = IdentityMap(path)
    for link_ids, email in steps:
        m.link("web", link_ids, email)
    assert m.email_for("web", ids) == expected
    m.close()
    again = reopened(path)
    assert again.email_for("web", ids) == expected
    again.close()


def test_sources_are_separate(path: Path) -> None:
    m = IdentityMap(path)
    m.link("web", ("u1",), "a@x.io")
    assert m.email_for("ios", ("u1",)) is None


def test_waiting_traits_are_taken_once(path: Path) -> None:
    m = IdentityMap(path)
    m.remember("web", ("anon1",), {"plan": "free"})
    m.remember("web", ("anon1",), {"plan": "pro", "company": "Acme"})
    assert m.link("web", ("anon1",), "a@x.io") == ("a@x.io", {"plan": "pro", "company": "Acme"})
    assert m.link("web", ("anon1",), "a@x.io") == ("a@x.io", {})
    m.close()
    assert reopened(path).take_pending("web", ["anon1"]) == {}


def test_a_restart_finds_traits_still_waiting(path: Path) -> None:
    m = IdentityMap(path)
    m.link("web", ("u1",), "a@x.io")  # in memory now
    m.remember("web", ("anon2",), {"plan": "free"})
    m.close()
    again = reopened(path)
    assert again.link("web", ("anon2", "u1"), None) == ("a@x.io", {"plan": "free"})


def test_a_changed_tie_is_written(path: Path) -> None:
    m = IdentityMap(path)
    m.link("web", ("u1",), "a@x.io")
    m.link("web", ("u1",), "a@x.io")  # known: nothing written
    m.link("web", ("u1",), "b@x.io")
    m.close()
    assert reopened(path).email_for("web", ("u1",)) == "b@x.io"


def test_memory_is_bounded(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity_module, "KNOWN_IDS_MAX", 10)
    m = IdentityMap(path)
    for i in range(25):
        m.link("web", (f"u{i}",), f"p{i}@x.io")
    assert len(m._known) <= 10
    assert [m.email_for("web", (f"u{i}",)) for i in range(25)] == [f"p{i}@x.io" for i in range(25)]


def test_delivery_sends_traits_another_process_left_waiting(path: Path) -> None:
    """A shared map's `flush` may hand back traits kept by another process while this batch tied
    their id: they are upserted with the contact, under what the batch itself sets."""
    import time as _time

    from hubspot_relay.delivery.identities import replay
    from hubspot_relay.delivery.planner import Planner
    from hubspot_relay.delivery.stages.contacts import CONTACTS, add_late
    from hubspot_relay.options import DeliveryOptions
    from hubspot_relay.queue.protocol import Leased

    class Raced(IdentityMap):
        def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, object]]:
            return {("web", "u1"): {"plan": "pro", "firstname": "Old"}}

    body = b'{"type":"identify","userId":"u1","messageId":"m1","traits":{"email":"a@x.io","firstName":"New"}}'
    # received a minute ago: not a partial upsert call that waits for more (`batch_wait_ms`)
    leased = [Leased(7, "web", "m1", "identify", body, _time.time() - 60, None, 1)]
    identity = Raced(path)
    planner = Planner("acct", DeliveryOptions())
    plan = planner.plan(leased, identity.snapshot({("web", "u1")}))
    add_late(plan, replay(identity, plan.identity))
    pending = plan.of(CONTACTS)["a@x.io"]
    assert pending.properties["plan"] == "pro"
    assert pending.properties["firstname"] == "New"  # the batch's own value wins over the older one
    assert 7 in pending.ids
    assert identity.email_for("web", ["u1"]) == "a@x.io"  # the tie is written
