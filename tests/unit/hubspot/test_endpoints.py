"""The table of HubSpot's published endpoints (hubspot/endpoints.py), held to what HubSpot's own
generated clients call, and delivery held to the table: every call the relay makes, in every API
version, is a row of it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hubspot
import hubspot_sdk
import pytest

from hubspot_relay.hubspot.endpoints import ENDPOINTS, event_spellings, find, markdown, spellings
from hubspot_relay.hubspot.paths import ApiPaths
from tests.harness import make

pytestmark = pytest.mark.anyio

SRC = Path(__file__).resolve().parents[3] / "src" / "hubspot_relay"
PLACEHOLDER = re.compile(r"\{\w+\}")


def client_paths(package: object) -> set[str]:
    """Every path template a generated client's source names, placeholders made alike."""
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    found: set[str] = set()
    for path in root.rglob("*.py"):
        for literal in re.findall(r"['\"](/[a-z][\w\-/{}.]*)['\"]", path.read_text(encoding="utf-8")):
            found.add(PLACEHOLDER.sub("{}", literal))
    return found


@pytest.mark.parametrize(
    ("client", "package"), [("hubspot-api-client 12", hubspot), ("hubspot-sdk 0.1.0a9", hubspot_sdk)]
)
def test_every_row_a_client_confirms_is_a_path_that_client_calls(client: str, package: object) -> None:
    rows = [e for e in ENDPOINTS if e.client == client]
    assert len(rows) >= 10
    calls = client_paths(package)
    missing = [e.path for e in rows if PLACEHOLDER.sub("{}", e.path) not in calls]
    assert missing == []


@pytest.mark.parametrize(
    ("version", "spellings_"),
    [
        ("v3", ["/events/v3"]),
        ("2026-03", ["/events/2026-03", "/events/v3/2026-03", "/events/custom/2026-03"]),
        ("2026-09", ["/events/2026-09", "/events/custom/2026-09", "/events/v3/2026-09"]),
    ],
)
def test_custom_events_spellings_newest_first(version: str, spellings_: list[str]) -> None:
    assert event_spellings(version) == spellings_


@pytest.mark.parametrize(
    ("version", "operation", "params", "path"),
    [
        ("v3", "objects.batch_upsert", {"objectType": "contacts"}, "/crm/v3/objects/contacts/batch/upsert"),
        ("2026-03", "objects.search", {"objectType": "2-123"}, "/crm/objects/2026-03/2-123/search"),
        (
            "v3",
            "associations.associate_default",
            {"fromObjectType": "contacts", "toObjectType": "companies"},
            "/crm/v4/associations/contacts/companies/batch/associate/default",
        ),
        ("2026-09", "schemas.list", {}, "/crm-object-schemas/2026-09/schemas"),
        ("2026-09", "legacy.contacts_batch", {}, "/contacts/v1/contact/batch/"),
    ],
)
def test_paths_come_from_the_table(version: str, operation: str, params: dict[str, str], path: str) -> None:
    assert ApiPaths(version).path(operation, **params) == path
    assert find(spellings(operation, version)[0].method, path) == spellings(operation, version)[0]


@pytest.mark.parametrize("value", ["", "..", "."])
def test_a_parameter_is_one_path_segment(value: str) -> None:
    with pytest.raises(ValueError, match="not a path segment"):
        ApiPaths("v3").path("objects.search", objectType=value)


def test_a_lists_name_is_escaped_into_one_segment() -> None:
    path = ApiPaths("2026-09").path("lists.by_name", objectTypeId="0-1", listName="Trial / EU users?")
    assert path == "/crm/lists/2026-09/object-type-id/0-1/name/Trial%20%2F%20EU%20users%3F"


def test_a_version_without_the_operation_is_refused() -> None:
    with pytest.raises(LookupError):
        ApiPaths("2026-09").path("objects.merge", objectType="contacts")


def test_no_module_but_the_table_spells_a_hubspot_path() -> None:
    """The relay's code names HubSpot paths only in endpoints.py (the sandbox serves them)."""
    hubspot_path = re.compile(r"^/(crm|crm-object-schemas|events|oauth|contacts/v1|properties/v1)/")
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "endpoints.py" or "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and hubspot_path.match(text):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {text}")
    assert offenders == []


@pytest.mark.parametrize("version", ["v3", "2026-03", "2026-09"])
async def test_delivery_calls_only_published_paths(tmp_path: Path, version: str) -> None:
    """Contacts, companies and their association, custom events and their definitions: every
    call in the account's version is a row of the table (the harness fails any other)."""
    h = await make(tmp_path, api_version=version, create_properties=True)
    await h.send(
        {"type": "identify", "userId": "u1", "traits": {"email": "a@x.com", "made_up": "yes"}},
        {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme", "domain": "acme.com"}},
        {"type": "track", "userId": "u1", "event": "Plan Chosen", "properties": {"plan": "pro"}},
        {"type": "page", "userId": "u1", "name": "Pricing", "properties": {"url": "https://x.com/p"}},
    )
    await h.drain()
    assert h.published.unpublished == []
    assert {
        "objects.batch_upsert",
        "properties.list",
        "properties.create",
        "event_definitions.list",
        "event_definitions.create",
        "events.send_batch",
        "associations.associate_default",
    } <= h.published.operations
    await h.queue.close()
    h.identity.close()


def test_the_docs_show_the_table() -> None:
    page = (SRC.parents[1] / "docs" / "hubspot-versions.md").read_text(encoding="utf-8")
    assert markdown() in page
