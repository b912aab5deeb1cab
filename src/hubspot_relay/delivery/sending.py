"""What every sender shares: a call retried in place, calls side by side within the budget, a
refused batch halved until the offender is alone, and what a refusal outside content means."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from ..activity import carrying
from ..config import Account
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError, Kind
from ..options import DeliveryOptions
from ..state.identity import Identities
from ..state.shared_cache import SharedCache
from ..translate import PropertyInfo
from .gate import CallGate
from .planner import Pending
from .settlement import Settlement

log = structlog.get_logger("hubspot_relay.deliver")

INLINE_RETRIES = 3


class Sender:
    """The state the senders (contacts, companies, events) share; `Delivery` sets it up."""

    account: Account
    options: DeliveryOptions
    identity: Identities
    client: HubSpotClient
    clock: Callable[[], float]
    legacy: bool
    catalogs: dict[str, tuple[float, dict[str, PropertyInfo]]]
    setup_lock: asyncio.Lock  # one batch at a time reads the catalog or creates definitions
    cache: SharedCache | None  # catalogs and definitions shared with other relay processes
    gate: CallGate  # `in_flight_share` calls out at once, all batches together

    def in_flight_share(self) -> int:
        """This process's share of `max_in_flight` (see `Delivery`: processes sharing a budget
        share it, so that a process that dies takes fewer calls down with it)."""
        return self.options.max_in_flight

    async def ack_finished(self, s: Settlement, ids: Sequence[int]) -> None:
        """Ack at once the messages whose every call has gone through: a crash then redoes only
        what was not delivered, and a partition changes hands sooner (see `Delivery`)."""

    def failed(self, e: HubSpotError, ids: Sequence[int], s: Settlement) -> None:
        """A refusal that is not about the content: permanent ones (401, 403) stop retrying, are
        reported as the account's problem and dead-letter the messages; the rest are retried."""
        if e.kind is Kind.PERMANENT:
            reason = e.describe()
            if e.status == 401:
                reason = f"{reason} (the account's access token or API key is refused: fix it, then replay)"
            self.identity.set_problem(self.account.name, f"http_{e.status}", reason)
            log.error("HubSpot refuses the account's calls", account=self.account.name, error=reason)
            s.fail(ids, reason)
        else:
            s.fail(ids, e.describe(), retry_in=0.0)

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """A call, retried in place a few times when HubSpot or the network fails."""
        for attempt in range(INLINE_RETRIES):
            try:
                return await fn()
            except HubSpotError as e:
                if e.kind is not Kind.RETRYABLE or attempt == INLINE_RETRIES - 1:
                    raise
                await asyncio.sleep(0.25 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    async def in_parallel(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        """Run independent calls side by side, at most `max_in_flight` out at once for the account
        (this process's share), every batch in flight counted (the limiter still spaces them): at
        HubSpot's real latency one call at a time leaves most of the budget unused, and a process
        that dies takes no more than its share of calls down with it. The first unexpected error
        (a daily limit, a bug) cancels the others and is raised."""

        async def run(job: Callable[[], Awaitable[Any]]) -> None:
            async with self.gate:
                await job()

        if len(jobs) <= 1:
            for job in jobs:
                await run(job)
            return

        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(run(job))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def send_batches(
        self,
        object_type: str,
        items: list[Pending],
        send: Callable[[list[Pending]], Awaitable[Any]],
        s: Settlement,
    ) -> None:
        """`items` `contact_batch` (100) a call, the calls side by side; a property HubSpot says
        does not exist (the catalog was stale) is read again, dropped, and the call made once more."""

        async def stale_catalog(e: HubSpotError, chunk: list[Pending]) -> bool:
            missing = e.missing_properties()
            if not missing:
                return False
            await self.catalog(object_type, refresh=True)  # type: ignore[attr-defined]
            for p in chunk:
                for key in missing:
                    p.properties.pop(key, None)
            return True

        size = self.options.contact_batch
        await self.in_parallel(
            [
                lambda chunk=items[start : start + size]: self.split_send(
                    chunk, send, s, on_validation=stale_catalog
                )
                for start in range(0, len(items), size)
            ]
        )

    async def split_send(
        self,
        items: list[Pending],
        send: Callable[[list[Pending]], Awaitable[Any]],
        s: Settlement,
        *,
        on_validation: Callable[[HubSpotError, list[Pending]], Awaitable[bool]] | None = None,
        pays: bool = True,
    ) -> None:
        """Send `items`; when HubSpot refuses the batch for its content, halve it until the
        offending record is alone, and dead-letter only that one's messages."""
        try:
            carried = [
                (m.source, m.message_id, m.type)
                for i in dict.fromkeys(i for item in items for i in item.ids)
                if (m := s.messages.get(i)) is not None
            ]
            with carrying(carried):
                await self.call(lambda: send(items))
            if pays:
                paid = [i for item in items for i in item.ids]
                s.pay(paid)
                await self.ack_finished(s, paid)
        except HubSpotError as e:
            ids = [i for item in items for i in item.ids]
            if e.kind is Kind.VALIDATION:
                if on_validation is not None and await on_validation(e, items):
                    await self.split_send(items, send, s, pays=pays)  # fixed (a stale catalog): once more
                elif len(items) > 1:
                    half = len(items) // 2
                    await self.split_send(items[:half], send, s, on_validation=on_validation, pays=pays)
                    await self.split_send(items[half:], send, s, on_validation=on_validation, pays=pays)
                else:
                    s.fail(ids, e.describe())
            else:
                self.failed(e, ids, s)
