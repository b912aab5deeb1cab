"""The right to be forgotten: requests taken as Segment's Public API takes them (`POST /regulations`,
`GET /regulations/{regulateId}`) or as the operations API's `POST /admin/api/forget`, kept
durably, and carried out by every relay process until done (a kill mid-request resumes):

1. suppress (SUPPRESS_WITH_DELETE, SUPPRESS_ONLY): the person's new messages are answered as
   accepted and dropped before storage, in every process, until an UNSUPPRESS;
2. erase (SUPPRESS_WITH_DELETE, DELETE_ONLY): messages of theirs received before the request are
   skipped by delivery and deleted for good, settled ones (kept for dedupe, dead-lettered) at
   once; their ties, kept traits and contact ids leave the identity map, their lines the debugger;
3. ask HubSpot to GDPR-delete the contact (every account, by email), which also keeps the email
   from being created again.

Each step is idempotent; the status says what was done and what failed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .access import Access
from .activity import TRACE
from .hubspot.client import HubSpotClient
from .hubspot.errors import HubSpotError
from .queue.protocol import Queue
from .state.identity import Identities
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


class Forgetter:
    def __init__(
        self,
        store: Regulations,
        view: ForgottenView,
        queue: Queue,
        identity: Identities | None,
        clients: Sequence[HubSpotClient],
    ) -> None:
        self.store, self.view, self.queue = store, view, queue
        self.identity = identity
        self.clients = clients

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
                for reg in await asyncio.to_thread(self.store.unfinished):
                    await self.process(reg)
            except Exception:
                log.warning("right-to-be-forgotten requests could not be processed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def process(self, reg: Regulation) -> None:
        reg.status = "RUNNING"
        await asyncio.to_thread(self.store.save, reg)
        failures: list[str] = []
        if reg.type in SUPPRESSING:
            await asyncio.to_thread(self.store.suppress, reg.keys)
        if reg.type == "UNSUPPRESS":
            await asyncio.to_thread(self.store.unsuppress, [*reg.keys])
        if reg.type in DELETING:
            await asyncio.to_thread(self.store.erase_before, reg.keys, reg.created_at)
            failures += await self._erase(reg)
        self.view.refresh()
        reg.status = (
            "FINISHED" if not failures else "PARTIAL_SUCCESS" if reg.detail.get("erased") else "FAILED"
        )
        reg.detail["failures"] = failures
        if not failures:  # done: the request keeps digests, not the identifiers themselves
            reg.subjects, reg.subject_type = reg.keys, "DIGEST"
        await asyncio.to_thread(self.store.save, reg)
        log.info("right-to-be-forgotten request done", id=reg.id, type=reg.type, status=reg.status)

    async def _erase(self, reg: Regulation) -> list[str]:
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
        ids = [s for s in reg.subjects] if reg.subject_type == "USER_ID" else []
        emails = [s for s in reg.subjects] if reg.subject_type == "EMAIL" else []
        found: set[str] = set(e.lower() for e in emails)
        if self.identity is not None:
            found |= await asyncio.to_thread(self.identity.forget, ids, emails)
        reg.detail["erased"] = reg.detail.get("erased", 0) + len(erased)
        failures = []
        for client in self.clients:
            for email in sorted(found):
                try:
                    await client.gdpr_delete(email)
                except HubSpotError as e:
                    failures.append(f"{client.account.name}: {e.describe()}")
        reg.detail["hubspot_deleted"] = sorted(found) and len(found)
        return failures


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

    def guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapper(request: Request) -> Response:
            refusal = access.admin(request)
            if refusal is not None:
                return refusal
            f = forgetter()
            if f is None:
                return Response(b'{"errors":[{"message":"not ready"}]}', 503, media_type="application/json")
            return await endpoint(request)  # type: ignore[no-any-return]

        return wrapper

    async def read(request: Request) -> Any:
        try:
            return orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None

    async def create(request: Request) -> Response:
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
        reg = forgetter().submit(type_, subject_type, subjects)  # type: ignore[union-attr]
        return Response(orjson.dumps({"data": {"regulateId": reg.id}}), 200, media_type="application/json")

    async def show(request: Request) -> Response:
        reg = await asyncio.to_thread(forgetter().store.get, request.path_params["regulate_id"])  # type: ignore[union-attr]
        if reg is None:
            return Response(
                b'{"errors":[{"message":"no such regulation"}]}', 404, media_type="application/json"
            )
        return Response(
            orjson.dumps({"data": {"regulation": regulation_body(reg)}}), media_type="application/json"
        )

    async def forget(request: Request) -> Response:
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
                made.append(forgetter().submit(type_, subject_type, values).id)  # type: ignore[union-attr]
        if not made:
            return _bad("give user_ids or emails")
        return Response(orjson.dumps({"regulateIds": made}), 202, media_type="application/json")

    return [
        Route("/regulations", guarded(create), methods=["POST"]),
        Route("/regulations/{regulate_id}", guarded(show), methods=["GET"]),
        Route("/admin/api/forget", guarded(forget), methods=["POST"]),
    ]
