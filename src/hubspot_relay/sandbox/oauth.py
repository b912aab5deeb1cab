"""HubSpot's OAuth for apps, as the sandbox plays it: the refresh-token grant at every token path
HubSpot publishes (`/oauth/v1/token`, `/oauth/v3/token`, `/oauth/2026-03/token`,
`/oauth/2026-09/token`: form-encoded `grant_type=refresh_token`, `client_id`, `client_secret`,
`refresh_token`; answer `{access_token, refresh_token, expires_in, token_type}`), access tokens
that live 30 minutes (shorter for tests), answered 401 `EXPIRED_AUTHENTICATION` once expired,
refresh tokens that can be revoked (an uninstall) or rotated, and one budget per app and portal
(110 calls per 10 s, HubSpot's figure for OAuth apps)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..hubspot.endpoints import ENDPOINTS
from . import errors
from .errors import ApiError
from .limits import Budget
from .settings import PortalSettings

TOKEN_PATHS = frozenset(e.path for e in ENDPOINTS if e.operation == "oauth.token")
APP_PER_10S = 110
LIFETIME_S = 1800


@dataclass
class App:
    client_id: str
    client_secret: str
    hub_id: str
    lifetime_s: float
    rotate: bool
    budget: Budget


class OAuthServer:
    def __init__(self, portals: Sequence[PortalSettings], clock: Callable[[], float]) -> None:
        self.clock = clock
        self.apps: dict[tuple[str, str], App] = {}  # (client id, hub id) -> the app's install there
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # -> (client id, hub id)
        self.access_tokens: dict[str, tuple[str, str, float]] = {}  # -> (client id, hub id, expires at)
        self.revoked: set[str] = set()
        self.refreshes = 0
        for portal in portals:
            for spec in portal.oauth_apps:
                app = App(
                    spec["client_id"],
                    spec["client_secret"],
                    portal.hub_id,
                    float(spec.get("token_lifetime_s", LIFETIME_S)),
                    bool(spec.get("rotate_refresh_tokens", False)),
                    Budget(per_10s=APP_PER_10S, per_day=portal.budget.per_day),
                )
                self.apps[(app.client_id, portal.hub_id)] = app
                for token in spec.get("refresh_tokens", []):
                    self.refresh_tokens[token] = (app.client_id, portal.hub_id)

    def grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The refresh-token grant; HubSpot's 400 for anything it would refuse."""
        if form.get("grant_type") != "refresh_token":
            raise _refused("BAD_GRANT_TYPE", "grant_type must be refresh_token (or authorization_code)")
        token = form.get("refresh_token", "")
        install = self.refresh_tokens.get(token)
        if install is None or token in self.revoked:
            raise _refused("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        app = self.apps[install]
        if form.get("client_id") != app.client_id:
            raise _refused("BAD_CLIENT_ID", "missing or unknown client id")
        if not secrets.compare_digest(form.get("client_secret", ""), app.client_secret):
            raise _refused("BAD_CLIENT_SECRET", "missing or invalid client secret")
        access = f"oauth-{secrets.token_urlsafe(18)}"
        self.access_tokens[access] = (app.client_id, app.hub_id, self.clock() + app.lifetime_s)
        self.refreshes += 1
        if app.rotate:
            del self.refresh_tokens[token]
            token = f"refresh-{secrets.token_urlsafe(18)}"
            self.refresh_tokens[token] = install
        return {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": token,
            "expires_in": int(app.lifetime_s),
        }

    def authenticate(self, token: str) -> tuple[str, str, Budget] | None:
        """(credential, hub id, budget) for an access token this server issued; None if not one."""
        issued = self.access_tokens.get(token)
        if issued is None:
            return None
        client_id, hub_id, expires_at = issued
        late = self.clock() - expires_at
        if late >= 0:
            raise errors.error(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {int(late)} second(s) ago.",
            )
        return f"app:{client_id}:{hub_id}", hub_id, self.apps[(client_id, hub_id)].budget

    def revoke(self, refresh_token: str) -> bool:
        """An uninstall: the refresh token is refused from now on (issued tokens live on)."""
        if refresh_token not in self.refresh_tokens:
            return False
        self.revoked.add(refresh_token)
        return True

    def expire_all(self) -> int:
        """Every access token issued runs out now (a test's way to make one expire mid-run)."""
        now = self.clock()
        for token, (client_id, hub_id, _) in list(self.access_tokens.items()):
            self.access_tokens[token] = (client_id, hub_id, now)
        return len(self.access_tokens)


def _refused(code: str, message: str) -> ApiError:
    """HubSpot's 400 for a refused grant: the code in `status` (as its v1 endpoint has it) and
    in `category` (as its published Error schema has it)."""
    refused = errors.error(400, code, message)
    refused.body["status"] = code
    return refused
