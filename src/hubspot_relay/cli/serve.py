"""`hubspot-relay serve`: the banner, the start-up check of mappings, uvicorn on the port it took."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__
from ..config import (
    Config,
)
from ..logs import configure as configure_logs
from ..ports import PortInUse, take
from .common import ConfigOpt, DataDirOpt, QueueOpt, app, err, load_config

# How long uvicorn lets open requests finish after SIGTERM before the lifespan stops delivery
# (server.STOP_GRACE_SECONDS more); the service unit's and compose's stop timeouts are above both.
GRACEFUL_SHUTDOWN_S = 10


def _banner(cfg: Config, host: str, port: int) -> None:
    err.print(f"[bold]hubspot-relay {__version__}[/] listening on http://{host}:{port}", highlight=False)
    from ..backends import backend_for

    err.print(f"  queue: {backend_for(cfg).described}", highlight=False)
    for src in cfg.sources:
        acc = cfg.account(src.account)
        state = "" if src.enabled else " (HubSpot off)"
        err.print(
            f"  source {src.name!r} -> account {acc.name!r} hub {acc.hub_id} "
            f"\\[API {acc.version}, {acc.auth}] at {acc.api_base}{state}",
            highlight=False,
        )
    if cfg.open_ingest:
        err.print("  [yellow]no HUBSPOT_RELAY_WRITE_KEY set: any write key is accepted (development only)[/]")
    if cfg.uses_sandbox:
        err.print(
            "[bold yellow]  NO HUBSPOT CREDENTIALS CONFIGURED: the target is the local HubSpot sandbox "
            f"({cfg.accounts[0].api_base}), not a real HubSpot account.[/]"
        )
    err.print(
        "  ingest: POST /v1/{identify,track,page,screen,group,alias,batch} and /v1/{i,t,p,s,g,a,b}",
        highlight=False,
    )


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env HUBSPOT_RELAY_PORT; default 8088).")] = None,
    data_dir: DataDirOpt = None,
    queue: QueueOpt = None,
    log_format: Annotated[str, typer.Option(help="console or json")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    deliver: Annotated[
        bool,
        typer.Option(
            "--deliver/--no-deliver", help="Deliver to HubSpot (--no-deliver: only accept and queue)."
        ),
    ] = True,
    analytics_js_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="HUBSPOT_RELAY_ANALYTICS_JS_DIR",
            help="Serve analytics.js from this folder (@segment/analytics-next's dist/umd; "
            "default: the copy a release carries).",
        ),
    ] = None,
) -> None:
    """Run the relay: accept Segment messages and deliver them to HubSpot.

    It also serves the browser's settings and plugin, the operator's console at /admin, and, with
    no HubSpot credentials, starts the local HubSpot sandbox."""
    from ..segment.device import bundled_analytics_js
    from ..server import bundled_sandbox

    configure_logs("json" if log_format == "json" else "console", log_level)
    cfg = load_config(config, data_dir, queue)
    host = host or cfg.host
    port = port or cfg.port
    analytics_js_dir = analytics_js_dir or bundled_analytics_js()
    if analytics_js_dir and not (analytics_js_dir / "standalone.js").is_file():
        err.print(f"[bold red]--analytics-js-dir:[/] no standalone.js in {analytics_js_dir}", highlight=False)
        raise typer.Exit(2)
    try:  # before anything is announced or started
        sock = take(host, port, option="--port", variable="HUBSPOT_RELAY_PORT")
    except PortInUse as e:
        err.print(f"[bold red]cannot listen:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(1) from None
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        try:
            sandbox_note = stack.enter_context(bundled_sandbox(cfg if deliver else replace(cfg, accounts=())))
        except (PortInUse, RuntimeError) as e:
            err.print(f"[bold red]the HubSpot sandbox:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        if deliver and any(a.mappings for a in cfg.accounts):
            _check_mappings(cfg)  # against the portal, before any message is read
        _banner(cfg, host, port)
        if sandbox_note:
            err.print(f"  [bold yellow]{sandbox_note}[/]", highlight=False)
        if analytics_js_dir:
            err.print(
                f"  analytics.js: {analytics_js_dir} (demo: http://{host}:{port}/demo)", highlight=False
            )
        _serve(cfg, sock, host, port, log_level, deliver, analytics_js_dir)


def _check_mappings(cfg: Config) -> None:
    """Every account's mappings against its portal: object types, properties, labels."""
    from ..delivery.mapping_check import check_mappings
    from ..hubspot.client import HubSpotClient
    from ..hubspot.errors import HubSpotError
    from ..hubspot.ratelimit import AccountLimiter

    async def check() -> list[str]:
        problems: list[str] = []
        for account in cfg.accounts:
            if not account.mappings:
                continue
            client = HubSpotClient(account, AccountLimiter(account.limits.per_10s, account.limits.per_day))
            try:
                problems += await check_mappings(account, client, account.delivery.create_properties)
            except HubSpotError as e:
                problems.append(
                    f"accounts[{account.name}]: reading HubSpot portal {account.hub_id} failed: "
                    f"{e.describe()}"
                )
            finally:
                await client.aclose()
        return problems

    problems = asyncio.run(check())
    if problems:
        err.print("[bold red]the mappings do not fit the HubSpot portal:[/]", highlight=False)
        for problem in problems:
            err.print(f"  - {escape(problem)}", highlight=False)
        raise typer.Exit(2)


def _serve(
    cfg: Config,
    sock: socket.socket,
    host: str,
    port: int,
    log_level: str,
    deliver: bool,
    analytics_js_dir: Path | None,
) -> None:
    """uvicorn on the socket `serve` bound, with the connection limits."""
    import uvicorn

    from ..connections import ConnectionLimits, uvicorn_options
    from ..server import create_app

    limits = ConnectionLimits(
        header_timeout=cfg.header_timeout_s,
        body_timeout=cfg.body_timeout_s,
        max_connections=cfg.max_connections,
        max_per_peer=cfg.max_connections_per_peer,
        exempt=cfg.trusted_proxies,
    )
    # uvicorn stops cleanly on SIGTERM, then raises it again for the handler it found: make
    # that one exit with status 0, so that a service manager sees a clean stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, analytics_js_dir=analytics_js_dir, deliver=deliver),
            host=host,
            port=port,
            access_log=False,
            log_level=log_level.lower(),
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            **uvicorn_options(limits),
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has stopped cleanly, then re-raises
        server.run(sockets=[sock])
