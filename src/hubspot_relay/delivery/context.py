"""What the senders of one account share, and a call retried in place (HubSpot or the network
failing for a moment is not worth a cycle)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Account
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError, Kind
from ..options import DeliveryOptions
from ..state.identity import Identities
from ..state.shared_cache import SharedCache
from .gate import CallGate
from .settlement import Settlement

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

    @property
    def legacy(self) -> bool:
        return self.account.api_mode == "legacy"


async def retrying(fn: Callable[[], Awaitable[Any]]) -> Any:
    """A call, retried in place a few times when HubSpot or the network fails."""
    for attempt in range(INLINE_RETRIES):
        try:
            return await fn()
        except HubSpotError as e:
            if e.kind is not Kind.RETRYABLE or attempt == INLINE_RETRIES - 1:
                raise
            await asyncio.sleep(0.25 * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")
