"""The identity overlay (pure) and the replay of a plan's updates into a map, as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.delivery.identities import Keep, Known, Late, Overlay, Tie, replay
from hubspot_relay.state.identity import IdentityMap

SNAPSHOT = {
    ("web", "u1"): Known("ann@x.com"),
    ("web", "a9"): Known(None, {"plan": "free", "seats": 2}),
}


@pytest.mark.parametrize(
    ("ids", "email", "expected", "updates"),
    [
        (["u1"], None, ("ann@x.com", {}), []),  # known, nothing new
        (["u1"], "ann@x.com", ("ann@x.com", {}), []),
        (["u2"], None, (None, {}), []),  # nobody knows u2's email
        (["a9"], "bob@x.com", ("bob@x.com", {"plan": "free", "seats": 2}),
         [Tie("web", ("a9",), "bob@x.com", 7)]),
        (["u1", "a9"], None, ("ann@x.com", {"plan": "free", "seats": 2}),
         [Tie("web", ("u1", "a9"), "ann@x.com", 7)]),
        (["u1"], "new@x.com", ("new@x.com", {}), [Tie("web", ("u1",), "new@x.com", 7)]),  # an email change
    ],
)  # fmt: skip
def test_link(ids: list[str], email: str | None, expected: tuple[Any, Any], updates: list[Tie]) -> None:
    overlay = Overlay(SNAPSHOT)
    assert overlay.link("web", ids, email, 7) == expected
    assert overlay.updates == updates
    assert SNAPSHOT[("web", "a9")].waiting == {"plan": "free", "seats": 2}  # the snapshot is not changed


def test_kept_traits_merge_and_are_taken_once() -> None:
    overlay = Overlay(SNAPSHOT)
    overlay.keep("web", ["a9"], {"plan": "pro"}, 1)
    assert overlay.link("web", ["a9"], "bob@x.com", 2) == ("bob@x.com", {"plan": "pro", "seats": 2})
    assert overlay.link("web", ["a9"], "bob@x.com", 3) == ("bob@x.com", {})
    assert overlay.email_for("web", ["zz", "a9"]) == "bob@x.com"
    assert overlay.updates == [Keep("web", ("a9",), {"plan": "pro"}, 1), Tie("web", ("a9",), "bob@x.com", 2)]


def test_replay_writes_in_order_and_reports_what_is_new(tmp_path: Path) -> None:
    identity = IdentityMap(tmp_path / "identity.sqlite3")
    try:
        identity.remember("web", ["a1"], {"plan": "old"})  # kept by another process after the snapshot
        updates = [Keep("web", ("a2",), {"seats": 3}, 1), Tie("web", ("a1", "a2"), "ann@x.com", 2)]
        late = replay(identity, updates)
        assert late == [Late("ann@x.com", {"plan": "old", "seats": 3}, 2, under=True)]
        assert identity.email_for("web", ["a2"]) == "ann@x.com"
        assert identity.snapshot({("web", "a1")}) == {("web", "a1"): Known("ann@x.com", None)}
    finally:
        identity.close()


class TiedMeanwhile:
    """A shared map where another process tied the id after the snapshot was read."""

    def link(self, source: str, ids: Any, email: str | None) -> tuple[str | None, dict[str, Any]]:
        return email, {}

    def remember(self, source: str, ids: Any, traits: dict[str, Any]) -> str | None:
        return "ann@x.com"

    def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        return {}


def test_kept_traits_of_an_id_tied_meanwhile_go_with_its_contact() -> None:
    late = replay(TiedMeanwhile(), [Keep("web", ("a1",), {"plan": "pro"}, 4)])
    assert late == [Late("ann@x.com", {"plan": "pro"}, 4, under=False)]
