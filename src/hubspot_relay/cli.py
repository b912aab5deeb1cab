"""The `hubspot-relay` command: serve, status, send."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import (
    SANDBOX_API_KEY,
    SANDBOX_HUB_ID,
    SANDBOX_PORT,
    SANDBOX_TOKEN,
    Config,
    ConfigError,
    load,
    validate_hub_id,
    validate_queue_url,
)
from .logs import configure as configure_logs
from .ports import PortInUse, take

app = typer.Typer(
    name="hubspot-relay",
    help="A self-hosted, Segment-compatible HubSpot destination.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"hubspot-relay {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """A self-hosted, Segment-compatible HubSpot destination."""


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HUBSPOT_RELAY_CONFIG",
        help="TOML file with sources and HubSpot accounts (default: environment variables).",
    ),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the queue lives (env HUBSPOT_RELAY_DATA_DIR).")
]


UrlOpt = Annotated[
    str | None,
    typer.Option(
        envvar="HUBSPOT_RELAY_URL", help="A running relay to ask (default: the configured host and port)."
    ),
]
QueueOpt = Annotated[
    str | None,
    typer.Option(
        "--queue",
        help="redis://host:port/db: a Redis (or Valkey) queue shared by several relay processes "
        "(env HUBSPOT_RELAY_QUEUE_URL; default: SQLite in the data folder).",
        show_default=False,
    ),
]


def _load_config(config: Path | None, data_dir: Path | None = None, queue: str | None = None) -> Config:
    try:
        cfg = load(config)
        if queue:
            cfg = replace(cfg, queue_url=validate_queue_url(queue, "--queue"))
    except ConfigError as e:
        err.print(f"[bold red]configuration error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    if data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    return cfg


def _banner(cfg: Config, host: str, port: int) -> None:
    err.print(f"[bold]hubspot-relay {__version__}[/] listening on http://{host}:{port}", highlight=False)
    from .backends import backend_for

    err.print(f"  queue: {backend_for(cfg).described}", highlight=False)
    for src in cfg.sources:
        acc = cfg.account(src.account)
        state = "" if src.enabled else " (HubSpot off)"
        err.print(
            f"  source {src.name!r} -> account {acc.name!r} hub {acc.hub_id} "
            f"\\[{acc.api_mode}] at {acc.api_base}{state}",
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
            help="Serve analytics.js from this folder (@segment/analytics-next's dist/umd).",
        ),
    ] = None,
) -> None:
    """Run the relay: accept Segment messages and deliver them to HubSpot.

    It also serves the browser's settings and plugin, the operator's console at /admin, and, with
    no HubSpot credentials, starts the local HubSpot sandbox."""
    from .server import bundled_sandbox

    configure_logs("json" if log_format == "json" else "console", log_level)
    cfg = _load_config(config, data_dir, queue)
    host = host or cfg.host
    port = port or cfg.port
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
    from .delivery.objects import check_mappings
    from .hubspot.client import HubSpotClient
    from .hubspot.errors import HubSpotError
    from .hubspot.ratelimit import AccountLimiter

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

    from .connections import ConnectionLimits, uvicorn_options
    from .server import create_app

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
            timeout_graceful_shutdown=10,
            **uvicorn_options(limits),
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has stopped cleanly, then re-raises
        server.run(sockets=[sock])


@app.command()
def status(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    queue: QueueOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show what is queued, delivered, skipped and dead, per source and account.

    Also the budget used today, pauses, dead-letter reasons and each account's problems (a refused
    token, custom events, limits). Asks the running relay's operations API; reads the data folder
    (or the Redis queue) when none runs."""
    cfg = _load_config(config, data_dir, queue)
    report = _status_from_relay(cfg, url)
    if report is None:
        report = _status_from_files(cfg)
    if as_json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return
    _print_status(report)


