"""What every sender shares: the account's context, a call retried in place, calls side by side
within the budget, a refused batch halved until the offender is alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from ..activity import carrying
from ..hubspot.errors import HubSpotError
from ..hubspot.verdicts import verdict
from ..translate import PropertyInfo
from .catalog import Catalogs
from .context import Context, Part
from .gate import Slot
from .plan import Carries, Record
from .settlement import Settlement

log = structlog.get_logger("hubspot_relay.deliver")

R = TypeVar("R", bound=Carries)  # what a call carries
P = TypeVar("P", bound=Record)  # records with properties (a stale catalog's are dropped from them)

HUNG_CHECK_S = 0.25  # how often calls in flight are checked for one past `hung_call_s`


@dataclass(frozen=True)
class Afterwards:
    """What a call's `send` returns when it has bookkeeping to do once HubSpot answered (the
    identity map's writes, off the event loop): done after the call is paid for, so that a batch
    stopped meanwhile (a daily limit reached by a call beside it) still counts the call made."""

    then: Callable[[], Awaitable[None]]


@dataclass
class Straggler:
    """A call left to finish on its own (see `Sender.send_chunks`), and the records it carries."""

    task: asyncio.Task[None]
    keys: set[str]


async def finish(stragglers: Sequence[Straggler]) -> None:
    """Wait for calls left behind; an unexpected error in one cancels the others and is raised."""
    tasks = [st.task for st in stragglers]
    try:
        for task in tasks:
            await task
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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

    async def prepared_many(
        self, object_type: str, records: Sequence[dict[str, Any]]
    ) -> list[dict[str, str]]:
        return await self.catalogs.prepared_many(object_type, records)

    async def send_chunks(
        self,
        chunks: Sequence[list[R]],
        send: Callable[[list[R]], Awaitable[Any]],
        s: Settlement,
        *,
        on_validation: Callable[[HubSpotError, list[R]], Awaitable[bool]] | None = None,
        leave_behind: bool = False,
    ) -> list[Straggler]:
        """Each chunk a call (halved when HubSpot refuses it for its content), side by side, at
        most `max_in_flight` out at once for the account (this process's share; every batch in
        flight counted, the limiter still spacing them): at HubSpot's real latency one call at a
        time leaves most of the budget unused. The first unexpected error (a daily limit, a bug)
        cancels the others and is raised.

        A chunk still out after `hung_call_s` gives its place at the gate up (a hung call is not
        using HubSpot); with `leave_behind` it is also left to finish on its own and returned,
        so that the stage goes on without it and only what it carries waits for it."""
        loop = asyncio.get_running_loop()
        began: dict[asyncio.Task[None], tuple[float, Slot]] = {}

        async def run(chunk: list[R]) -> None:
            async with self.ctx.gate.slot() as slot:
                task = asyncio.current_task()
                assert task is not None
                began[task] = (loop.time(), slot)
                await self.split_send(chunk, send, s, on_validation=on_validation)

        tasks = {asyncio.create_task(run(chunk)): chunk for chunk in chunks}
        pending = set(tasks)
        left: list[Straggler] = []
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=HUNG_CHECK_S, return_when=asyncio.FIRST_EXCEPTION
                )
                for task in done:
                    task.result()
                now = loop.time()
                for task in list(pending):
                    start, slot = began.get(task, (now, None))
                    if slot is None or now - start <= self.options.hung_call_s:
                        continue
                    slot.give_up()
                    if leave_behind:
                        pending.discard(task)
                        left.append(Straggler(task, {p.key for p in tasks[task]}))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return left

    async def send_batches(
        self,
        object_type: str,
        items: list[P],
        send: Callable[[list[P]], Awaitable[Any]],
        s: Settlement,
        *,
        leave_behind: bool = False,
    ) -> list[Straggler]:
        """`items` `contact_batch` (100) a call, the calls side by side (see `send_chunks`); a
        property HubSpot says does not exist (the catalog was stale) is read again, dropped, and
        the call made once more."""

        async def stale_catalog(e: HubSpotError, chunk: list[P]) -> bool:
            missing = e.missing_properties()
            if not missing:
                return False
            await self.catalogs.catalog(object_type, refresh=True)
            for p in chunk:
                for key in missing:
                    p.properties.pop(key, None)
            return True

        size = self.options.contact_batch
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        return await self.send_chunks(
            chunks, send, s, on_validation=stale_catalog, leave_behind=leave_behind
        )

    async def split_send(
        self,
        items: list[R],
        send: Callable[[list[R]], Awaitable[Any]],
        s: Settlement,
        *,
        on_validation: Callable[[HubSpotError, list[R]], Awaitable[bool]] | None = None,
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
                answered = await self.call(lambda: send(items))
            if pays:  # before anything else is awaited: a batch stopping now keeps the payment
                paid = [i for item in items for i in item.ids]
                s.pay(paid)
            if isinstance(answered, Afterwards):
                await answered.then()
            if pays:
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
