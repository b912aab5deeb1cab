"""What every sender shares: the account's context, a call retried in place, calls side by side
within the budget, a refused batch halved until the offender is alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from ..activity import carrying
from ..hubspot.errors import HubSpotError
from ..translate import PropertyInfo
from .catalog import Catalogs
from .context import Context, Part
from .planner import Pending
from .settlement import Settlement, verdict

log = structlog.get_logger("hubspot_relay.deliver")


class Sender(Part):
    """The calls every sender makes the same way: retried in place, side by side within the
    budget, a refused batch halved to its offender. A refusal is settled by `refuse` (the one
    table of what each kind of refusal means)."""

    def __init__(self, ctx: Context, catalogs: Catalogs) -> None:
        super().__init__(ctx)
        self.catalogs = catalogs

    async def ack_finished(self, s: Settlement, ids: Sequence[int]) -> None:
        if self.ctx.on_paid is not None:
            await self.ctx.on_paid(s, ids)

    def failed(self, e: HubSpotError, ids: Sequence[int], s: Settlement) -> None:
        self.ctx.refused(e, ids, s)

    async def catalog(self, object_type: str, *, refresh: bool = False) -> dict[str, PropertyInfo]:
        return await self.catalogs.catalog(object_type, refresh=refresh)

    async def prepared(self, object_type: str, props: dict[str, Any]) -> dict[str, str]:
        return await self.catalogs.prepared(object_type, props)

    async def in_parallel(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        """Run independent calls side by side, at most `max_in_flight` out at once for the account
        (this process's share), every batch in flight counted (the limiter still spaces them): at
        HubSpot's real latency one call at a time leaves most of the budget unused, and a process
        that dies takes no more than its share of calls down with it. The first unexpected error
        (a daily limit, a bug) cancels the others and is raised."""

        async def run(job: Callable[[], Awaitable[Any]]) -> None:
            async with self.ctx.gate:
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
            await self.catalogs.catalog(object_type, refresh=True)
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
            if verdict(e).isolate:
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
