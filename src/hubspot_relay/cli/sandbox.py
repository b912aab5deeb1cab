"""`hubspot-relay sandbox`: the local HubSpot on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import (
    SANDBOX_API_KEY,
    SANDBOX_HUB_ID,
    SANDBOX_PORT,
    SANDBOX_TOKEN,
    validate_hub_id,
)
from ..errors import ConfigError
from ..logs import configure as configure_logs
from .common import app, err


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HUBSPOT_SANDBOX_PORT", help="Port.")] = SANDBOX_PORT,
    hub_id: Annotated[str, typer.Option(help="The default portal's Hub ID.")] = SANDBOX_HUB_ID,
    token: Annotated[list[str] | None, typer.Option(help="Access token(s) it accepts (repeatable).")] = None,
    api_key: Annotated[str, typer.Option(help="Legacy API key it accepts (hapikey).")] = SANDBOX_API_KEY,
    tier: Annotated[str, typer.Option(help="enterprise, professional, starter or free.")] = "enterprise",
    limit_10s: Annotated[int, typer.Option("--limit-10s", help="Calls per rolling 10 s, per token.")] = 100,
    limit_daily: Annotated[int, typer.Option("--limit-daily", help="Calls per day, per token.")] = 250_000,
    limit_1s: Annotated[
        int | None, typer.Option("--limit-1s", help="Calls per second (the seed's 10).")
    ] = None,
    portals_file: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file of portals.")] = None,
    state: Annotated[Path | None, typer.Option(help="Keep the sandbox's data in this SQLite file.")] = None,
    event_paths: Annotated[
        list[str] | None,
        typer.Option(
            "--event-paths",
            help="VERSION=PREFIX: which published spelling of a version's custom-event paths the "
            'portal serves (e.g. 2026-09=/events/custom/2026-09; "2026-09=" serves none). Repeatable.',
        ),
    ] = None,
    oauth_app: Annotated[
        list[str] | None,
        typer.Option(
            "--oauth-app",
            help="CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN: an OAuth app installed on the portal. Repeatable.",
        ),
    ] = None,
    oauth_token_lifetime: Annotated[
        float, typer.Option(help="Seconds an OAuth access token lives (HubSpot: 1800).")
    ] = 1800.0,
    oauth_rotate: Annotated[bool, typer.Option(help="A new refresh token with each refresh.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the local HubSpot sandbox alone: HubSpot's API, limits and errors, offline."""
    import uvicorn

    from ..sandbox import PortalSettings, create_sandbox_app, load_portals
    from ..sandbox.limits import Budget

    configure_logs("console", log_level)
    try:
        if portals_file:
            portals = load_portals(portals_file)
        else:
            validate_hub_id(hub_id, "--hub-id")
            if tier not in ("enterprise", "professional", "starter", "free"):
                raise ConfigError("--tier: enterprise, professional, starter or free")
            served = _served_event_paths(event_paths or [])
            portals = [
                PortalSettings(
                    hub_id=hub_id,
                    access_tokens=tuple(token or [SANDBOX_TOKEN]),
                    api_key=api_key,
                    tier=tier,
                    budget=Budget(per_10s=limit_10s, per_day=limit_daily, per_second=limit_1s),
                    event_paths=served,
                    oauth_apps=_oauth_apps(oauth_app or [], oauth_token_lifetime, oauth_rotate),
                )
            ]
    except ConfigError as e:
        err.print(f"[bold red]configuration error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    base = f"http://{host}:{port}"
    _describe(portals, base, state)
    uvicorn.run(
        create_sandbox_app(portals, state_path=state),
        host=host,
        port=port,
        access_log=False,
        log_level=log_level.lower(),
        server_header=False,
        proxy_headers=False,
    )


def _served_event_paths(items: list[str]) -> tuple[tuple[str, str], ...]:
    """`--event-paths VERSION=PREFIX` options as the portal's choice of published spellings."""
    from ..sandbox.settings import default_event_paths

    chosen = {}
    for item in items:
        version, sep, prefix = item.partition("=")
        if not sep:
            raise ConfigError(f"--event-paths {item}: VERSION=PREFIX, like 2026-09=/events/2026-09")
        chosen[version.strip()] = prefix.strip()
    try:
        return default_event_paths(**chosen)
    except ValueError as e:
        raise ConfigError(f"--{e}") from None


def _oauth_apps(items: list[str], lifetime: float, rotate: bool) -> tuple[dict[str, object], ...]:
    apps = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError("--oauth-app: CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN")
        if lifetime <= 0:
            raise ConfigError("--oauth-token-lifetime: seconds, more than 0")
        client_id, secret, refresh = parts
        apps.append(
            {
                "client_id": client_id,
                "client_secret": secret,
                "refresh_tokens": [refresh],
                "token_lifetime_s": lifetime,
                "rotate_refresh_tokens": rotate,
            }
        )
    return tuple(apps)


def _describe(portals: list[Any], base: str, state: Path | None) -> None:
    """What the sandbox serves, on stderr as it starts."""
    err.print(f"[bold]HubSpot sandbox[/] on {base} (API and tracking host)", highlight=False)
    for p in portals:
        limits = f"{p.budget.per_10s}/10s, {p.budget.per_day}/day" + (
            f", {p.budget.per_second}/s" if p.budget.per_second else ""
        )
        err.print(
            f"  portal {p.hub_id} ({p.tier}): tokens {', '.join(p.access_tokens) or '-'}; "
            f"api key {p.api_key or '-'}; limits {limits}",
            highlight=False,
        )
        served_at = ", ".join(f"{v} at {prefix or 'none'}" for v, prefix in p.event_paths)
        err.print(f"    custom events: {served_at}", highlight=False)
        for oauth in p.oauth_apps:
            err.print(
                f"    OAuth app {oauth['client_id']}: tokens live {oauth.get('token_lifetime_s', 1800):g} s",
                highlight=False,
            )
    err.print(
        f"  inspect: GET {base}/_sandbox/calls, POST {base}/_sandbox/reset, POST {base}/_sandbox/faults",
        highlight=False,
    )
    err.print(f"  state: {state or 'in memory'}", highlight=False)
