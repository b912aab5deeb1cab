"""`hubspot-relay status` and `replay`: what is queued, delivered and dead, from a running relay
or its data folder; dead letters re-queued."""

from __future__ import annotations

import asyncio
import io
import sys
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..config import (
    Config,
)
from .common import ConfigOpt, DataDirOpt, QueueOpt, UrlOpt, app, err, load_config, out, relay_url


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
    cfg = load_config(config, data_dir, queue)
    report = _status_from_relay(cfg, url)
    if report is None:
        report = _status_from_files(cfg)
    if as_json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return
    _print_status(report)


def _status_from_relay(cfg: Config, url: str | None) -> dict[str, Any] | None:
    """The running relay's report, or None when no relay answers there."""
    base = relay_url(cfg, url)
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
    from ..backends import backend_for

    backend = backend_for(cfg)
    if not backend.exists():
        err.print(
            f"no relay answers at {relay_url(cfg, None)} and there is no queue at {backend.where}: "
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
    skipped: list[tuple[str, str, str, int]] = []
    identity = backend.identity(if_exists=True)
    if identity is not None:
        dropped, problems, skipped = identity.dropped(), identity.problems(), identity.skipped()
        identity.close()
    for _, source, reason, n in skipped:
        if source in counts:
            counts[source].setdefault("skipped_because", {})[reason] = n
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
        "[dim]waiting: traits kept until an identify or alias gives the user's email[/]", highlight=False
    )
    why = [
        (src, r, n) for src in sorted(counts) for r, n in (counts[src].get("skipped_because") or {}).items()
    ]
    if why:
        skipped = Table(title="skipped, and why")
        for col in ("source", "count", "reason"):
            skipped.add_column(col, justify="right" if col == "count" else "left")
        for src, reason, n in sorted(why, key=lambda t: -t[2])[:30]:
            skipped.add_row(escape(src), f"{n:,}", escape(reason))
        out.print(skipped)
    problems = list(report.get("problems", []))
    for name, acc in (report.get("accounts") or {}).items():
        out.print(_account_line(name, acc), highlight=False, soft_wrap=True)
        problems += [{"account": name, **p} for p in acc.get("problems", [])]
    store = report.get("store") or {}
    if store and not store.get("up", True):
        out.print(
            f"[bold red]store down[/] {escape(str(store.get('name')))} has not taken writes since "
            f"{store.get('since')} ({store.get('down_for_s')} s): {escape(str(store.get('error')))}; "
            "ingest answers 503 and delivery waits",
            highlight=False,
        )
    for reason in report.get("degraded", []):
        out.print(f"[bold red]degraded[/] {escape(reason)}", highlight=False)
    for p in problems:
        out.print(
            f"[bold red]problem[/] {escape(p['account'])} {p['kind']}: {escape(p['message'])}",
            highlight=False,
            soft_wrap=True,
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
    from ..backends import backend_for
    from ..queue.protocol import ReplayFilter

    cfg = load_config(config, data_dir, queue)
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


def _account_line(name: str, acc: dict[str, Any]) -> str:
    """One account: its portal, API version, how it authenticates, where its custom events go."""
    budget = acc.get("budget") or {}
    state = "[bold yellow]paused[/]" if acc.get("paused") else "delivering"
    about = [f"hub {acc['hub_id']}", f"API {acc.get('api_version') or 'legacy'}", acc.get("auth", "")]
    events_at = (acc.get("paths") or {}).get("custom_events")
    if events_at:
        about.append(f"custom events at {events_at}")
    elif acc.get("paths"):
        about.append("custom events: no published path answered yet")
    line = f"account {escape(name)} ({escape(', '.join(a for a in about if a))}): {state}"
    if budget.get("calls_today") is not None:
        line += f", {budget['calls_today']:,} of {budget['per_day']:,} calls today"
    return line
