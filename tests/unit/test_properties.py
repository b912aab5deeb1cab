"""Property tests (Hypothesis): ingest never answers 5xx and never stores half a request, and any
message ingest accepts either translates into HubSpot-shaped operations or is refused with a reason."""

from __future__ import annotations

import base64
import gzip
import json
import os
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hubspot_relay.options import DeliveryOptions
from hubspot_relay.sandbox.catalog import Catalog, validate_value
from hubspot_relay.segment.messages import InvalidMessage, accept, stamped
from hubspot_relay.server import create_app
from hubspot_relay.translate import (
    CompanyUpdate,
    ContactUpdate,
    Event,
    Link,
    PropertyInfo,
    Skip,
    prepare,
    translate,
)
from tests.helpers import sandbox_config
from tests.strategies import (
    json_values,
    messages,
    timestamps,
)

WK = "wk-prop"
# More examples for a longer hunt: HUBSPOT_RELAY_FUZZ_EXAMPLES=5000 make test
EXAMPLES = int(os.environ.get("HUBSPOT_RELAY_FUZZ_EXAMPLES", "400"))
RECEIVED = 1_795_867_200.0
CONTACTS = Catalog.default().of("contacts")
COMPANIES = Catalog.default().of("companies")
INFO = {
    "contacts": {n: PropertyInfo.from_hubspot(p.as_json()) for n, p in CONTACTS.items()},
    "companies": {n: PropertyInfo.from_hubspot(p.as_json()) for n, p in COMPANIES.items()},
}

# ---- strategies ---------------------------------------------------------------------------------

def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """A few byte-level accidents: truncation, a flipped byte, invalid UTF-8, deep brackets."""
    kind = draw(st.sampled_from(["none", "truncate", "flip", "insert", "deep"]))
    if kind == "none" or not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if kind == "insert":
        return (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"[", b"{", b"\\", b'"']))
            + data[at:]
        )
    depth = draw(st.integers(60, 1500))
    return data[:at] + b"[" * depth + b"]" * depth + data[at:]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any], bytes, int]:
    """(path, headers, body, messages in it) as a client, a fuzzer or an accident would send them."""
    batch = draw(st.booleans())
    msgs = draw(st.lists(messages(), min_size=1, max_size=5))
    for m in msgs:  # fresh ids, so that "stored" can be counted per request
        if draw(st.booleans()):
            m["messageId"] = str(uuid.uuid4())
    if batch:
        path = draw(st.sampled_from(["/v1/batch", "/v1/b", "/v1/import"]))
        doc: Any = {"batch": msgs}
        if draw(st.booleans()):
            doc["sentAt"] = draw(timestamps)
        if draw(st.booleans()):
            doc["context"] = draw(json_values)
    else:
        path = draw(
            st.sampled_from(
                ["/v1/track", "/v1/t", "/v1/identify", "/v1/i", "/v1/p", "/v1/g", "/v1/a", "/v1/s"]
            )
        )
        doc = msgs[0]
    body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    body = mutate(body, draw)
    headers: dict[str, Any] = {}
    auth = draw(st.sampled_from(["basic", "body", "garbage", "none"]))
    if auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"{WK}:".encode()).decode()
    elif auth == "garbage":
        headers["Authorization"] = draw(
            st.binary(max_size=30).map(lambda b: b"Basic " + b.replace(b"\r", b"").replace(b"\n", b""))
        )
    elif auth == "body" and body.startswith(b"{"):
        body = b'{"writeKey":"' + WK.encode() + b'",' + body[1:]
    headers["Content-Type"] = draw(
        st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=utf-8", "image/png", ""]
        )
    )
    if draw(st.integers(0, 4)) == 0:
        encoding = draw(st.sampled_from(["gzip", "x-gzip", "br", "identity"]))
        headers["Content-Encoding"] = encoding
        if encoding in ("gzip", "x-gzip"):
            body = gzip.compress(body) + draw(st.sampled_from([b"", b"", b"trailing"]))
    return path, headers, body, len(msgs)


# ---- ingest ----------------------------------------------------------------------------------------


def test_ingest_never_answers_5xx_and_never_stores_half_a_request(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, WK)
    db = tmp_path / "queue.sqlite3"
    with TestClient(create_app(config, deliver=False), client=("127.0.0.1", 1)) as client:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)

        def stored() -> int:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

        @given(requests())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(request: tuple[str, dict[str, Any], bytes, int]) -> None:
            path, headers, body, count = request
            before = stored()
            r = client.post(path, content=body, headers=headers)
            assert r.status_code < 500, (r.status_code, r.text)
            payload = r.json()
            assert isinstance(payload.get("success"), bool)
            added = stored() - before
            if r.status_code != 200:
                assert payload.get("code") and payload.get("message"), payload
                assert added == 0, "a refused request stored messages"
            else:
                assert payload["success"] is True
                accepted = payload.get("accepted", count)
                assert added <= accepted  # a repeated messageId is stored once
                for rejection in payload.get("rejected", []):
                    assert rejection["reason"]

        check()
        conn.close()


# ---- translate and coerce -----------------------------------------------------------------------------


@given(messages())
@settings(max_examples=EXAMPLES * 3 // 2, deadline=None, database=None)
def test_any_message_translates_to_hubspot_shaped_operations_or_is_refused_with_a_reason(
    msg: dict[str, Any],
) -> None:
    body = json.dumps(msg, ensure_ascii=False).encode()
    try:
        accepted = accept(body, received_at=RECEIVED)
    except InvalidMessage as e:
        assert str(e)  # refused, with a reason
        return
    ops = translate(stamped(accepted.body, RECEIVED), DeliveryOptions())
    assert ops
    for op in ops:
        assert isinstance(op, ContactUpdate | Link | Event | CompanyUpdate | Skip)
        if isinstance(op, Skip):
            assert op.reason
        if isinstance(op, Event):
            assert op.name and op.uuid
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in op.properties.items())
            occurred = datetime.fromisoformat(op.occurred_at)
            assert 1970 <= occurred.year <= 9999
        if isinstance(op, ContactUpdate | CompanyUpdate):
            kind = "contacts" if isinstance(op, ContactUpdate) else "companies"
            catalog = CONTACTS if kind == "contacts" else COMPANIES
            clean, dropped = prepare(op.properties, INFO[kind])
            assert all(reason for reason in dropped.values())
            for key, value in clean.items():
                assert isinstance(value, str)
                prop = catalog[key]
                if prop.type in ("number", "date", "datetime", "bool"):
                    assert validate_value(prop, value) is None, (key, value, validate_value(prop, value))
