"""`hubspot-relay import`: backfill a Segment archive through a running relay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from ..config import Config, Source
from .common import ConfigOpt, UrlOpt, app, err, load_config, out, relay_url


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
    cfg = load_config(config)
    if not file.is_file():
        err.print(f"[bold red]no file at {escape(str(file))}[/]", highlight=False)
        raise typer.Exit(2)
    chosen = _source(cfg, source)
    base = relay_url(cfg, url)
    _require_relay(base)
    state = _run_with_progress(file, base, chosen.write_key.reveal(), restart)
    _print_summary(file, chosen.name, state)


def _source(cfg: Config, name: str | None) -> Source:
    """The source named, else the first configured."""
    chosen = next((s for s in cfg.sources if s.name == name), None) if name else (cfg.sources or [None])[0]
    if chosen is None:
        names = ", ".join(s.name for s in cfg.sources) or "none"
        err.print(
            f"[bold red]no source named {escape(str(name))}[/] (configured: {escape(names)})",
            highlight=False,
        )
        raise typer.Exit(2)
    return chosen


def _require_relay(base: str) -> None:
    try:
        httpx.get(f"{base}/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        err.print(
            f"[bold red]no relay answers at {base}[/]: start one (`hubspot-relay serve`, or with "
            "`--no-deliver` to queue only), or pass --url",
            highlight=False,
        )
        raise typer.Exit(1) from None


def _run_with_progress(file: Path, base: str, write_key: str, restart: bool) -> Any:
    """The import itself (`importer.run`), with a progress bar on stderr."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from ..importer import ImportFailed, run, state_path

    progress = Progress(
        TextColumn("[bold]importing[/] {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[accepted]:,} accepted, {task.fields[refused]:,} refused"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        task = progress.add_task("import", total=file.stat().st_size, name=file.name, accepted=0, refused=0)

        def show(state: Any, position: int) -> None:
            progress.update(
                task, completed=position, accepted=state.accepted, refused=sum(state.refused.values())
            )

        try:
            key = write_key or "hubspot-relay-import"  # (open ingest takes any)
            return run(file, base, key, restart=restart, on_progress=show)
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


def _print_summary(file: Path, source: str, state: Any) -> None:
    refused = sum(state.refused.values())
    resumed = f" (resumed after line {state.resumed_from:,})" if state.resumed_from else ""
    out.print(
        f"imported {file.name} into source {source!r}{resumed}: {state.lines_done:,} lines, "
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
