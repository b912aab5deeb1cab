"""An account's OAuth app: HubSpot's way for agencies and multi-portal teams to connect (one
install per portal; access tokens that live 30 minutes, refreshed with a refresh token; 110 calls
per 10 s per app and portal). Read from `[accounts.oauth]` or, for the account configured from the
environment, from `HUBSPOT_OAUTH_CLIENT_ID`, `HUBSPOT_OAUTH_CLIENT_SECRET` and
`HUBSPOT_OAUTH_REFRESH_TOKEN`; each value may be `${VAR}`, so secrets stay out of files."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from .errors import ConfigError
from .secrets import Secret

# HubSpot's budget for an OAuth app, per app and portal (its usage guidelines): 110 per 10 s.
OAUTH_PER_10S = 110
ENV = ("HUBSPOT_OAUTH_CLIENT_ID", "HUBSPOT_OAUTH_CLIENT_SECRET", "HUBSPOT_OAUTH_REFRESH_TOKEN")
_WORD = re.compile(r"^\S{1,512}$")


@dataclass(frozen=True, slots=True)
class OAuthApp:
    client_id: str
    client_secret: Secret
    refresh_token: Secret  # the one configured; a rotated one is kept by the relay (oauth.py)


class RawOAuth(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_id: str
    client_secret: str
    refresh_token: str


def oauth_app(raw: RawOAuth | None, key: str, expand: Callable[[str, str], str | None]) -> OAuthApp | None:
    """`[accounts.oauth]`, its values expanded (`expand(value, key)`) and checked."""
    if raw is None:
        return None
    values = {name: expand(getattr(raw, name), f"{key}.{name}") or "" for name in RawOAuth.__struct_fields__}
    return _checked(values["client_id"], values["client_secret"], values["refresh_token"], key)


def oauth_from_env(env: Mapping[str, str]) -> OAuthApp | None:
    values = [env.get(name, "").strip() for name in ENV]
    if not any(values):
        return None
    missing = [name for name, v in zip(ENV, values, strict=True) if not v]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: an OAuth app needs all of {', '.join(ENV)}")
    client_id, client_secret, refresh_token = values
    return _checked(client_id, client_secret, refresh_token, "HUBSPOT_OAUTH_*")


def _checked(client_id: str, client_secret: str, refresh_token: str, key: str) -> OAuthApp:
    for name, value in (
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("refresh_token", refresh_token),
    ):
        if not _WORD.match(value.strip()):
            raise ConfigError(
                f"{key}.{name}: one word with no spaces (from your app's settings and its install)"
            )
    return OAuthApp(client_id.strip(), Secret(client_secret.strip()), Secret(refresh_token.strip()))
