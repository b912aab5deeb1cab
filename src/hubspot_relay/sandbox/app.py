"""The HubSpot sandbox as an ASGI app: HubSpot's endpoints, one module per API family (CRM
objects, properties, associations, schemas, events, the legacy dialect), behind a gateway that
authenticates, injects faults, keeps budgets and records calls; and a small inspection API under
/_sandbox for tests and benchmarks. The portals' state can be kept in a file across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import associations, crm, events, legacy, lists, properties, schemas, subscriptions
from .accounts import Accounts
from .errors import ApiError
from .faults import Faults
from .gateway import Gateway
from .http import error_response
from .inspection import Inspection
from .settings import PortalSettings
from .state import PortalState


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


class Sandbox:
    """The emulator: its accounts (portals, credentials, budgets, faults, calls), the API behind
    the gateway, the inspection API, and the state file."""

    def __init__(
        self,
        portals: Sequence[PortalSettings] = (PortalSettings(),),
        *,
        clock: Callable[[], float] = time.time,
        state_path: Path | None = None,
    ) -> None:
        self.clock = clock
        self.state_path = state_path
        self.accounts = Accounts(portals, clock)
        api = Starlette(
            routes=[
                *crm.routes(),
                *properties.routes(),
                *associations.routes(),
                *schemas.routes(),
                *lists.routes(),
                *subscriptions.routes(),
                *events.routes(),
                *legacy.routes(),
            ],
            exception_handlers={ApiError: _refused},
        )
        self.api = Gateway(api, self.accounts)
        self.inspection = Starlette(routes=Inspection(self.accounts).routes())

    # What tests and the CLI read: the accounts' current state.
    @property
    def settings(self) -> list[PortalSettings]:
        return self.accounts.settings

    @property
    def portals(self) -> dict[str, PortalState]:
        return self.accounts.portals

    @property
    def calls(self) -> list[tuple[float, str, int, str, int]]:
        return self.accounts.calls

    @property
    def faults(self) -> Faults:
        return self.accounts.faults

    def reset(self) -> None:
        self.accounts.reset()

    # ---- the state file -----------------------------------------------------------------------

    def load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        with contextlib.closing(sqlite3.connect(self.state_path)) as db:
            for hub_id, blob in db.execute("SELECT hub_id, state FROM portals"):
                if hub_id in self.portals:
                    self.portals[hub_id].restore(orjson.loads(blob))
        self.accounts.dirty = False

    def save(self) -> None:
        if self.state_path is None or not self.accounts.dirty:
            return
        self.accounts.dirty = False
        rows = [(h, orjson.dumps(p.snapshot())) for h, p in self.portals.items()]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.state_path)) as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS portals (hub_id TEXT PRIMARY KEY, state BLOB NOT NULL)")
            db.executemany("INSERT OR REPLACE INTO portals (hub_id, state) VALUES (?, ?)", rows)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Load the state file, keep it written (at most a second behind), write it at the end."""
        self.load()

        async def flush() -> None:
            while True:
                await asyncio.sleep(1.0)
                self.save()

        task = asyncio.create_task(flush()) if self.state_path else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.save()

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/_sandbox"):
            await self.inspection(scope, receive, send)
        elif scope["type"] == "http":
            await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        cm = self.lifespan()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await cm.__aenter__()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await cm.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_sandbox_app(
    portals: Sequence[PortalSettings] = (PortalSettings(),),
    *,
    clock: Callable[[], float] = time.time,
    state_path: Path | None = None,
) -> Sandbox:
    return Sandbox(portals, clock=clock, state_path=state_path)
