"""What a sandbox serves and remembers across calls: its portals, the credentials that reach
each, a budget per credential, the faults injected and the log of calls. Reset in place, so the
gateway and the inspection API keep the same object."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from starlette.requests import Request

from . import errors
from .faults import Faults
from .limits import TokenLimiter
from .oauth import OAuthServer
from .settings import PortalSettings
from .state import PortalState


class Accounts:
    def __init__(self, settings: Sequence[PortalSettings], clock: Callable[[], float] = time.time) -> None:
        self.settings = list(settings)
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every record, event and call: back to the configured portals."""
        self.portals = {p.hub_id: PortalState(p) for p in self.settings}
        self.tokens = {t: p.hub_id for p in self.settings for t in p.access_tokens}
        self.api_keys = {p.api_key.lower(): p.hub_id for p in self.settings if p.api_key}
        self.limiters: dict[str, TokenLimiter] = {}
        self.oauth = OAuthServer(self.settings, self.clock)
        # (time, label, status, hub id, records in a batch call)
        self.calls: list[tuple[float, str, int, str, int]] = []
        self.faults = Faults()
        self.dirty = True  # changed since the state file was last written

    def authenticate(self, request: Request) -> tuple[str, PortalState]:
        """The credential (Bearer token, or the legacy `hapikey`) and the portal it reaches."""
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            hub_id = self.tokens.get(token) if scheme.lower() == "bearer" else None
            if hub_id is None and scheme.lower() == "bearer":
                app = self.oauth.authenticate(token)  # an OAuth app's: one budget per app and portal
                if app is not None:
                    credential, hub_id, budget = app
                    self.limiters.setdefault(credential, TokenLimiter(budget))
                    return credential, self.portals[hub_id]
            if hub_id is None:
                raise errors.invalid_token()
            return f"token:{token}", self.portals[hub_id]
        key = request.query_params.get("hapikey")
        if key:
            hub_id = self.api_keys.get(key.strip().lower())
            if hub_id is None:
                raise errors.invalid_api_key()
            return f"hapikey:{key.strip().lower()}", self.portals[hub_id]
        raise errors.missing_auth()

    def limiter(self, credential: str, portal: PortalState) -> TokenLimiter:
        limiter = self.limiters.get(credential)
        if limiter is None:
            limiter = self.limiters[credential] = TokenLimiter(portal.settings.budget)
        return limiter
