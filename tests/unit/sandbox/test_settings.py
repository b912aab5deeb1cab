from __future__ import annotations

from pathlib import Path

import pytest

from hubspot_relay.errors import ConfigError
from hubspot_relay.sandbox import load_portals
from hubspot_relay.sandbox.state import PortalState

GOOD = """
[[portals]]
hub_id = 997086
access_tokens = ["t1", "t2"]
api_key = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"
limits = { per_10s = 10, per_day = 40000, per_second = 10 }

[[portals.properties]]
name = "renewal_date"
type = "date"

[[portals.properties]]
name = "segment_group_id"
type = "string"
object_type = "companies"
hasUniqueValue = true

[[portals]]
hub_id = "123"
access_tokens = ["t3"]
tier = "professional"
default_properties = false
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "portals.toml"
    p.write_text(text)
    return p


def test_portals_file(tmp_path: Path) -> None:
    a, b = load_portals(write(tmp_path, GOOD))
    assert (a.hub_id, a.access_tokens, a.budget.per_second, a.custom_events) == (
        "997086",
        ("t1", "t2"),
        10,
        True,
    )
    state = PortalState(a)
    assert state.properties_of("contacts")["renewal_date"].type == "date"
    assert state.properties_of("contacts")["favorite_color"].custom  # the defaults come along
    assert state.properties_of("companies")["segment_group_id"].unique
    assert (b.tier, b.custom_events) == ("professional", False)
    assert "favorite_color" not in PortalState(b).properties_of("contacts")


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ('hub_id = "123"', 'hub_id = "12x"', r"portals\[1\].hub_id: a Hub ID is a series of digits"),
        ('tier = "professional"', 'tier = "gold"', r"portals\[1\].tier: one of free"),
        ('access_tokens = ["t3"]', "", r"portals\[1\]: give access_tokens, api_key or oauth_apps"),
        ('hub_id = "123"', 'hub_id = "997086"', "two portals share a hub_id"),
        ("default_properties = false", "colour = 1", "unknown field `colour`"),
    ],
)
def test_portals_file_errors(tmp_path: Path, old: str, new: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_portals(write(tmp_path, GOOD.replace(old, new)))
