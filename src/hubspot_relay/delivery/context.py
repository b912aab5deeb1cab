"""What the senders of one account share, and a call retried in place (HubSpot or the network
failing for a moment is not worth a cycle)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..config import Account
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError
from ..hubspot.verdicts import verdict
from ..options import DeliveryOptions
from ..state.identity import Identities
from ..state.shared_cache import SharedCache
from .gate import CallGate
from .settlement import Settlement, refuse

log = structlog.get_logger("hubspot_relay.deliver")

INLINE_RETRIES = 3


@dataclass(eq=False)
class Context:
    """What every sender of one account shares; `Delivery` makes it and composes the senders."""

    account: Account
    options: DeliveryOptions
    identity: Identities
    client: HubSpotClient
    clock: Callable[[], float]
    gate: CallGate  # `in_flight_share` calls out at once, all batches together
    cache: SharedCache | None = None  # catalogs and definitions shared with other relay processes
    # Ack at once the messages whose every call has gone through (see `Delivery.ack_finished`).
    on_paid: Callable[[Settlement, Sequence[int]], Awaitable[None]] | None = None
    # One batch at a time reads a catalog or creates definitions.
    setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The account's problems this process reported (and may clear); one left by an earlier run
    # counts as reported, so the first success clears it. (name -> (reason, when))
    reported: dict[str, tuple[str, float]] = field(default_factory=lambda: {"unserved_path": ("", 0.0)})

    @property
    def legacy(self) -> bool:
        return self.account.api_mode == "legacy"

    def refused(self, e: HubSpotError, ids: Sequence[int], s: Settlement) -> None:
        """A refusal, settled as `hubspot.verdicts.VERDICTS` says; one that is the account's (a refused
        token, a missing scope) is also reported, once, as its problem."""
        refuse(e, ids, s, report=self._report)

    def _report(self, name: str, reason: str) -> None:
        last = self.reported.get(name)
        if last is not None and last[0] == reason and self.clock() - last[1] < REPORT_AGAIN_S:
            return  # reported already: once for every batch it refuses would drown the log
        self.identity.set_problem(self.account.name, name, reason)
        self.reported[name] = (reason, self.clock())
        log.error("HubSpot refuses the account's calls", account=self.account.name, error=reason)


REPORT_AGAIN_S = 60.0


class Part:
    """A part of one account's delivery (the catalogs, each sender): the context's fields by name."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def account(self) -> Account:
        return self.ctx.account

    @property
    def options(self) -> DeliveryOptions:
        return self.ctx.options

    @property
    def identity(self) -> Identities:
        return self.ctx.identity

    @property
    def client(self) -> HubSpotClient:
        return self.ctx.client

    @property
    def legacy(self) -> bool:
        return self.ctx.legacy

    def clock(self) -> float:
        return self.ctx.clock()

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await retrying(fn)


async def retrying(fn: Callable[[], Awaitable[Any]]) -> Any:
    """A call, retried in place a few times when HubSpot or the network fails."""
    for attempt in range(INLINE_RETRIES):
        try:
            return await fn()
        except HubSpotError as e:
            if not verdict(e).retry or attempt == INLINE_RETRIES - 1:
                raise
            await asyncio.sleep(0.25 * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")
