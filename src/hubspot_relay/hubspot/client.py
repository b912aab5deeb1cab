"""An async client for the HubSpot endpoints the relay uses (v3, events, associations v4).

Every call waits for the account's limiter first, gives the limiter HubSpot's rate-limit
headers afterwards, and turns a refusal into a `HubSpotError` that says what to do. A 429 is
waited out and retried here (it is not the caller's problem); everything else goes up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from prometheus_client import Counter

from ..activity import record_call
from ..config import Account
from .errors import HubSpotError, still_limited, transport_error
from .event_paths import EventPaths
from .oauth import OAuthSession, TokenStore
from .paths import ApiPaths
from .ratelimit import AccountLimiter
from .verdicts import ALREADY_GONE, NO_SUCH_LIST, PATH_MOVED, RATE_LIMITED

MAX_429_RETRIES = 20
CALLS = Counter(
    "hubspot_relay_hubspot_calls", "HubSpot API calls by account and status", ["account", "status"]
)


class HubSpotClient:
    def __init__(
        self,
        account: Account,
        limiter: AccountLimiter,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        recorded: bool = True,
        tokens: TokenStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`transport` is the one place calls leave the process (as in httpx): HubSpot over the
        network by default; tests mount the sandbox in-process, and the preview records."""
        self.account = account
        self.paths = ApiPaths(account.api_version)
        self.events = EventPaths(self.paths, limiter.clock)  # the spelling the portal serves
        self.recorded = recorded  # counted in metrics and the console (not a preview's)
        self.limiter = limiter
        # A connection that cannot be made fails fast; a batch call may take seconds to answer.
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        token = account.access_token.reveal() if account.access_token else None
        self._headers = {"Content-Type": "application/json", "User-Agent": "hubspot-relay"}
        self._auth_params: dict[str, str] = {}
        # An OAuth app's tokens change every 30 minutes: asked for on each call (oauth.py).
        self.oauth = OAuthSession(account, self._http, tokens, wall_clock) if account.oauth else None
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif account.api_key:  # the seed's API key, as HubSpot's legacy APIs take it
            self._auth_params["hapikey"] = account.api_key.reveal()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        *,
        base: str | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON (None for an empty or non-JSON answer)."""
        url = (base or self.account.api_base) + path
        content = orjson.dumps(body) if body is not None else None
        if self._auth_params and base is None:
            params = {**(params or {}), **self._auth_params}
        headers, bearer, renewed = await self._auth(), "", False
        if self.oauth is not None:
            bearer = headers["Authorization"].removeprefix("Bearer ")
        for _ in range(MAX_429_RETRIES):
            await self.limiter.acquire()
            try:
                response = await self._http.request(
                    method, url, content=content, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                error = transport_error(exc)
                if self.recorded:
                    CALLS.labels(self.account.name, "error").inc()
                    record_call(self.account.name, method, path, "error", _inputs(body), error.describe())
                raise error from None
            if self.recorded:
                CALLS.labels(self.account.name, str(response.status_code)).inc()
                record_call(
                    self.account.name,
                    method,
                    path,
                    response.status_code,
                    _inputs(body),
                    "" if response.status_code < 300 else response.text[:300],
                )
            await self.limiter.after_call(
                {
                    k.lower(): v
                    for k, v in response.headers.items()
                    if k.lower().startswith(("x-hubspot-ratelimit", "retry-after"))
                }
            )
            if response.status_code < 300:
                json_body = response.headers.get("content-type", "").startswith("application/json")
                return orjson.loads(response.content) if response.content and json_body else None
            if response.status_code == 207:
                return orjson.loads(response.content)
            if response.status_code == 401 and self.oauth is not None and not renewed:
                renewed = True  # expired on the way, or revoked: one fresh token, once
                bearer = await self.oauth.rejected(bearer)
                headers = {**self._headers, "Authorization": f"Bearer {bearer}"}
                continue
            error = HubSpotError.from_response(response.status_code, response.content, response.headers)
            if RATE_LIMITED(error):
                await self.limiter.after_429(error.policy, error.retry_after)
                continue  # the limiter waits (or raises DailyLimitReached) on the next acquire
            raise error
        raise still_limited()

    async def _auth(self) -> dict[str, str]:
        if self.oauth is None:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {await self.oauth.token()}"}

    # ---- the calls (every path from `endpoints.py`, through `self.paths`) ------------------

    async def properties(self, object_type: str) -> list[dict[str, Any]]:
        path = self.paths.path("properties.list", objectType=object_type)
        return list((await self.request("GET", path))["results"])

    async def create_property(self, object_type: str, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request("POST", self.paths.path("properties.create", objectType=object_type), spec)
        )

    async def batch(self, object_type: str, action: str, inputs: list[dict[str, Any]], **extra: Any) -> Any:
        path = self.paths.path(f"objects.batch_{action}", objectType=object_type)
        return await self.request("POST", path, {"inputs": inputs, **extra})

    async def search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request("POST", self.paths.path("objects.search", objectType=object_type), body)
        )

    async def associate(self, from_type: str, to_type: str, pairs: list[tuple[str, str]]) -> None:
        inputs = [{"from": {"id": a}, "to": {"id": b}} for a, b in pairs]
        path = self.paths.path(
            "associations.associate_default", fromObjectType=from_type, toObjectType=to_type
        )
        await self.request("POST", path, {"inputs": inputs})

    async def associate_labelled(
        self, from_type: str, to_type: str, pairs: list[tuple[str, str]], type_id: int, category: str
    ) -> None:
        """Associations with a label (`batch/create` with its type)."""
        spec = [{"associationCategory": category, "associationTypeId": type_id}]
        inputs = [{"from": {"id": a}, "to": {"id": b}, "types": spec} for a, b in pairs]
        path = self.paths.path("associations.create", fromObjectType=from_type, toObjectType=to_type)
        await self.request("POST", path, {"inputs": inputs})

    async def association_labels(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        path = self.paths.path("associations.labels", fromObjectType=from_type, toObjectType=to_type)
        return list((await self.request("GET", path))["results"])

    async def schemas(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", self.paths.path("schemas.list")))["results"])

    async def event_definitions(self) -> list[dict[str, Any]]:
        if self.events.spelling is None:
            return await self.events.discover(self)
        return list((await self._events_call("GET", "event_definitions.list"))["results"])

    async def create_event_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._events_call("POST", "event_definitions.create", body))

    async def add_event_property(self, name: str, spec: dict[str, Any]) -> None:
        await self._events_call("POST", "event_definitions.add_property", spec, eventName=name)

    async def send_events(self, inputs: list[dict[str, Any]]) -> None:
        await self._events_call("POST", "events.send_batch", {"inputs": inputs})

    async def _events_call(self, method: str, operation: str, body: Any = None, **params: str) -> Any:
        """A custom-event call at the spelling the portal serves (asked first, if not yet known).
        A 404 where it answered before means the portal moved, not that a message is wrong."""
        spelling = self.events.spelling
        if spelling is None:
            await self.events.discover(self)
            spelling = self.events.spelling or ""
        path = self.paths.path(operation, spelling=spelling, **params)
        try:
            return await self.request(method, path, body)
        except HubSpotError as e:
            if not PATH_MOVED(e) or operation == "event_definitions.add_property":
                raise  # (a 404 there is the definition's: created meanwhile elsewhere, or removed)
            raise self.events.lost(path, e) from None

    async def list_by_name(self, object_type_id: str, name: str) -> dict[str, Any] | None:
        """The list named `name` (HubSpot finds it whatever its case), None when there is none."""
        path = self.paths.path("lists.by_name", objectTypeId=object_type_id, listName=name)
        try:
            return dict((await self.request("GET", path))["list"])
        except HubSpotError as e:
            if NO_SUCH_LIST(e):
                return None
            raise

    async def create_list(self, name: str, object_type_id: str) -> dict[str, Any]:
        body = {"name": name, "objectTypeId": object_type_id, "processingType": "MANUAL"}
        return dict((await self.request("POST", self.paths.path("lists.create"), body))["list"])

    async def change_memberships(self, list_id: str, add: list[str], remove: list[str]) -> dict[str, Any]:
        path = self.paths.path("lists.add_and_remove", listId=list_id)
        body = {"recordIdsToAdd": add, "recordIdsToRemove": remove}
        return dict(await self.request("PUT", path, body) or {})

    async def write_subscription(self, status: dict[str, Any]) -> None:
        """One contact's email subscription status (any portal)."""
        path = self.paths.path("subscriptions.write", subscriberIdString=status["subscriberIdString"])
        await self.request("POST", path, {k: v for k, v in status.items() if k != "subscriberIdString"})

    async def write_subscriptions(self, statuses: list[dict[str, Any]]) -> None:
        """Many at once (HubSpot takes these on Marketing Hub Enterprise only)."""
        await self.request("POST", self.paths.path("subscriptions.write_batch"), {"inputs": statuses})

    async def gdpr_delete(self, object_id: str, id_property: str | None = "email") -> bool:
        """The contact deleted for good (HubSpot then refuses to create its email again), found by
        a unique property (`email`, the account's `user_id_property`) or, with `id_property` None,
        by its record id. False when HubSpot has no such contact: it is gone already."""
        body: dict[str, str] = {"objectId": object_id}
        if id_property is not None:
            body["idProperty"] = id_property
        try:
            await self.request("POST", self.paths.path("contacts.gdpr_delete"), body)
        except HubSpotError as e:
            if ALREADY_GONE(e):
                return False
            raise
        return True

    # ---- Segment's HubSpot integration's dialect (API key) ------------------------------------

    async def legacy_properties(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", self.paths.path("legacy.properties")))

    async def legacy_batch(self, contacts: list[dict[str, Any]]) -> None:
        """`POST /contacts/v1/contact/batch/`: create or update up to 100 contacts by email."""
        await self.request("POST", self.paths.path("legacy.contacts_batch"), contacts)

    async def legacy_event(self, params: dict[str, str]) -> None:
        """The events HTTP API: `GET {track host}/v1/event?_a={hubId}&_n={eventId}&email=...`."""
        await self.request(
            "GET",
            self.paths.path("legacy.event"),
            params={"_a": self.account.hub_id, **params},
            base=self.account.track_base,
        )


def _inputs(body: Any) -> int:
    """How many records a call carries (its `inputs`, a legacy batch's list), for the debugger."""
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        return len(body["inputs"])
    return len(body) if isinstance(body, list) else (1 if body is not None else 0)
