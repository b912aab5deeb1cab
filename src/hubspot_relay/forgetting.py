"""The right to be forgotten: requests taken as Segment's Public API takes them (`POST /regulations`,
`GET /regulations/{regulateId}`) or as the operations API's `POST /admin/api/forget`, kept
durably, and carried out by every relay process until done (a kill mid-request resumes):

1. suppress (SUPPRESS_WITH_DELETE, SUPPRESS_ONLY): the person's new messages are answered as
   accepted and dropped before storage, in every process, until an UNSUPPRESS;
2. erase (SUPPRESS_WITH_DELETE, DELETE_ONLY): messages of theirs received before the request are
   skipped by delivery and deleted for good, settled ones (kept for dedupe, dead-lettered) at
   once; their ties, kept traits and contact ids leave the identity map, their lines the debugger;
3. ask HubSpot to GDPR-delete the contact in every account, by every key the relay knows it by
   (contact id, email, `user_id_property`), which also keeps the email from being created
   again (`delivery/deletions.py`): tried again with backoff while HubSpot answers 5xx, 429 or
   times out, `FAILED` only for a permanent refusal, with HubSpot's words per account.

Each step is idempotent; the status says what was done and what failed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .access import Access
from .activity import TRACE
from .delivery.stages.deletions import DELETED, NOT_SUPPORTED, RETRYING, Portal, delete, plan
from .queue.protocol import Queue
from .state.identity import Forgetting, Forgot
from .state.regulations import DELETING, SUBJECT_TYPES, SUPPRESSING, TYPES, Regulation, Regulations
from .translate.subjects import Forgotten, subjects_of

log = structlog.get_logger("hubspot_relay.forget")
REFRESH_S = 1.0
MAX_SUBJECTS = 5000


class ForgottenView:
    """Who is suppressed or erased, read from the store at most once a second (ingest and
    delivery ask for every message; a store read per message would cost too much)."""

    def __init__(self, store: Regulations, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._view = Forgotten()
        self._read_at = -1e18

    def current(self) -> Forgotten:
        if self.clock() - self._read_at >= REFRESH_S:
            self.refresh()
        return self._view

    def refresh(self) -> None:
        try:
            self._view = Forgotten(self.store.suppressed(), self.store.erased())
            self._read_at = self.clock()
        except Exception:  # the store is down: keep the last view (health reports the store)
            log.warning("could not read suppressions", exc_info=True)


# A request HubSpot answered with a 5xx, a 429 or a timeout is tried again after this long,
# doubling per attempt up to RETRY_MAX_S: never given up for a transient answer.
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 30.0


def retry_delay(attempts: int) -> float:
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2.0 ** max(0, attempts - 1))


class Forgetter:
    def __init__(
        self,
        store: Regulations,
        view: ForgottenView,
        queue: Queue,
        identity: Forgetting | None,
        portals: Sequence[Portal],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.view, self.queue = store, view, queue
        self.identity = identity
        self.portals = portals
        self.clock = clock

    def submit(self, type_: str, subject_type: str, subjects: Sequence[str]) -> Regulation:
        """A request, kept; suppressions apply at once in this process (others within a second)."""
        reg = Regulation.new(type_, subject_type, subjects)
        self.store.save(reg)
        if type_ in SUPPRESSING:
            self.store.suppress(reg.keys)
        if type_ in DELETING:
            self.store.erase_before(reg.keys, reg.created_at)
        self.view.refresh()
        return reg

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            try:
                waiting: Tally[str] = Tally()
                for reg in await asyncio.to_thread(self.store.unfinished):
                    if reg.detail.get("retry_at", 0.0) <= self.clock():
                        await self.process(reg)
                    for name, part in reg.detail.get("hubspot", {}).items():
                        if part["status"] == RETRYING:
                            waiting[f"{name}: {part.get('reason', '')[:200]}"] += 1
                if waiting:  # one line a pass, however many requests wait (an outage is long)
                    log.info(
                        "HubSpot's GDPR deletes wait for HubSpot",
                        requests_by_account_and_reason=dict(waiting),
                    )
            except Exception:
                log.warning("right-to-be-forgotten requests could not be processed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def process(self, reg: Regulation) -> None:
        """One attempt at a request: every step again (each is idempotent), then HubSpot's
        deletions still owed; a transient refusal leaves it RUNNING with a time to try again."""
        reg.status = "RUNNING"
        await asyncio.to_thread(self.store.save, reg)
        if reg.type in SUPPRESSING:
            await asyncio.to_thread(self.store.suppress, reg.keys)
        if reg.type == "UNSUPPRESS":
            await asyncio.to_thread(self.store.unsuppress, [*reg.keys])
        if reg.type in DELETING:
            if "hubspot" not in reg.detail:  # erased already on an earlier attempt: HubSpot's part is left
                await asyncio.to_thread(self.store.erase_before, reg.keys, reg.created_at)
                await self._erase(reg)
            await self._delete_in_hubspot(reg)
        self.view.refresh()
        parts: dict[str, dict[str, Any]] = reg.detail.get("hubspot", {})
        if any(p["status"] == RETRYING for p in parts.values()):
            reg.detail["attempts"] = attempts = reg.detail.get("attempts", 0) + 1
            reg.detail["retry_at"] = self.clock() + retry_delay(attempts)
            await asyncio.to_thread(self.store.save, reg)
            return
        reg.detail.pop("retry_at", None)
        failures = [f"{name}: {p['reason']}" for name, p in parts.items() if p["status"] != DELETED]
        reg.status = overall(parts)
        reg.detail["failures"] = failures
        if not failures:  # done: the request keeps digests, not the identifiers themselves
            reg.subjects, reg.subject_type = reg.keys, "DIGEST"
        await asyncio.to_thread(self.store.save, reg)
        log.info("right-to-be-forgotten request done", id=reg.id, type=reg.type, status=reg.status)

    async def _erase(self, reg: Regulation) -> None:
        """The person's messages and what the identity map holds of them (once per request: the
        identity map forgets them here), and the keys HubSpot knows their contacts by, kept in
        the request for its deletions."""
        keys = set(reg.keys)

        def matches(body: bytes) -> bool:
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError:
                return False
            return isinstance(message, dict) and bool(subjects_of(message) & keys)

        erased = await self.queue.erase(matches)
        for source, message_id in erased:
            TRACE.forget(source, message_id)
        reg.detail["erased"] = reg.detail.get("erased", 0) + len(erased)
        ids = list(reg.subjects) if reg.subject_type == "USER_ID" else []
        emails = list(reg.subjects) if reg.subject_type == "EMAIL" else []
        forgot = Forgot(frozenset(e.strip().lower() for e in emails))
        if self.identity is not None:
            forgot = await asyncio.to_thread(self.identity.forget, ids, emails)
        # kept before any call, and marks the erasure done: a restart resumes from here
        reg.detail["hubspot"] = plan(self.portals, forgot, ids)
        await asyncio.to_thread(self.store.save, reg)

    async def _delete_in_hubspot(self, reg: Regulation) -> None:
        parts: dict[str, dict[str, Any]] = reg.detail["hubspot"]
        for portal in self.portals:
            if portal.name in parts:
                await delete(portal, parts[portal.name])
        reg.detail["hubspot_deleted"] = sum(p.get("deleted", 0) for p in parts.values())


def overall(parts: dict[str, dict[str, Any]]) -> str:
    """A request's status from its accounts' parts, in Segment's words: FINISHED when every
    account deleted (or had nothing to delete), PARTIAL_SUCCESS when some did, NOT_SUPPORTED
    when none could be asked (API keys only), FAILED otherwise."""
    statuses = [p["status"] for p in parts.values()]
    if all(s == DELETED for s in statuses):
        return "FINISHED"
    if DELETED in statuses:
        return "PARTIAL_SUCCESS"
    return "NOT_SUPPORTED" if all(s == NOT_SUPPORTED for s in statuses) else "FAILED"


def regulation_body(reg: Regulation) -> dict[str, Any]:
    """A request as Segment's Public API shows one."""
    return {
        "id": reg.id,
        "regulationType": reg.type,
        "subjectType": reg.subject_type,
        "subjectIds": reg.subjects,
        "overallStatus": reg.status,
        "createdAt": _iso(reg.created_at),
        "finishedAt": _iso(reg.updated_at) if reg.status not in ("INITIALIZED", "RUNNING") else None,
        "detail": reg.detail,
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _bad(message: str) -> Response:
    return Response(orjson.dumps({"errors": [{"message": message}]}), 400, media_type="application/json")


def forget_routes(access: Access, forgetter: Callable[[], Forgetter | None]) -> list[Route]:
    """`POST /regulations`, `GET /regulations/{regulateId}` (Segment's Public API shapes) and
    `POST /admin/api/forget`, all behind the admin token."""

    def guarded(
        endpoint: Callable[[Request, Forgetter], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapper(request: Request) -> Response:
            refusal = access.admin(request)
            if refusal is not None:
                return refusal
            f = forgetter()
            if f is None:
                return Response(b'{"errors":[{"message":"not ready"}]}', 503, media_type="application/json")
            return await endpoint(request, f)

        return wrapper

    async def read(request: Request) -> Any:
        try:
            return orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None

    async def create(request: Request, f: Forgetter) -> Response:
        body = await read(request)
        if not isinstance(body, dict):
            return _bad("a JSON object: {regulationType, subjectType, subjectIds}")
        type_, subject_type, subjects = (
            body.get("regulationType"),
            body.get("subjectType"),
            body.get("subjectIds"),
        )
        if type_ not in TYPES:
            return _bad(f"regulationType: one of {', '.join(TYPES)}")
        if subject_type not in SUBJECT_TYPES:
            return _bad(f"subjectType: one of {', '.join(SUBJECT_TYPES)}")
        if (
            not isinstance(subjects, list)
            or not 0 < len(subjects) <= MAX_SUBJECTS
            or not all(isinstance(s, str) and s.strip() for s in subjects)
        ):
            return _bad(f"subjectIds: 1 to {MAX_SUBJECTS} ids")
        reg = f.submit(type_, subject_type, subjects)
        return Response(orjson.dumps({"data": {"regulateId": reg.id}}), 200, media_type="application/json")

    async def show(request: Request, f: Forgetter) -> Response:
        reg = await asyncio.to_thread(f.store.get, request.path_params["regulate_id"])
        if reg is None:
            return Response(
                b'{"errors":[{"message":"no such regulation"}]}', 404, media_type="application/json"
            )
        return Response(
            orjson.dumps({"data": {"regulation": regulation_body(reg)}}), media_type="application/json"
        )

    async def forget(request: Request, f: Forgetter) -> Response:
        """`{user_ids: [...], emails: [...], type?}`: one request for each kind of subject."""
        body = await read(request)
        if not isinstance(body, dict):
            return _bad("a JSON object: {user_ids, emails, type}")
        type_ = body.get("type", "SUPPRESS_WITH_DELETE")
        if type_ not in TYPES:
            return _bad(f"type: one of {', '.join(TYPES)}")
        made = []
        for key, subject_type in (("user_ids", "USER_ID"), ("emails", "EMAIL")):
            values = body.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                return _bad(f"{key}: a list of {key.replace('_', ' ')}")
            if values:
                made.append(f.submit(type_, subject_type, values).id)
        if not made:
            return _bad("give user_ids or emails")
        return Response(orjson.dumps({"regulateIds": made}), 202, media_type="application/json")

    return [
        Route("/regulations", guarded(create), methods=["POST"]),
        Route("/regulations/{regulate_id}", guarded(show), methods=["GET"]),
        Route("/admin/api/forget", guarded(forget), methods=["POST"]),
    ]