def _relay_url(cfg: Config, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    return f"http://{host}:{cfg.port}"


def _status_from_relay(cfg: Config, url: str | None) -> dict[str, Any] | None:
    """The running relay's report, or None when no relay answers there."""
    base = _relay_url(cfg, url)
    headers = {"Authorization": f"Bearer {cfg.admin_token.reveal()}"} if cfg.admin_token else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            r = http.get("/admin/api/status")
            if r.status_code in (401, 403):
                message = (
                    r.json().get("message", r.text)
                    if r.headers.get("content-type", "").startswith("application/json")
                    else r.text
                )
                err.print(f"[bold red]the relay at {base} refused:[/] {escape(message)}", highlight=False)
                raise typer.Exit(2)
            r.raise_for_status()
            report: dict[str, Any] = r.json()
            dead = http.get("/admin/api/dead-letters", params={"limit": 1000}).json().get("dead_letters", [])
    except httpx.HTTPError:
        if url:
            err.print(f"[bold red]no relay answers at {base}[/]", highlight=False)
            raise typer.Exit(1) from None
        return None
    reasons: dict[str, int] = {}
    for d in dead:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    report["dead_letter_reasons"] = reasons
    report["from"] = base
    return report


def _status_from_files(cfg: Config) -> dict[str, Any]:
    """With no relay running: read its data folder directly."""
    from .backends import backend_for

    backend = backend_for(cfg)
    if not backend.exists():
        err.print(
            f"no relay answers at {_relay_url(cfg, None)} and there is no queue at {backend.where}: "
            "start one, or pass --url, --config or --data-dir",
            highlight=False,
        )
        raise typer.Exit(1)

    async def read() -> tuple[dict[str, Any], dict[str, int]]:
        q = backend.queue
        await q.open(appends=False)
        try:
            counts = {src: c.as_dict() for src, c in (await q.counts()).items()}
            reasons: dict[str, int] = {}
            for d in await q.dead_letters(limit=100_000):
                reasons[d.reason] = reasons.get(d.reason, 0) + 1
            return counts, reasons
        finally:
            await q.close()

    counts, reasons = asyncio.run(read())
    dropped: list[Any] = []
    problems: list[Any] = []
    identity = backend.identity(if_exists=True)
    if identity is not None:
        dropped, problems = identity.dropped(), identity.problems()
        identity.close()
    return {
        "from": backend.where,
        "sources": counts,
        "dead_letter_reasons": reasons,
        "dropped_keys": [
            {"account": a, "object_type": o, "key": k, "reason": r, "count": n} for a, o, k, r, n in dropped
        ],
        "problems": [{"account": a, "kind": k, "message": m, "since": t} for a, k, m, t in problems],
    }


def _print_status(report: dict[str, Any]) -> None:
    columns = ["queued", "in_flight", "retrying", "delivered", "skipped", "waiting", "dead"]
    counts = report["sources"]
    rows = []
    for src in sorted(counts) or ["(none)"]:
        c = counts.get(src, {})
        age = c.get("oldest_queued_age_s")
        rows.append((src, [f"{c.get(col, 0):,}" for col in columns], "-" if age is None else f"{age:.0f} s"))
    table = Table(
        title=f"hubspot-relay ({report['from']})", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    table.add_column("source", no_wrap=True)
    for col in [*columns, "oldest queued"]:
        table.add_column(col.replace("_", " "), justify="right", no_wrap=True)
    for src, values, age in rows:
        table.add_row(escape(src), *values, age)
    probe = Console(width=10_000, file=io.StringIO(), color_system=None)
    with probe.capture() as captured:
        probe.print(table)
    if max(len(line.rstrip()) for line in captured.get().splitlines()) <= out.width:
        out.print(table)
    else:  # a narrow terminal: one line per source rather than cut numbers and names
        out.print(f"[bold]hubspot-relay[/] ({escape(report['from'])})", highlight=False)
        for src, values, age in rows:
            pairs = ", ".join(f"{col.replace('_', ' ')} {v}" for col, v in zip(columns, values, strict=True))
            out.print(f"{escape(src)}: {pairs}, oldest queued {age}", highlight=False, soft_wrap=True)
    out.print(
        "[dim]skipped: nothing for HubSpot (sent by HubSpot's script in the browser, a source with "
        "HubSpot off, a call legacy mode does not make); waiting: traits kept until an identify or "
        "alias gives the user's email[/]",
        highlight=False,
    )
    problems = list(report.get("problems", []))
    for name, acc in (report.get("accounts") or {}).items():
        budget = acc.get("budget") or {}
        state = "[bold yellow]paused[/]" if acc.get("paused") else "delivering"
        used = budget.get("calls_today")
        line = f"account {escape(name)} (hub {acc['hub_id']}): {state}"
        if used is not None:
            line += f", {used:,} of {budget['per_day']:,} calls today"
        out.print(line, highlight=False)
        problems += [{"account": name, **p} for p in acc.get("problems", [])]
    for reason in report.get("degraded", []):
        out.print(f"[bold red]degraded[/] {escape(reason)}", highlight=False)
    for p in problems:
        out.print(
            f"[bold red]problem[/] {escape(p['account'])} {p['kind']}: {escape(p['message'])}",
            highlight=False,
        )
    reasons = report.get("dead_letter_reasons") or {}
    if reasons:
        dead = Table(title="dead letters by reason (hubspot-relay replay re-queues them)")
        dead.add_column("count", justify="right")
        dead.add_column("reason")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:20]:
            dead.add_row(str(n), escape(reason[:300]))
        out.print(dead)
    dropped = report.get("dropped_keys") or []
    if dropped:
        keys = Table(title="keys not sent to HubSpot")
        for col in ("account", "object", "key", "reason", "count"):
            keys.add_column(col, justify="right" if col == "count" else "left")
        for d in dropped[:30]:
            keys.add_row(
                escape(d["account"]), d["object_type"], escape(d["key"]), escape(d["reason"]), str(d["count"])
            )
        out.print(keys)


@app.command()
def replay(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    source: Annotated[str | None, typer.Option(help="Only this source's dead letters.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only those whose reason contains this text.")] = None,
    message_id: Annotated[
        list[str] | None, typer.Option("--message-id", help="Only these (repeatable).")
    ] = None,
    queue: QueueOpt = None,
) -> None:
    """Re-queue dead-lettered messages: all, or by source, reason or message id."""
    from .backends import backend_for
    from .queue.protocol import ReplayFilter

    cfg = _load_config(config, data_dir, queue)
    backend = backend_for(cfg)
    if not backend.exists():
        err.print(f"no queue at {backend.where}", highlight=False)
        raise typer.Exit(1)

    async def run() -> int:
        q = backend.queue
        await q.open(appends=False)
        try:
            return await q.replay(
                ReplayFilter(source=source, reason_contains=reason, message_ids=tuple(message_id or ()))
            )
        finally:
            await q.close()

    n = asyncio.run(run())
    out.print(f"re-queued {n} dead-lettered message{'s' if n != 1 else ''}", highlight=False)


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="Segment messages, one JSON object a line (.jsonl or .jsonl.gz).")
    ],
    config: ConfigOpt = None,
    source: Annotated[
        str | None, typer.Option(help="The source the messages belong to (default: the first configured).")
    ] = None,
    url: UrlOpt = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start from the first line, not where the last run stopped.")
    ] = False,
) -> None:
    """Backfill a file of Segment messages (an archive or S3 export) through a running relay.

    Each message goes through the relay's ingest like any client's (validation, dedupe,
    back-pressure). Interrupted, the same command resumes where it stopped; nothing is stored
    twice. Archived messages keep their `timestamp` (Segment's, already corrected)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from .importer import ImportFailed, run, state_path

    cfg = _load_config(config)
    if not file.is_file():
        err.print(f"[bold red]no file at {escape(str(file))}[/]", highlight=False)
        raise typer.Exit(2)
    chosen = (
        next((s for s in cfg.sources if s.name == source), None) if source else (cfg.sources or [None])[0]
    )
    if chosen is None:
        names = ", ".join(s.name for s in cfg.sources) or "none"
        err.print(
            f"[bold red]no source named {escape(str(source))}[/] (configured: {escape(names)})",
            highlight=False,
        )
        raise typer.Exit(2)
    base = _relay_url(cfg, url)
    try:
        httpx.get(f"{base}/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        err.print(
            f"[bold red]no relay answers at {base}[/]: start one (`hubspot-relay serve`, or with "
            "`--no-deliver` to queue only), or pass --url",
            highlight=False,
        )
        raise typer.Exit(1) from None
    progress = Progress(
        TextColumn("[bold]importing[/] {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[accepted]:,} accepted, {task.fields[refused]:,} refused"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    size = file.stat().st_size
    with progress:
        task = progress.add_task("import", total=size, name=file.name, accepted=0, refused=0)

        def show(state: Any, position: int) -> None:
            progress.update(
                task, completed=position, accepted=state.accepted, refused=sum(state.refused.values())
            )

        try:
            key = chosen.write_key.reveal() or "hubspot-relay-import"  # (open ingest takes any)
            state = run(file, base, key, restart=restart, on_progress=show)
        except ImportFailed as e:
            progress.stop()
            err.print(f"[bold red]import stopped:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            progress.stop()
            err.print(
                f"interrupted: run the same command again to resume (state in {state_path(file)})",
                highlight=False,
            )
            raise typer.Exit(130) from None
    refused = sum(state.refused.values())
    resumed = f" (resumed after line {state.resumed_from:,})" if state.resumed_from else ""
    out.print(
        f"imported {file.name} into source {chosen.name!r}{resumed}: {state.lines_done:,} lines, "
        f"{state.accepted:,} accepted, {refused:,} refused",
        highlight=False,
        soft_wrap=True,
    )
    if refused:
        table = Table(title="refused, by reason")
        table.add_column("count", justify="right")
        table.add_column("reason")
        table.add_column("first line", justify="right")
        for reason, n in state.refused.most_common(20):
            table.add_row(f"{n:,}", escape(reason[:200]), str(state.examples.get(reason, "")))
        out.print(table)


@app.command()
def preview(
    message: Annotated[
        Path,
        typer.Argument(metavar="MESSAGE.json", help="A Segment message as a client sends it ('-': stdin)."),
    ],
    config: ConfigOpt = None,
    source: Annotated[
        str | None, typer.Option(help="The source it comes from (default: the first configured).")
    ] = None,
    url: UrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Show the HubSpot requests a message would become, without sending anything.

    The same dry run as the console's event tester: validation, translation, the identity map
    and planning as delivery does them. A running relay is asked (its catalog, definitions and
    identity map); with none, the configuration is used here and the catalog read from HubSpot."""
    from .preview import PreviewError
    from .preview import preview as dry_run

    configure_logs("console", "warning")  # stdout is the preview's; what delivery logs is not
    cfg = _load_config(config)
    try:
        raw = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    except OSError as e:
        err.print(f"[bold red]cannot read {escape(str(message))}:[/] {e.strerror}", highlight=False)
        raise typer.Exit(2) from None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        err.print(f"[bold red]{escape(str(message))} is not JSON:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    chosen = source or (cfg.sources[0].name if cfg.sources else "")
    base = _relay_url(cfg, url)
    headers = {"Authorization": f"Bearer {cfg.admin_token.reveal()}"} if cfg.admin_token else {}
    result: dict[str, Any] | None = None
    try:
        r = httpx.post(
            f"{base}/admin/api/preview",
            json={"source": chosen, "message": parsed},
            headers=headers,
            timeout=30,
        )
        if r.status_code == 400:
            err.print(f"[bold red]refused:[/] {escape(r.json().get('message', r.text))}", highlight=False)
            raise typer.Exit(1)
        if r.status_code == 200:
            result = r.json()
    except httpx.HTTPError:
        if url:
            err.print(f"[bold red]no relay answers at {base}[/]", highlight=False)
            raise typer.Exit(1) from None
    if result is None:  # no relay here: the same dry run in this process
        from .backends import backend_for
        from .hubspot.errors import HubSpotError

        identity = backend_for(cfg).identity(if_exists=True)
        try:
            result = asyncio.run(dry_run(cfg, chosen, orjson.dumps(parsed), identity=identity)).as_dict()
        except PreviewError as e:
            err.print(f"[bold red]refused:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except HubSpotError as e:
            err.print(
                f"[bold red]reading the portal from HubSpot failed:[/] {escape(e.describe())}",
                highlight=False,
            )
            raise typer.Exit(1) from None
        finally:
            if identity is not None:
                identity.close()
    if result.get("read_errors"):
        first = result["read_errors"][0]
        err.print(
            f"[bold red]reading the portal from HubSpot failed[/] ({escape(first)}): the requests cannot be "
            "shown; is HubSpot (or the sandbox) reachable?",
            highlight=False,
        )
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    msg = result.get("message", {})
    what = f"{msg.get('type')}" + (f" {msg['event']!r}" if msg.get("event") else "")
    reason = f": {result['reason']}" if result.get("reason") else ""
    out.print(f"{escape(what)} would be {result['outcome']}{escape(reason)}", highlight=False)
    for q in result["requests"]:
        out.print(f"\n[bold]{q['method']}[/] {escape(q['url'])}", highlight=False)
        if q.get("params"):
            out.print_json(data=q["params"])
        if q.get("body") is not None:
            out.print_json(data=q["body"])
    if not result["requests"]:
        out.print("no request to HubSpot", highlight=False)
    if result.get("reads"):
        out.print(
            f"\n[dim]read from HubSpot to build them: {escape(', '.join(result['reads']))}[/]",
            highlight=False,
        )


class MessageType(StrEnum):
    identify = "identify"
    track = "track"
    page = "page"
    screen = "screen"
    group = "group"
    alias = "alias"


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    """`key=value` options; values that parse as JSON (numbers, true, lists) keep their type."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} must look like key=value, got {item!r}")
        try:
            result[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            result[key] = value
    return result


def build_message(
    mtype: MessageType,
    *,
    user_id: str | None,
    anonymous_id: str | None,
    email: str | None,
    event: str | None,
    name: str | None,
    group_id: str | None,
    previous_id: str | None,
    traits: dict[str, Any],
    properties: dict[str, Any],
) -> dict[str, Any]:
    """The Segment message `send` posts; the email goes where the HubSpot mapping looks for it."""
    msg: dict[str, Any] = {
        "type": mtype.value,
        "messageId": f"cli-{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"library": {"name": "hubspot-relay-cli", "version": __version__}},
    }
    uid = user_id or email
    if uid:
        msg["userId"] = uid
    if anonymous_id or not uid:
        msg["anonymousId"] = anonymous_id or f"cli-{uuid.uuid4()}"
    if mtype in (MessageType.identify, MessageType.group):
        if email:
            traits.setdefault("email", email)
        msg["traits"] = traits
    elif traits:
        msg["context"]["traits"] = traits
    if mtype is MessageType.track:
        if not event:
            raise typer.BadParameter("track needs --event")
        msg["event"] = event
        if email:
            properties.setdefault("email", email)
    if mtype in (MessageType.page, MessageType.screen):
        if name:
            msg["name"] = name
        if email:
            msg["context"].setdefault("traits", {}).setdefault("email", email)
    if mtype is MessageType.group:
        if not group_id:
            raise typer.BadParameter("group needs --group-id")
        msg["groupId"] = group_id
    if mtype is MessageType.alias:
        if not (previous_id and uid):
            raise typer.BadParameter("alias needs --previous-id and --user-id")
        msg["previousId"] = previous_id
        msg.pop("anonymousId", None)
    if mtype in (MessageType.track, MessageType.page, MessageType.screen):
        msg["properties"] = properties
    return msg


@app.command()
def send(
    mtype: Annotated[
        MessageType, typer.Argument(metavar="TYPE", help="identify, track, page, screen, group, alias")
    ],
    email: Annotated[str | None, typer.Option(help="The contact's email.")] = None,
    user_id: Annotated[str | None, typer.Option(help="userId (default: the email).")] = None,
    anonymous_id: Annotated[str | None, typer.Option(help="anonymousId.")] = None,
    event: Annotated[str | None, typer.Option(help="Event name, for track.")] = None,
    name: Annotated[str | None, typer.Option(help="Page or screen name.")] = None,
    group_id: Annotated[str | None, typer.Option(help="groupId, for group.")] = None,
    previous_id: Annotated[str | None, typer.Option(help="previousId, for alias.")] = None,
    trait: Annotated[list[str] | None, typer.Option("--trait", "-t", help="key=value (repeatable).")] = None,
    prop: Annotated[
        list[str] | None, typer.Option("--property", "-p", help="key=value (repeatable).")
    ] = None,
    url: Annotated[str, typer.Option(envvar="HUBSPOT_RELAY_URL", help="The relay's base URL.")] = "",
    write_key: Annotated[
        str | None, typer.Option(envvar="HUBSPOT_RELAY_WRITE_KEY", help="Write key.")
    ] = None,
) -> None:
    """Send one test message to a running relay, as a Segment client would."""
    url = url or f"http://127.0.0.1:{os.environ.get('HUBSPOT_RELAY_PORT', '8088')}"
    msg = build_message(
        mtype,
        user_id=user_id,
        anonymous_id=anonymous_id,
        email=email,
        event=event,
        name=name,
        group_id=group_id,
        previous_id=previous_id,
        traits=_pairs(trait or [], "--trait"),
        properties=_pairs(prop or [], "--property"),
    )
    try:
        resp = httpx.post(
            f"{url.rstrip('/')}/v1/{mtype.value}",
            content=orjson.dumps(msg),
            headers={"Content-Type": "application/json"},
            auth=(write_key or "dev", ""),
            timeout=10,
        )
    except httpx.HTTPError as e:
        err.print(f"[red]could not reach the relay at {url}:[/] {e}", highlight=False)
        raise typer.Exit(1) from None
    if resp.status_code != 200:
        err.print(f"[red]{resp.status_code}[/] {resp.text}", highlight=False)
        raise typer.Exit(1)
    out.print(f"sent {mtype.value} {msg['messageId']}: {resp.text}", highlight=False)


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
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the local HubSpot sandbox alone: HubSpot's API, limits and errors, offline."""
    import uvicorn

    from .sandbox import PortalSettings, create_sandbox_app, load_portals
    from .sandbox.limits import Budget

    configure_logs("console", log_level)
    try:
        if portals_file:
            portals = load_portals(portals_file)
        else:
            validate_hub_id(hub_id, "--hub-id")
            if tier not in ("enterprise", "professional", "starter", "free"):
                raise ConfigError("--tier: enterprise, professional, starter or free")
            portals = [
                PortalSettings(
                    hub_id=hub_id,
                    access_tokens=tuple(token or [SANDBOX_TOKEN]),
                    api_key=api_key,
                    tier=tier,
                    budget=Budget(per_10s=limit_10s, per_day=limit_daily, per_second=limit_1s),
                )
            ]
    except ConfigError as e:
        err.print(f"[bold red]configuration error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    base = f"http://{host}:{port}"
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
    err.print(
        f"  inspect: GET {base}/_sandbox/calls, POST {base}/_sandbox/reset, POST {base}/_sandbox/faults",
        highlight=False,
    )
    err.print(f"  state: {state or 'in memory'}", highlight=False)
    uvicorn.run(
        create_sandbox_app(portals, state_path=state),
        host=host,
        port=port,
        access_log=False,
        log_level=log_level.lower(),
        server_header=False,
    )


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)
