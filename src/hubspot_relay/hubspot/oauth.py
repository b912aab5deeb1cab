"""An OAuth app's access tokens: exchanged for the refresh token at HubSpot's token endpoint for
the account's API version (as HubSpot publishes it: `endpoints.py`), refreshed before they run
out, refreshed once more when HubSpot answers 401 for one, and kept where every relay process
(and the next start) finds them: Redis when processes share it, a file in the data folder when
not. One refresh serves every process; a refresh token HubSpot rotates is kept, never lost.

A refused refresh (a revoked install, a wrong secret) is the account's problem, in words, and its
messages wait for the fix; nothing else pauses.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import structlog

from ..config import Account
from ..state.shared_cache import SharedCache
from .endpoints import spellings
from .errors import HubSpotError, bad_answer, credentials_refused, transport_error
from .verdicts import TOKEN_ENDPOINT_BUSY

log = structlog.get_logger("hubspot_relay.hubspot")

# Refresh this long before a token runs out (a quarter of its life when that is shorter), so that
# a call in flight never carries one that expires on the way.
EARLY_S = 300.0
KEEP_S = 90 * 86_400.0  # how long a stored refresh token is kept without use


class TokenStore(Protocol):
    """Where the current token (and the refresh token) is kept for other processes and restarts."""

    async def load(self) -> dict[str, Any] | None: ...

    async def save(self, state: dict[str, Any]) -> None: ...

    async def once(self, round_: str, refresh: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """`refresh()` by one process for this round (the token it replaces); the others wait for it."""
        ...


class MemoryTokens:
    """One process, nothing kept (previews and start-up checks)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    async def load(self) -> dict[str, Any] | None:
        return self.state

    async def save(self, state: dict[str, Any]) -> None:
        self.state = state

    async def once(self, round_: str, refresh: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        return await refresh()


class FileTokens(MemoryTokens):
    """One process on SQLite: the tokens in a file of the data folder only its owner can read."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    async def load(self) -> dict[str, Any] | None:
        try:
            return dict(orjson.loads(await asyncio.to_thread(self.path.read_bytes)))
        except (OSError, orjson.JSONDecodeError):
            return None

    async def save(self, state: dict[str, Any]) -> None:
        await asyncio.to_thread(_write_private, self.path, orjson.dumps(state))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SharedTokens:
    """Processes sharing Redis: one key holds the current tokens; a refresh round is done once."""

    def __init__(self, cache: SharedCache, key: str) -> None:
        self.cache = cache
        self.key = key

    async def load(self) -> dict[str, Any] | None:
        raw = await self.cache.get(self.key)
        return dict(orjson.loads(raw)) if raw else None

    async def save(self, state: dict[str, Any]) -> None:
        await self.cache.set(self.key, orjson.dumps(state), KEEP_S)

    async def once(self, round_: str, refresh: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        async def fetch() -> bytes:
            return orjson.dumps(await refresh())

        return dict(orjson.loads(await self.cache.once(f"{self.key}:round:{round_}", 60.0, fetch)))


def token_store(account: Account, data_dir: Path, cache: SharedCache | None) -> TokenStore:
    name = f"oauth:{account.hub_id}:{account.oauth.client_id if account.oauth else ''}"
    if cache is not None:
        return SharedTokens(cache, name)
    return FileTokens(data_dir / "oauth" / f"{account.name}.json")


class OAuthSession:
    """The account's current access token, refreshed as it must be."""

    def __init__(
        self,
        account: Account,
        http: httpx.AsyncClient,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert account.oauth is not None
        self.account = account
        self.app = account.oauth
        self.http = http
        self.store = store or MemoryTokens()
        self.clock = clock  # wall-clock seconds: the expiry is shared between processes
        self.state: dict[str, Any] | None = None
        self.refreshes = 0  # done by this process
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A token good for a call now (refreshed first when it runs out soon)."""
        if self.state is None or self._stale(self.state):
            async with self._lock:
                if self.state is None or self._stale(self.state):
                    self.state = await self._current(self.state)
        return str(self.state["access_token"])

    async def rejected(self, token: str) -> str:
        """HubSpot answered 401 for `token`: a fresh one (once per rejected token, whoever asks)."""
        async with self._lock:
            if self.state is not None and self.state["access_token"] != token:
                return str(self.state["access_token"])  # refreshed meanwhile
            stored = await self.store.load()
            if stored and stored.get("access_token") not in (None, token) and not self._stale(stored):
                self.state = stored
            else:
                self.state = await self._refresh_round(token)
            return str(self.state["access_token"])

    def _stale(self, state: dict[str, Any]) -> bool:
        left = float(state["expires_at"]) - self.clock()
        lifetime = float(state.get("expires_in") or EARLY_S * 4)
        return left < min(EARLY_S, lifetime / 4)

    async def _current(self, old: dict[str, Any] | None) -> dict[str, Any]:
        stored = await self.store.load()
        if stored and stored.get("access_token") and not self._stale(stored):
            return stored  # refreshed by another process, or before a restart
        stale = (old or stored or {}).get("access_token") or "none"
        return await self._refresh_round(str(stale))

    async def _refresh_round(self, stale: str) -> dict[str, Any]:
        round_ = hashlib.sha256(f"{self.app.client_id}:{stale}".encode()).hexdigest()[:16]
        return await self.store.once(round_, lambda: self._refresh(stale))

    async def _refresh(self, stale: str) -> dict[str, Any]:
        stored = await self.store.load()
        if stored and stored.get("access_token") not in (None, stale) and not self._stale(stored):
            return stored  # another process's round got there first
        refresh_token = (stored or {}).get("refresh_token") or self.app.refresh_token.reveal()
        answer = await self._exchange(refresh_token)
        now = self.clock()
        expires_in = float(answer.get("expires_in") or 1800)
        state = {
            "access_token": str(answer["access_token"]),
            "refresh_token": str(answer.get("refresh_token") or refresh_token),
            "expires_at": now + expires_in,
            "expires_in": expires_in,
        }
        await self.store.save(state)
        self.refreshes += 1
        rotated = state["refresh_token"] != refresh_token
        log.info(
            "OAuth access token refreshed",
            account=self.account.name,
            expires_in_s=expires_in,
            refresh_token_rotated=rotated,
        )
        return state

    async def _exchange(self, refresh_token: str) -> dict[str, Any]:
        """The refresh-token grant, at the first published token path the portal serves."""
        form = {
            "grant_type": "refresh_token",
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret.reveal(),
            "refresh_token": refresh_token,
        }
        rows = spellings("oauth.token", self.account.api_version)
        for i, row in enumerate(rows):
            try:
                response = await self.http.post(self.account.api_base + row.path, data=form)
            except httpx.HTTPError as exc:
                raise transport_error(exc) from None
            if response.status_code == 404 and i + 1 < len(rows):
                continue
            if response.status_code < 300:
                answer = orjson.loads(response.content)
                if not isinstance(answer, dict) or not answer.get("access_token"):
                    raise bad_answer(502, "the token endpoint answered without a token")
                return answer
            raise self._refused(response)
        raise credentials_refused(404, {"message": "no published token endpoint answered"})

    def _refused(self, response: httpx.Response) -> HubSpotError:
        error = HubSpotError.from_response(response.status_code, response.content, response.headers)
        if TOKEN_ENDPOINT_BUSY(error):
            return error
        why = str(error.body.get("status") or error.category or response.status_code)
        return credentials_refused(
            response.status_code,
            {
                "category": why,
                "message": (
                    f"HubSpot refused to refresh the OAuth app {self.app.client_id}'s access token for "
                    f"account {self.account.name} ({why}: {error.message[:200]}). The app may have been "
                    f"uninstalled from portal {self.account.hub_id}, or its client secret or refresh "
                    "token changed: install it again and set the new refresh_token (or "
                    "HUBSPOT_OAUTH_REFRESH_TOKEN). Its messages wait meanwhile; nothing is dead-lettered."
                ),
            },
        )

    def report(self) -> dict[str, Any]:
        """For status: when the current token runs out (never the token)."""
        left = float(self.state["expires_at"]) - self.clock() if self.state else None
        return {"client_id": self.app.client_id, "token_expires_in_s": left, "refreshes": self.refreshes}
