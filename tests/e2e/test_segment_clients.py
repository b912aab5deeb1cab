"""Real Segment clients we did not write, sending to a real relay process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client

from tests.conftest import require_tool
from tests.helpers import ROOT, RelayProcess, stored_messages

pytestmark = pytest.mark.e2e

WRITE_KEY = "wk-e2e"
NODE_FIXTURE = ROOT / "tests" / "e2e" / "node"


@pytest.fixture
def relay(data_dir: Path) -> Iterator[RelayProcess]:
    with RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY}) as r:
        yield r


def by_id(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in messages:
        assert m["messageId"] not in out, f"stored twice: {m['messageId']}"
        out[m["messageId"]] = m
    return out


def assert_fields_intact(sent: dict[str, Any], stored: dict[str, Any]) -> None:
    for key in (
        "type",
        "userId",
        "anonymousId",
        "event",
        "name",
        "groupId",
        "previousId",
        "traits",
        "properties",
        "integrations",
    ):
        if sent.get(key) is not None:
            assert stored[key] == sent[key], key
    for key, value in (sent.get("context") or {}).items():
        assert stored["context"][key] == value, f"context.{key}"
    assert stored["receivedAt"] and stored["timestamp"]


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_segment_analytics_python(relay: RelayProcess, use_gzip: bool) -> None:
    errors: list[Any] = []
    client = Client(
        WRITE_KEY,
        host=relay.url,
        gzip=use_gzip,
        on_error=lambda e, b: errors.append(e),
        max_retries=2,
        upload_size=25,
    )
    sent = []
    for i in range(40):
        email = f"user{i}@example.com"
        sent.append(
            client.identify(
                f"user-{i}",
                {"email": email, "firstName": "Peter", "Favorite Color": "red", "age": i, "tags": ["a", "b"]},
            )[1]
        )
        sent.append(
            client.track(
                f"user-{i}",
                "Bought Item",
                {"email": email, "revenue": 9.99, "sku": None},
                context={"traits": {"firstname": "Peter", "lastname": "Gibbons"}},
            )[1]
        )
    sent.append(
        client.page(anonymous_id="anon-1", name="Home", properties={"path": "/", "url": "https://x/"})[1]
    )
    sent.append(client.screen("user-1", name="Main")[1])
    sent.append(client.group("user-1", "acme-inc", {"name": "Acme", "website": "acme.example"})[1])
    sent.append(client.alias("anon-1", "user-1")[1])
    client.flush()
    client.join()
    assert errors == []
    stored = by_id(stored_messages(relay.queue_path))
    assert set(stored) == {m["messageId"] for m in sent}
    for msg in sent:
        assert_fields_intact(msg, stored[msg["messageId"]])


def test_segment_analytics_node(relay: RelayProcess) -> None:
    node = require_tool("node", "the @segment/analytics-node end-to-end test")
    if not (NODE_FIXTURE / "node_modules" / "@segment" / "analytics-node").exists():
        npm = require_tool("npm", "installing @segment/analytics-node")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_FIXTURE, check=True)
    calls: list[dict[str, Any]] = []
    for i in range(30):
        calls.append(
            {
                "method": "identify",
                "params": {
                    "userId": f"n-{i}",
                    "traits": {
                        "email": f"n{i}@example.com",
                        "lastName": "Gibbons",
                        "address": {"city": "Austin"},
                    },
                },
            }
        )
        calls.append(
            {
                "method": "track",
                "params": {
                    "userId": f"n-{i}",
                    "event": "Order Completed",
                    "properties": {"revenue": 42.5, "products": [{"sku": "a"}]},
                },
            }
        )
    calls += [
        {
            "method": "page",
            "params": {"anonymousId": "anon-n", "name": "Pricing", "properties": {"path": "/p"}},
        },
        {"method": "screen", "params": {"userId": "n-1", "name": "Home"}},
        {"method": "group", "params": {"userId": "n-1", "groupId": "g-1", "traits": {"name": "Initech"}}},
        {"method": "alias", "params": {"userId": "n-1", "previousId": "anon-n"}},
    ]
    proc = subprocess.run(
        [node, "send.mjs", relay.url, WRITE_KEY],
        input=json.dumps(calls),
        cwd=NODE_FIXTURE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["failures"] == []
    sent = result["sent"]
    assert len(sent) == len(calls)
    stored = by_id(stored_messages(relay.queue_path))
    assert set(stored) == {m["messageId"] for m in sent}
    for msg in sent:
        assert_fields_intact(msg, stored[msg["messageId"]])
        assert stored[msg["messageId"]]["context"]["library"]["name"] == "@segment/analytics-node"


def test_wrong_write_key_is_refused_to_the_client(relay: RelayProcess) -> None:
    errors: list[Any] = []
    client = Client("not-the-key", host=relay.url, on_error=lambda e, b: errors.append(e), max_retries=0)
    client.track("u", "E")
    client.flush()
    client.join()
    assert len(errors) == 1 and "401" in str(errors[0])
    assert not relay.queue_path.exists() or stored_messages(relay.queue_path) == []
