"""HubSpot's property catalogs, read once (per process, or for every process sharing a cache),
and values made ready against them: coerced to each property's type, unknown keys dropped and
counted, or created as text properties when the account asks for that."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson
import structlog

from ..hubspot.errors import HubSpotError
from ..hubspot.verdicts import MADE_MEANWHILE
from ..translate import PropertyInfo, prepare
from .context import Context, Part

log = structlog.get_logger("hubspot_relay.deliver")


async def _dumped(read: Any) -> bytes:
    return orjson.dumps(await read())


class Catalogs(Part):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.catalogs: dict[str, tuple[float, dict[str, PropertyInfo]]] = {}

    async def catalog(self, object_type: str, *, refresh: bool = False) -> dict[str, PropertyInfo]:
        cached = self.catalogs.get(object_type)
        if cached and not refresh and self.clock() - cached[0] < self.options.catalog_ttl_s:
            return cached[1]
        async with self.ctx.setup_lock:  # batches in flight side by side read the catalog once
            cached = self.catalogs.get(object_type)
            if cached and not refresh and self.clock() - cached[0] < self.options.catalog_ttl_s:
                return cached[1]
            return await self._read_catalog(object_type, refresh=refresh)

    async def _read_catalog(self, object_type: str, *, refresh: bool = False) -> dict[str, PropertyInfo]:
        """HubSpot's catalog (or the one another relay process read, when they share a cache)."""

        async def read() -> list[dict[str, Any]]:
            if self.legacy:
                return list(await self.call(self.client.legacy_properties))
            return list(await self.call(partial(self.client.properties, object_type)))

        key = f"catalog:{self.account.hub_id}:{'legacy' if self.legacy else 'v3'}:{object_type}"
        if self.ctx.cache is None:
            props = await read()
        elif refresh:
            props = await read()
            await self.ctx.cache.set(key, orjson.dumps(props), self.options.catalog_ttl_s)
        else:
            props = orjson.loads(
                await self.ctx.cache.once(key, self.options.catalog_ttl_s, lambda: _dumped(read))
            )
        catalog = {p["name"]: PropertyInfo.from_hubspot(p) for p in props}
        self.catalogs[object_type] = (self.clock(), catalog)
        return catalog

    async def _create_missing(self, object_type: str, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                await self.call(
                    partial(
                        self.client.create_property,
                        object_type,
                        {
                            "name": key,
                            "label": key.replace("_", " ").title(),
                            "type": "string",
                            "fieldType": "text",
                            "groupName": "contactinformation"
                            if object_type == "contacts"
                            else "companyinformation",
                        },
                    )
                )
                log.info("created property", account=self.account.name, object_type=object_type, name=key)
            except HubSpotError as e:
                if not MADE_MEANWHILE(e):
                    log.warning("could not create property", name=key, error=e.describe())
        await self.catalog(object_type, refresh=True)

    async def prepared(self, object_type: str, props: dict[str, Any]) -> dict[str, str]:
        return (await self.prepared_many(object_type, [props]))[0]

    async def prepared_many(
        self, object_type: str, records: Sequence[dict[str, Any]]
    ) -> list[dict[str, str]]:
        """Each record's properties as HubSpot takes them (see `translate.prepare`); the keys
        dropped are counted for the whole batch at once, off the event loop, and logged once:
        a per-record write on Redis would hold the loop a round trip per contact."""
        catalog = await self.catalog(object_type)
        done = [prepare(props, catalog) for props in records]
        missing = sorted({k for _, lost in done for k, r in lost.items() if r.startswith("not a property")})
        if missing and self.options.create_properties:
            await self._create_missing(object_type, missing)
            catalog = await self.catalog(object_type)
            done = [prepare(props, catalog) for props in records]
        dropped = Tally((k, r) for _, lost in done for k, r in lost.items())
        if dropped:
            await asyncio.to_thread(self.identity.count_dropped, self.account.name, object_type, dropped)
            log.info(
                "keys dropped",
                account=self.account.name,
                object_type=object_type,
                records=sum(1 for _, lost in done if lost),
                keys={k: r for (k, r) in list(dropped)[:20]},
            )
        return [clean for clean, _ in done]
