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
from collections.abc import Iterable, Sequence
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
from .queue.protocol import Leased
from .segment.messages import InvalidMessage, accept
from .state.identity import Forgot, Identities

# Reads that decide what a request holds: answered by HubSpot (or the delivery's cache); a
# search and a batch read find a company by its domain, a contact's lifecycle stage.
_READS = frozenset(
    {
        "properties.list",
        "event_definitions.list",
        "schemas.list",
        "associations.labels",
        "objects.search",
        "objects.batch_read",
    }
)


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

    def count_dropped(self, account: str, object_type: str, dropped: dict[str, str]) -> None:
        pass

    def dropped(self, account: str | None = None) -> list[tuple[str, str, str, str, int]]:
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


def _answer(operation: str, body: Any, hub_id: str, counter: list[int]) -> httpx.Response:
    """What HubSpot answers a write, enough for delivery to go on as it would."""

    def new_id() -> str:
        counter[0] += 1
        return f"preview-{counter[0]}"

    inputs = body.get("inputs", []) if isinstance(body, dict) else []
    if operation in ("objects.batch_upsert", "objects.batch_create"):
        results = []
        for item in inputs:
            props = dict(item.get("properties") or {})
            if item.get("idProperty") and item.get("id"):
                props[item["idProperty"]] = item["id"]
            results.append({"id": new_id(), "properties": props})
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})
    if operation == "event_definitions.create":
        defined = [{"name": p["name"]} for p in body.get("propertyDefinitions", [])]
        return httpx.Response(
            201,
            json={**body, "fullyQualifiedName": f"pe{hub_id}_{body.get('name', '')}", "properties": defined},
        )
    if operation == "properties.create" and isinstance(body, dict):
        return httpx.Response(201, json=body)
    return httpx.Response(204)


async def preview(
    config: Config,
    source_name: str,
    raw: bytes,
    *,
    delivery: Delivery | None = None,
    identity: Identities | None = None,
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
    recorder = Recorder(account, result, delivery.client if delivery is not None else None)
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

    def __init__(self, account: Account, result: Preview, real_client: HubSpotClient | None) -> None:
        self.account = account
        self.result = result
        self.real_client = real_client
        self.counter = [0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        content = await request.aread()
        body = orjson.loads(content) if content else None
        # (a legacy event is a GET of /v1/event: a write, recorded below)
        row = find(request.method, path)
        operation = row.operation if row is not None else ""
        if operation in _READS:
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

    async def _read(self, method: str, path: str, body: Any) -> httpx.Response:
        self.result.reads.append(f"{method} {path}")
        try:
            if self.real_client is not None:
                answer = await self.real_client.request(method, path, body)
            else:
                reader = HubSpotClient(self.account, AccountLimiter(100, 250_000))
                try:
                    answer = await reader.request(method, path, body)
                finally:
                    await reader.aclose()
        except HubSpotError as e:
            self.result.read_errors.append(f"{method} {path}: {e.describe()}")
            raise
        return httpx.Response(200, json=answer)
