"""Which published spelling of the custom-event paths a portal serves, asked of the portal.

HubSpot has published the same version's custom-event endpoints under several prefixes (for
2026-09: `/events/2026-09`, `/events/custom/2026-09`, `/events/v3/2026-09`; see `endpoints.py`).
Rather than bet on one, the relay reads the event definitions at each in turn, newest first, and
keeps the first the portal answers; nothing is sent to a path the portal has not answered. When
none answers, that is the account's problem (its `api_version`), and events wait for the fix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from .errors import HubSpotError, unserved
from .paths import ApiPaths
from .verdicts import NOT_THIS_SPELLING, SERVED_BUT_REFUSED


class Requester(Protocol):
    async def request(self, method: str, path: str) -> Any: ...


# After every spelling answered 404, how long before the portal is asked again (each ask is one
# read per spelling): the events wait in their queue meanwhile.
REASK_S = 60.0
log = structlog.get_logger("hubspot_relay.hubspot")


class EventPaths:
    def __init__(self, paths: ApiPaths, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = paths
        self.published = paths.event_spellings()
        # One published spelling: nothing to ask. Several: unknown until the portal answers.
        self.spelling: str | None = self.published[0] if len(self.published) == 1 else None
        self.answers: dict[str, int] = {}  # spelling -> the status the portal answered there
        self.unserved: tuple[float, HubSpotError] | None = None
        self.clock = clock
        self._asking = asyncio.Lock()

    async def discover(self, client: Requester) -> list[dict[str, Any]]:
        """Ask the portal (by reading its event definitions at each spelling); returns them."""
        async with self._asking:
            if self.spelling is not None:  # known by now (another batch asked)
                path = self.paths.path("event_definitions.list", spelling=self.spelling)
                return _results(await client.request("GET", path))
            if self.unserved and self.clock() - self.unserved[0] < REASK_S:
                raise self.unserved[1]
            for spelling in self.published:
                path = self.paths.path("event_definitions.list", spelling=spelling)
                try:
                    found = await client.request("GET", path)
                except HubSpotError as e:
                    self.answers[spelling] = e.status
                    if NOT_THIS_SPELLING(e):
                        continue
                    if SERVED_BUT_REFUSED(e):  # this is the path
                        self._found(spelling)
                    raise
                self.answers[spelling] = 200
                self._found(spelling)
                return _results(found)
            error = unserved(self._none_answered())
            self.unserved = (self.clock(), error)
            raise error

    def _found(self, spelling: str) -> None:
        self.spelling, self.unserved = spelling, None
        others = [p for p in self.published if p != spelling]
        log.info(
            "custom events path chosen",
            version=self.paths.version,
            path=spelling,
            because="the portal answered there" + (f" (not at {', '.join(others)})" if others else ""),
        )

    def lost(self, path: str, e: HubSpotError) -> HubSpotError:
        """A 404 at a path that answered before: ask the portal again before the next call."""
        if self.spelling is not None:
            self.answers[self.spelling] = 404
        self.spelling = None
        return unserved(
            f"HubSpot answered 404 at {path}, which this portal served before ({e.describe()}); "
            "the relay asks the portal again which published path it serves, and the events wait "
            "meanwhile."
        )

    def _none_answered(self) -> str:
        tried = ", ".join(f"{s}/event-definitions" for s in self.published)
        others = [v for v in ("v3", "2026-03", "2026-09") if v != self.paths.version]
        return (
            f"HubSpot answered 404 at every path it publishes for custom events in API version "
            f"{self.paths.version} ({tried}): this portal serves none of them. Set the account's "
            f"api_version to one it serves ({' or '.join(others)}); the events wait meanwhile, "
            f"nothing is dead-lettered."
        )

    def report(self) -> dict[str, Any]:
        """For status and the console: the spelling in use and what the portal answered."""
        return {"custom_events": self.spelling, "published": self.published, "answers": dict(self.answers)}


def _results(answer: Any) -> list[dict[str, Any]]:
    return list(answer.get("results", [])) if isinstance(answer, dict) else []
