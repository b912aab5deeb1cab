"""Device mode: what a stock Segment snippet or @segment/analytics-next fetches from its CDN.

- `GET /v1/projects/{writeKey}/settings`: Segment-CDN-compatible settings. They point the
  client's API host at this relay, and list our HubSpot plugin as a remote plugin (loaded from
  `/plugins/hubspot.js`, built with `window.hubspotRelayPlugin(settings)`). HubSpot is marked
  `bundlingStatus: "bundled"`, so analytics-next lists it in `_metadata.bundled` and the relay
  does not deliver those messages a second time from the server.
- `GET /plugins/hubspot.js`: the plugin.
- With `--analytics-js-dir`, analytics.js itself: `/analytics.js/v1/{writeKey}/analytics.min.js`
  and the chunks it loads from `/analytics-next/bundles/`.
- `/demo`: a page with identify / track / page buttons and a live view of `_hsq` and delivery.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..access import Access, is_loopback
from ..config import Account, Config, Source

SETTINGS_MAX_AGE = 60  # seconds: toggling HubSpot off takes effect at the next page load after this
PLUGIN_MAX_AGE = 300
WEB = resources.files("hubspot_relay") / "web"


_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


class NoPublicAddress(Exception):
    """A settings request from elsewhere than loopback, and no public address configured."""


def relay_base(request: Request, config: Config, access: Access) -> tuple[str, str, bool]:
    """(scheme, host[:port], from configuration) that browsers should use to reach the relay.

    The configured public address wins. Without one, the request's own `Host` is believed only
    from a loopback peer (development), and `X-Forwarded-*` only from a configured trusted proxy:
    anything else lets one request poison what a shared cache hands every visitor.
    """
    if config.public_url:
        scheme, _, host = config.public_url.partition("://")
        return scheme, host, True
    peer = access.peer(request)
    if (fwd := access.forwarded(request)) is not None:
        scheme = fwd.proto or request.url.scheme
        host = fwd.host or request.headers.get("host", "")
    elif is_loopback(peer):
        scheme, host = request.url.scheme, request.headers.get("host", "")
    else:
        raise NoPublicAddress
    if not _HOST.match(host):
        raise NoPublicAddress
    return scheme, host, False


def plugin_settings(account: Account, script_url: str | None) -> dict[str, Any]:
    opts = account.delivery
    return {
        "hubId": account.hub_id,
        "apiMode": account.api_mode,
        "euDataCenter": account.eu,
        "loadFormsSdk": opts.load_forms_sdk,
        "flushIdentifyImmediately": opts.flush_identify_immediately,
        "eventNames": dict(opts.event_names),
        "scriptUrl": script_url,
    }


def cdn_settings(
    source: Source,
    account: Account,
    scheme: str,
    host: str,
    *,
    script_url: str | None,
    write_key: str | None = None,
) -> dict[str, Any]:
    """The settings object analytics-next loads, for one source (pure). `write_key` is the one the
    client asked with (in development any key is let in, and the source has none of its own)."""
    integrations: dict[str, Any] = {
        "Segment.io": {
            "apiKey": write_key or source.write_key.reveal(),
            "apiHost": f"{host}/v1",
            "protocol": scheme,
            "unbundledIntegrations": [],
            "addBundledMetadata": True,
            "maybeBundledConfigIds": {},
        }
    }
    remote_plugins = []
    if source.enabled:
        settings = plugin_settings(account, script_url)
        settings["consentCategories"] = list(source.consent_categories)
        integrations["HubSpot"] = {"bundlingStatus": "bundled", "hubId": account.hub_id}
        remote_plugins.append(
            {
                "name": "HubSpot",
                "creationName": "HubSpot",
                "libraryName": "hubspotRelayPlugin",
                "url": f"{scheme}://{host}/plugins/hubspot.js",
                "settings": settings,
            }
        )
    return {
        "integrations": integrations,
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": remote_plugins,
    }


def device_routes(
    config: Config, *, analytics_js_dir: Path | None = None, recent: Any = None, access: Access | None = None
) -> list[Route]:
    guard = access or Access(config.admin_token, config.trusted_proxies)

    async def demo_recent(request: Request) -> Response:
        if (refusal := guard.admin(request)) is not None:
            return refusal
        rows = await recent() if recent is not None else []
        return Response(
            orjson.dumps(rows), media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/v1/projects/{write_key}/settings", settings_endpoint(config, guard), methods=["GET"]),
        Route(
            "/plugins/hubspot.js",
            _static("hubspot.js", "application/javascript", PLUGIN_MAX_AGE),
            methods=["GET"],
        ),
        *analytics_js_routes(analytics_js_dir),
        Route("/demo", _static("demo.html", "text/html; charset=utf-8", 0), methods=["GET"]),
        Route(
            "/demo/hubspot-standin.js",
            _static("hubspot-standin.js", "application/javascript", 0),
            methods=["GET"],
        ),
        Route("/demo/api/recent", demo_recent, methods=["GET"]),
    ]


def _script_url_for(account: Account, scheme: str, host: str) -> str | None:
    if account.delivery.browser_script_url:
        return account.delivery.browser_script_url
    if account.sandbox:  # no real portal behind the sandbox: a local stand-in records the calls
        return f"{scheme}://{host}/demo/hubspot-standin.js"
    return None


def settings_endpoint(config: Config, guard: Access) -> Any:
    """`GET /v1/projects/{writeKey}/settings`, as Segment's CDN answers it."""

    async def settings(request: Request) -> Response:
        source = config.source_for_write_key(request.path_params["write_key"])
        if source is None:
            return Response(
                orjson.dumps({"message": "unknown write key"}), 404, media_type="application/json"
            )
        account = config.account(source.account)
        try:
            scheme, host, configured = relay_base(request, config, guard)
        except NoPublicAddress:
            return Response(
                orjson.dumps(
                    {
                        "message": "this relay does not know its public address: set "
                        "HUBSPOT_RELAY_PUBLIC_URL (or public_url), or trusted_proxies for your proxy"
                    }
                ),
                503,
                media_type="application/json",
                headers={"Cache-Control": "no-store"},
            )
        body = cdn_settings(
            source,
            account,
            scheme,
            host,
            script_url=_script_url_for(account, scheme, host),
            write_key=request.path_params["write_key"],
        )
        # Only settings built from configuration may sit in a shared cache.
        cache = "public" if configured else "private"
        return Response(
            orjson.dumps(body),
            media_type="application/json",
            headers={"Cache-Control": f"{cache}, max-age={SETTINGS_MAX_AGE}"},
        )

    return settings


