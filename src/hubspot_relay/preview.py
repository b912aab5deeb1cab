"""The HubSpot requests a Segment message would become, without sending it.

The message goes through the very code delivery uses (validation as ingest does it, translation,
the identity map, planning, coalescing, property coercion against the portal's catalog, event
definitions), with a HubSpot client whose transport records each write instead of making it and
answers as HubSpot would. Reads that shape the requests (the property catalog, the event
definitions, a company looked up by its domain, a contact's lifecycle stage) come from the running
delivery's cache, or else from HubSpot; nothing is written to HubSpot, the queue or the identity
map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import orjson

from .config import Account, Config
from .delivery.identities import Known
from .delivery.loop import Delivery
from .delivery.settlement import Settlement
from .hubspot.client import HubSpotClient
from .hubspot.endpoints import find
from .hubspot.errors import HubSpotError
from .hubspot.ratelimit import AccountLimiter
from .hubspot.verdicts import NO_SUCH_LIST, NOT_REACHED
from .queue.protocol import Leased
from .segment.messages import InvalidMessage, accept
from .state.identity import Forgot, Identities

# Reads that decide what a request holds: answered by HubSpot (or the delivery's cache): the
# catalogs and definitions, a company found by its domain, a contact's lifecycle stage, a list
# found by its name, the portal's subscription types, the legacy catalog.
READS = frozenset(
    {
        "properties.list",
        "event_definitions.list",
        "schemas.list",
        "associations.labels",
        "objects.search",
        "objects.batch_read",
        "lists.by_name",
        "subscriptions.definitions",
        "legacy.properties",
    }
)
# Calls that are neither: an OAuth app's token is fetched from HubSpot as it is (to read with).
PASSED_THROUGH = frozenset({"oauth.token"})


class PreviewError(Exception):
    """The message is not one ingest would accept (the text says why, as ingest would)."""


@dataclass
class Preview:
    requests: list[dict[str, Any]] = field(default_factory=list)  # the writes, in order
    reads: list[str] = field(default_factory=list)  # what was read from HubSpot to build them
    read_errors: list[str] = field(default_factory=list)  # reads that failed (the preview is then partial)
    outcome: str = "delivered"  # or skipped, waiting, retrying (for an email), dead
    reason: str = ""
    message: dict[str, Any] = field(default_factory=dict)  # as stored (type, messageId filled in)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "requests": self.requests,
            "reads": self.reads,
            "read_errors": self.read_errors,
            "message": self.message,
        }


class DryIdentities:
    """The identity map as delivery sees it, read from the real one; every write stays here."""

    def __init__(self, real: Identities | None) -> None:
        self.real = real
        self.ties: dict[tuple[str, str], str] = {}
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.contacts: dict[str, tuple[str | None, str | None]] = {}
        self.companies: dict[str, str] = {}

    def close(self) -> None:
        pass

    def email_for(self, source: str, ids: Sequence[str]) -> str | None:
        for id_ in ids:
            if (source, id_) in self.ties:
                return self.ties[(source, id_)]
        return self.real.email_for(source, ids) if self.real is not None and ids else None

    def link(self, source: str, ids: Sequence[str], email: str | None) -> tuple[str | None, dict[str, Any]]:
        email = email or self.email_for(source, ids)
        if email is None:
            return None, {}
        waiting: dict[str, Any] = {}
        for id_ in ids:
            self.ties[(source, id_)] = email
            waiting.update(self.pending.pop((source, id_), {}))
        return email, waiting

    def remember(self, source: str, ids: Sequence[str], traits: dict[str, Any]) -> str | None:
        for id_ in ids:
            self.pending[(source, id_)] = {**self.pending.get((source, id_), {}), **traits}
        return None

    def snapshot(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Known]:
        """Read one id at a time from the real map (a shared map's batch read would start a
        batch of the running delivery's), this dry run's own ties first."""
        out: dict[tuple[str, str], Known] = {}
        for source, id_ in keys:
            email = self.email_for(source, [id_])
            out[(source, id_)] = Known(email, self.pending.get((source, id_)))
        return out

    def flush(self, take: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        return {}

    def contact(self, account: str, email: str) -> tuple[str | None, str | None]:
        if email.lower() in self.contacts:
            return self.contacts[email.lower()]
        return self.real.contact(account, email) if self.real is not None else (None, None)

    def save_contacts(self, account: str, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        for email, contact_id, stage in rows:  # (the ids the dry run's answers gave)
            self.contacts[email.lower()] = (contact_id, stage)

    def company(self, account: str, group_id: str) -> str | None:
        if group_id in self.companies:
            return self.companies[group_id]
        return self.real.company(account, group_id) if self.real is not None else None

    def save_company(self, account: str, group_id: str, company_id: str) -> None:
        self.companies[group_id] = company_id

    def record_ids(self, account: str, keys: Sequence[str], *, companies: bool = False) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in keys:
            found = self.company(account, key) if companies else self.contact(account, key)[0]
            if found is not None:
                out[key if companies else key.lower()] = found
        return out

    def count_dropped(self, account: str, object_type: str, dropped: Mapping[tuple[str, str], int]) -> None:
        pass

    def dropped(self, account: str | None = None) -> list[tuple[str, str, str, str, int]]:
        return []

    def count_skipped(self, account: str, skipped: Mapping[tuple[str, str], int]) -> None:
        pass

    def skipped(self, account: str | None = None) -> list[tuple[str, str, str, int]]:
        return []

    def set_problem(self, account: str, kind: str, message: str | None) -> None:
        pass

    def set_paused(self, account: str, paused: bool, note: str = "") -> None:
        pass

    def is_paused(self, account: str) -> bool:
        return False

    def problems(self) -> list[tuple[str, str, str, float]]:
        return []

    def forget(self, ids: Sequence[str], emails: Sequence[str]) -> Forgot:
        """A dry run forgets nothing: the real map is left as it is."""
        return Forgot()


class _NoQueue:
    """Settling a preview changes no queue."""

    async def ack(self, ids: Sequence[int], outcome: str = "delivered") -> None:
        pass

    async def release(self, ids: Sequence[int]) -> None:
        pass

    async def retry(self, ids: Sequence[int], delay_seconds: float, error: str) -> None:
        pass

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        pass

    async def erase(self, match: Any) -> list[tuple[str, str]]:
        return []

    async def erase_ids(self, ids: Sequence[int]) -> None:
        pass


def _results(inputs: list[Any], new_id: Callable[[], str]) -> dict[str, Any]:
    results = []
    for item in inputs:
        props = dict(item.get("properties") or {}) if isinstance(item, dict) else {}
        if isinstance(item, dict) and item.get("idProperty") and item.get("id"):
            props[item["idProperty"]] = item["id"]
        record_id = (
            str(item["id"]) if isinstance(item, dict) and str(item.get("id", "")).isdigit() else new_id()
        )
        results.append({"id": record_id, "properties": props})
    return {"status": "COMPLETE", "results": results}


def _inputs(body: Any) -> list[Any]:
    inputs = body.get("inputs", []) if isinstance(body, dict) else []
    return inputs if isinstance(inputs, list) else []


def _dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}


Answer = Callable[[Any, str, Callable[[], str]], httpx.Response]

# What HubSpot answers each write, enough for delivery to go on as it would (its published
# response shapes); `tests/unit/test_preview.py` holds every operation of the endpoint table to
# a row here or in READS.
WRITES: dict[str, Answer] = {
    "objects.batch_upsert": lambda b, hub, new: httpx.Response(200, json=_results(_inputs(b), new)),
    "objects.batch_create": lambda b, hub, new: httpx.Response(201, json=_results(_inputs(b), new)),
    "objects.batch_update": lambda b, hub, new: httpx.Response(200, json=_results(_inputs(b), new)),
    "properties.create": lambda b, hub, new: httpx.Response(201, json=_dict(b)),
    "event_definitions.create": lambda b, hub, new: httpx.Response(
        201,
        json={
            **_dict(b),
            "fullyQualifiedName": f"pe{hub}_{_dict(b).get('name', '')}",
            "properties": [{"name": p.get("name")} for p in _dict(b).get("propertyDefinitions", [])],
        },
    ),
    "event_definitions.add_property": lambda b, hub, new: httpx.Response(200, json=_dict(b)),
    "events.send_batch": lambda b, hub, new: httpx.Response(204),
    "associations.associate_default": lambda b, hub, new: httpx.Response(
        200, json={"status": "COMPLETE", "results": []}
    ),
    "associations.create": lambda b, hub, new: httpx.Response(
        201, json={"status": "COMPLETE", "results": []}
    ),
    "lists.create": lambda b, hub, new: httpx.Response(
        200,
        json={
            "list": {
                "listId": new(),
                "name": _dict(b).get("name", ""),
                "objectTypeId": _dict(b).get("objectTypeId", "0-1"),
                "processingType": _dict(b).get("processingType", "MANUAL"),
            }
        },
    ),
    "lists.add_and_remove": lambda b, hub, new: httpx.Response(
        200,
        json={
            "recordIdsAdded": list(_dict(b).get("recordIdsToAdd", [])),
            "recordIdsRemoved": list(_dict(b).get("recordIdsToRemove", [])),
            "recordIdsMissing": [],
        },
    ),
    "subscriptions.write": lambda b, hub, new: httpx.Response(200, json=_dict(b)),
    "subscriptions.write_batch": lambda b, hub, new: httpx.Response(
        200, json={"status": "COMPLETE", "results": _inputs(b)}
    ),
    "contacts.gdpr_delete": lambda b, hub, new: httpx.Response(204),
    "legacy.contacts_batch": lambda b, hub, new: httpx.Response(202),
    "legacy.event": lambda b, hub, new: httpx.Response(200),
}


def _answer(operation: str, body: Any, hub_id: str, counter: list[int]) -> httpx.Response:
    """What HubSpot answers a write; a call preview does not know is said, never guessed."""

    def new_id() -> str:
        counter[0] += 1
        return f"preview-{counter[0]}"

    answer = WRITES.get(operation)
    if answer is None:
        return httpx.Response(
            501, json={"status": "error", "message": f"preview has no answer for {operation or 'this call'}"}
        )
    return answer(body, hub_id, new_id)


async def preview(
    config: Config,
    source_name: str,
    raw: bytes,
    *,
    delivery: Delivery | None = None,
    identity: Identities | None = None,
    read_transport: httpx.AsyncBaseTransport | None = None,
) -> Preview:
    """The requests `raw` (one Segment message, as a client would send it) would become for
    `source_name`'s account. With the running `delivery`, its catalog and definitions are used
    (no read at all when they are warm) and reads go through its client and budget."""
    source = next((s for s in config.sources if s.name == source_name), None)
    if source is None:
        raise PreviewError(f"no source is named {source_name!r}")
    account: Account = config.account(source.account)
    now = time.time()
    try:
        accepted = accept(raw, received_at=now)
    except InvalidMessage as e:
        raise PreviewError(str(e)) from None
    result = Preview(message=orjson.loads(accepted.body))
    recorder = Recorder(account, result, delivery.client if delivery is not None else None, read_transport)
    client = HubSpotClient(account, AccountLimiter(10**6, 10**9), transport=recorder, recorded=False)
    dry = Delivery(
        account,
        # a lone event does not wait for company here
        msgspec.structs.replace(account.delivery, batch_wait_ms=0),
        [source.name] if source.enabled else [],
        _NoQueue(),  # type: ignore[arg-type]
        DryIdentities(identity),
        client,
        disabled_sources=[] if source.enabled else [source.name],
    )
    if delivery is not None:  # the portal's catalog and definitions as delivery knows them
        dry.catalogs.catalogs = dict(delivery.catalogs.catalogs)
        known = delivery.events.definitions
        dry.events.definitions = {k: set(v) for k, v in known.items()} if known else None
        dry.events.events_refused = delivery.events.events_refused
    leased = Leased(1, source.name, accepted.message_id, accepted.type, accepted.body, now, None, 1)
    s = Settlement(messages={1: leased})
    try:
        await dry.deliver_batch([leased], s)
    finally:
        await client.aclose()
    result.outcome, result.reason = _outcome(s, 1)
    return result


def _outcome(s: Settlement, mid: int) -> tuple[str, str]:
    """What became of the message in the dry run, and why, in words."""
    if mid in s.carried or mid in s.released:  # cannot happen alone; said rather than hidden
        return "held", "it would wait for an earlier message about the same contact"
    if mid in s.dead:
        return "dead", s.dead[mid]
    if mid in s.retry:
        return "retrying", s.retry[mid][1]
    outcome = s.outcome(mid)
    reason = {
        "skipped": "nothing for HubSpot: sent by HubSpot's script in the browser, a source with "
        "HubSpot off, or a call this mode does not make",
        "waiting": "its traits wait until an identify or alias gives this user's email",
    }.get(outcome, "")
    return outcome, reason


class Recorder(httpx.AsyncBaseTransport):
    """The dry run's transport: a write is recorded and answered as HubSpot would; a read that
    shapes the requests (catalog, definitions, a company search, a lifecycle read) goes to the
    running delivery's client (its budget), or to HubSpot."""

    def __init__(
        self,
        account: Account,
        result: Preview,
        real_client: HubSpotClient | None,
        read_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.account = account
        self.result = result
        self.real_client = real_client
        self.read_transport = read_transport  # HubSpot, reached without a running relay
        self.counter = [0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        content = await request.aread()
        row = find(request.method, path)
        operation = row.operation if row is not None else ""
        if operation in PASSED_THROUGH:
            return await self._pass(request, content)
        body = orjson.loads(content) if content else None
        # (a legacy event is a GET of /v1/event: a write, recorded below)
        if operation in READS:
            return await self._read(request.method, path, body)
        params = {k: v for k, v in request.url.params.items() if k != "hapikey"}
        entry: dict[str, Any] = {
            "method": request.method,
            "url": f"{request.url.scheme}://{request.url.netloc.decode()}{path}",
            "path": path,
        }
        if params:
            entry["params"] = params
        if body is not None:
            entry["body"] = body
        self.result.requests.append(entry)
        return _answer(operation, body, self.account.hub_id, self.counter)

    async def _pass(self, request: httpx.Request, content: bytes) -> httpx.Response:
        """Sent to HubSpot as it is (an OAuth token to read with), never recorded."""
        async with httpx.AsyncClient(transport=self.read_transport) as http:
            answer = await http.request(request.method, request.url, content=content, headers=request.headers)
            await answer.aread()
            return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    async def _read(self, method: str, path: str, body: Any) -> httpx.Response:
        self.result.reads.append(f"{method} {path}")
        try:
            if self.real_client is not None:
                answer = await self.real_client.request(method, path, body)
            else:
                reader = HubSpotClient(
                    self.account, AccountLimiter(100, 250_000), transport=self.read_transport
                )
                try:
                    answer = await reader.request(method, path, body)
                finally:
                    await reader.aclose()
        except HubSpotError as e:
            # HubSpot's answer goes back as it came, for delivery's code to read as it would; a
            # 404 is an answer (no such list yet), anything else leaves the preview partial
            if not NO_SUCH_LIST(e):
                self.result.read_errors.append(f"{method} {path}: {e.describe()}")
            if NOT_REACHED(e):  # there is no answer to pass back
                raise
            return httpx.Response(e.status, json=e.body)
        return httpx.Response(200, json=answer)
