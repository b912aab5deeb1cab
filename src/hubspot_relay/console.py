"""The operator's console at `/admin`: a page and its script, served by the relay (no build, no
CDN), reading and acting through the operations API.

With an admin token, a sign-in form takes it once and leaves an HttpOnly, SameSite=Strict cookie
(a value derived from the token, not the token); without one, the console answers on loopback
only, like the API.
"""

from __future__ import annotations

import html
from importlib import resources
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .access import SESSION_COOKIE, Access

WEB = resources.files("hubspot_relay") / "web"
MAX_FORM_BYTES = 4096

# The page's own script and styles only; nothing from elsewhere, no framing.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(name: str, **fill: str) -> Response:
    text = (WEB / name).read_text(encoding="utf-8")
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", value)
    return Response(text, media_type="text/html; charset=utf-8", headers=_HEADERS)


def console_routes(access: Access) -> list[Route]:
    async def console(request: Request) -> Response:
        refusal = access.admin(request)
        if refusal is None:
            return _page("console.html")
        if not access.has_token:  # no token: loopback only, and this is not loopback
            return _page(
                "signin.html",
                message=html.escape(
                    "No admin token is configured, so the console answers on this machine only. "
                    "Set HUBSPOT_RELAY_ADMIN_TOKEN (or relay.admin_token) to sign in from elsewhere."
                ),
                disabled="disabled",
            )
        return _page("signin.html", message="", disabled="")

    async def sign_in(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return Response("the form is too large", 413)
        token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
        if not access.has_token or not access.token_matches(token):
            page = _page(
                "signin.html",
                message=html.escape(
                    "That is not the admin token." if access.has_token else "No admin token is set."
                ),
                disabled="",
            )
            page.status_code = 401
            return page
        response = RedirectResponse("/admin", status_code=303)
        assert access.session is not None
        response.set_cookie(
            SESSION_COOKIE,
            access.session,
            httponly=True,
            samesite="strict",
            secure=access.scheme(request) == "https",
            path="/admin",
            max_age=12 * 3600,
        )
        return response

    async def sign_out(request: Request) -> Response:
        response = RedirectResponse("/admin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/admin")
        return response

    def asset(name: str, media_type: str) -> Route:
        async def serve(request: Request) -> Response:  # code, not data: no sign-in needed
            return Response(
                (WEB / name).read_bytes(), media_type=media_type, headers={"Cache-Control": "no-cache"}
            )

        return Route(f"/admin/{name}", serve, methods=["GET"])

    return [
        Route("/admin", console, methods=["GET"]),
        Route("/admin/", console, methods=["GET"]),
        Route("/admin/sign-in", sign_in, methods=["POST"]),
        Route("/admin/sign-out", sign_out, methods=["POST"]),
        asset("console.js", "text/javascript; charset=utf-8"),
        asset("console.css", "text/css; charset=utf-8"),
    ]
