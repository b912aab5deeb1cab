"""Regulations (deletion and suppression requests) and suppressions, durably kept: the same
contract in SQLite and in Redis (where every process sharing it sees a suppression at once)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubspot_relay.state.regulations import RedisRegulations, Regulation, SQLiteRegulations
from hubspot_relay.translate.subjects import subject_key, subjects_of
from tests.redis_server import RedisServer


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteRegulations(tmp_path / "regulations.sqlite3")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        s = RedisRegulations(server.url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def test_a_regulation_is_kept_with_its_status(store: Any) -> None:
    reg = Regulation.new("SUPPRESS_WITH_DELETE", "USER_ID", ["u1", " u2 ", ""])
    store.save(reg)
    assert [r.id for r in store.unfinished()] == [reg.id]
    reg.status, reg.detail = "FINISHED", {"erased": 3}
    store.save(reg)
    assert store.unfinished() == []
    kept = store.get(reg.id)
    assert kept is not None and (kept.subjects, kept.status, kept.detail) == (
        ["u1", "u2"],
        "FINISHED",
        {"erased": 3},
    )
    assert kept.keys == [subject_key("USER_ID", "u1"), subject_key("USER_ID", "u2")]
    assert store.get("nope") is None


def test_suppressions(store: Any) -> None:
    u1, a = subject_key("USER_ID", "u1"), subject_key("EMAIL", "a@x.com")
    store.suppress([u1, a])
    store.suppress([u1])
    assert store.suppressed() == {u1, a}
    store.unsuppress([u1])
    assert store.suppressed() == {a}
    assert "a@x.com" not in a and a == subject_key("EMAIL", " A@X.com ")  # a digest, of the lowercased email


def test_suppressions_outlive_the_process(tmp_path: Path) -> None:
    first = SQLiteRegulations(tmp_path / "r.sqlite3")
    first.suppress([subject_key("USER_ID", "u9")])
    first.close()
    again = SQLiteRegulations(tmp_path / "r.sqlite3")
    assert again.suppressed() == {subject_key("USER_ID", "u9")}
    again.close()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"userId": "u1", "traits": {"email": "A@X.com"}}, {"user:u1", "email:a@x.com"}),
        ({"anonymousId": "an", "properties": {"email": "b@x.com"}}, {"email:b@x.com"}),
        (
            {"userId": "c@x.com", "context": {"traits": {"email": "d@x.com"}}},
            {"user:c@x.com", "email:c@x.com", "email:d@x.com"},
        ),
        ({"userId": "", "traits": "x"}, set()),
    ],
)
def test_who_a_message_is_about(message: dict[str, Any], expected: set[str]) -> None:
    digests = {
        subject_key("EMAIL" if k.startswith("email:") else "USER_ID", k.split(":", 1)[1]) for k in expected
    }
    assert subjects_of(message) == digests


@pytest.fixture(params=["sqlite", "redis"])
def identities(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from hubspot_relay.state.identity import IdentityMap
    from hubspot_relay.state.redis_identity import RedisIdentityMap

    if request.param == "sqlite":
        m: Any = IdentityMap(tmp_path / "identity.sqlite3")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        m = RedisIdentityMap(server.url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    yield m
    m.close()


def test_an_identity_map_forgets_a_person(identities: Any) -> None:
    identities.link("web", ["u1", "anon-1"], "ann@x.com")
    identities.link("server", ["u1"], "ann@x.com")
    identities.link("web", ["u2"], "bo@x.com")
    identities.remember("web", ["u3"], {"plan": "pro"})
    identities.save_contacts("acme", [("ann@x.com", "101", None), ("bo@x.com", "102", None)])
    forgot = identities.forget(["u1", "u3"], [])
    assert forgot.emails == {"ann@x.com"}
    assert forgot.contact_ids == {"acme": {"101"}}  # for HubSpot's deletion by record id
    for source in ("web", "server"):
        assert identities.email_for(source, ["u1"]) is None
    assert identities.email_for("web", ["anon-1"]) is None  # every id tied to the email goes
    assert identities.contact("acme", "ann@x.com") == (None, None)
    assert (
        identities.email_for("web", ["u2"]) == "bo@x.com"
        and identities.contact("acme", "bo@x.com")[0] == "102"
    )
    assert identities.link("web", ["u3"], "cy@x.com")[1] == {}  # the kept traits went too


def test_an_identity_map_counts_skips_by_source_and_reason(identities: Any) -> None:
    identities.count_skipped("acme", {("web", "filtered by end-user consent"): 2, ("app", "off"): 1})
    identities.count_skipped("acme", {("web", "filtered by end-user consent"): 3})
    identities.count_skipped("other", {("web", "off"): 7})
    assert identities.skipped("acme") == [
        ("acme", "web", "filtered by end-user consent", 5),
        ("acme", "app", "off", 1),
    ]
    assert len(identities.skipped()) == 3


def test_an_identity_map_reads_many_record_ids_at_once(identities: Any) -> None:
    identities.save_contacts("acme", [("ann@x.com", "101", None), ("bo@x.com", None, "lead")])
    identities.save_company("acme", "g1", "900")
    assert identities.record_ids("acme", ["Ann@X.com", "bo@x.com", "cy@x.com"]) == {"ann@x.com": "101"}
    assert identities.record_ids("acme", ["g1", "g2"], companies=True) == {"g1": "900"}
    assert identities.record_ids("other", ["ann@x.com"]) == {}
    assert identities.record_ids("acme", []) == {}
