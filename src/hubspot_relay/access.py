"""Who may see what: the admin token, loopback peers, and trusted proxies.

Every endpoint that shows data (the operations API, the console, the demo's message views,
`/metrics` unless made public) asks `Access.admin`: a request passes with `Authorization: Bearer
<admin token>` (compared in constant time) or the console's session cookie, or, when no admin
token is configured, only from a loopback peer.

Forwarded headers (`Forwarded`, `X-Forwarded-For`, `-Proto`, `-Host`) are believed only from a
peer in `trusted_proxies`, here and nowhere else (uvicorn's own proxy handling is off, see
`connections.uvicorn_options`): from anyone else they would let one request choose the address
every visitor's settings name, or pass for another client.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .secrets import Secret

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def in_networks(host: str | None, networks: Sequence[Network]) -> bool:
    if not host or not networks:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


SESSION_COOKIE = "hubspot_relay_session"


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What a trusted proxy says of the request it passed on (None where it says nothing)."""

    proto: str | None = None
    host: str | None = None


def _first(value: str) -> str:
    return value.split(",")[0].strip()


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_forwarded(headers: Mapping[str, str]) -> Forwarded:
    """The protocol and host the client used, as the proxy in front reports them: `Forwarded`
    (RFC 7239, its first element: the proxy nearest the client) wins over `X-Forwarded-Proto`
    and `-Host`; a protocol other than http or https is no protocol."""
    if "forwarded" in headers:
        element = headers["forwarded"].split(",")[0]
        pairs = {k.strip().lower(): _unquote(v) for k, _, v in (p.partition("=") for p in element.split(";"))}
        proto, host = pairs.get("proto"), pairs.get("host")
    else:
        proto = _first(headers.get("x-forwarded-proto", ""))
        host = _first(headers.get("x-forwarded-host", ""))
    proto = proto.lower() if proto and proto.lower() in ("http", "https") else None
    return Forwarded(proto, host or None)


class Access:
    def __init__(
        self,
        admin_token: Secret | None,
        trusted_proxies: Sequence[Network] = (),
        public_url: str | None = None,
    ) -> None:
        self._token = admin_token.reveal().encode() if admin_token else None
        self.trusted_proxies = tuple(trusted_proxies)
        # Behind a proxy that rewrites Host, the console's origin is the public address.
        self._public_host = public_url.split("://", 1)[-1].split("/", 1)[0] if public_url else None
        # The console's cookie holds a value derived from the token, never the token itself; it
        # changes when the token does, which signs every browser out.
        self.session = (
            hmac.new(self._token, b"hubspot-relay console session", "sha256").hexdigest()
            if self._token
            else None
        )

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self._token)

    def _signed_in(self, request: Request) -> bool:
        """The console's cookie, sent only by our own pages (SameSite=Strict): a request that
        changes something must also come from our origin."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if self.session is None or cookie is None or not hmac.compare_digest(cookie, self.session):
            return False
        if request.method in ("GET", "HEAD"):
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False
        return origin.split("://", 1)[-1] in (request.headers.get("host", ""), self._public_host)

    def peer(self, request: Request) -> str | None:
        """The address the connection comes from (never a header)."""
        return request.client.host if request.client else None

    def forwarded(self, request: Request) -> Forwarded | None:
        """What the proxy in front says, when it is a trusted one; None otherwise."""
        if not self.trusted_proxy(request):
            return None
        return parse_forwarded(request.headers)

    def scheme(self, request: Request) -> str:
        """`https` when the connection is, or a trusted proxy says the client's was."""
        fwd = self.forwarded(request)
        return fwd.proto if fwd is not None and fwd.proto else request.url.scheme

    def admin(self, request: Request) -> Response | None:
        """None when the request may read operational data; otherwise the refusal to send."""
        if self._token is None:
            if is_loopback(self.peer(request)) and not self._forwarded(request):
                return None
            return _refusal(
                403,
                "loopback_only",
                "no admin token is configured: this is answered on loopback only "
                "(set HUBSPOT_RELAY_ADMIN_TOKEN to use it from elsewhere)",
            )
        given = bearer(request)
        if given is not None and self.token_matches(given):
            return None
        if self._signed_in(request):
            return None
        return _refusal(401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'")

    def _forwarded(self, request: Request) -> bool:
        """A loopback peer relaying someone else's request (a local reverse proxy) is not local."""
        return "x-forwarded-for" in request.headers or "forwarded" in request.headers

    def trusted_proxy(self, request: Request) -> bool:
        return in_networks(self.peer(request), self.trusted_proxies)


def _refusal(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="hubspot-relay admin"'} if status == 401 else None
    return JSONResponse(
        {"success": False, "code": code, "message": message},
        status,
        headers={**(headers or {}), "Cache-Control": "no-store"},
    )