def _static(name: str, media_type: str, max_age: int) -> Any:
    async def endpoint(request: Request) -> Response:
        return Response(
            (WEB / name).read_bytes(),
            media_type=media_type,
            headers={"Cache-Control": f"public, max-age={max_age}"},
        )

    return endpoint


BUNDLED_ANALYTICS_JS = Path(__file__).parent.parent / "web" / "analytics-js"


def bundled_analytics_js() -> Path | None:
    """The analytics.js a release carries (copied in by `make`; absent from a bare source tree)."""
    return BUNDLED_ANALYTICS_JS if (BUNDLED_ANALYTICS_JS / "standalone.js").is_file() else None


def analytics_js_routes(analytics_js_dir: Path | None) -> list[Route]:
    """analytics.js and its chunks, from @segment/analytics-next's dist/umd folder, when given."""
    # The chunk files analytics.js may ask for, listed once: a request names one of them or nothing.
    bundles = {p.name for p in analytics_js_dir.iterdir() if p.is_file()} if analytics_js_dir else set()

    async def analytics_js(request: Request) -> Response:
        if analytics_js_dir is None:
            return Response("this relay serves no analytics.js: start it with --analytics-js-dir", 404)
        return FileResponse(
            analytics_js_dir / "standalone.js",
            media_type="application/javascript",
            headers={"Cache-Control": f"public, max-age={PLUGIN_MAX_AGE}"},
        )

    async def bundle(request: Request) -> Response:
        if analytics_js_dir is None:
            return Response("this relay serves no analytics.js", 404)
        name = request.path_params["name"]
        if name not in bundles:
            return Response("no such file", 404)
        return FileResponse(
            analytics_js_dir / name,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    return [
        Route("/analytics.js/v1/{write_key}/analytics.min.js", analytics_js, methods=["GET"]),
        Route("/analytics-next/bundles/{name}", bundle, methods=["GET"]),
    ]
