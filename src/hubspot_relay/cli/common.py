"""What every command shares: the Typer app, the consoles, the options that several commands
take, and reading the configuration with errors worded for a terminal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .. import __version__
from ..config import (
    Config,
    load,
    validate_queue_url,
)
from ..errors import ConfigError

app = typer.Typer(
    name="hubspot-relay",
    help="A self-hosted, Segment-compatible HubSpot destination.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # an unexpected error is one line (cli.main); --debug for the rest
)
_debug = {"on": False}

# Where a packaged install (the image, the systemd unit) keeps its TOML file: read when it exists
# and no other file is named, as a service reads its file under /etc.
SYSTEM_CONFIG_FILE = Path("/etc/hubspot-relay/relay.toml")


def system_config_file() -> Path | None:
    """The system's TOML file, when there is one (none on a developer's machine)."""
    return SYSTEM_CONFIG_FILE if SYSTEM_CONFIG_FILE.is_file() else None


def debugging() -> bool:
    """Whether `--debug` was given: an unexpected error then shows its traceback."""
    return _debug["on"]


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
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the whole traceback of an unexpected error.")
    ] = False,
) -> None:
    """A self-hosted, Segment-compatible HubSpot destination."""
    _debug["on"] = debug


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HUBSPOT_RELAY_CONFIG",
        help="TOML file with sources and HubSpot accounts (default: /etc/hubspot-relay/relay.toml "
        "when it exists, else environment variables).",
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


def load_config(config: Path | None, data_dir: Path | None = None, queue: str | None = None) -> Config:
    try:
        cfg = load(config or system_config_file())
        if queue:
            cfg = replace(cfg, queue_url=validate_queue_url(queue, "--queue"))
    except ConfigError as e:
        err.print(f"[bold red]configuration error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    if data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    return cfg


def relay_url(cfg: Config, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    return f"http://{host}:{cfg.port}"


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@app.command()
def health(
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Exit 0 when the running relay is ready to take messages, 1 when it is not or does not answer.

    For a container's HEALTHCHECK or a load balancer's probe script: it asks `/health`."""
    import httpx

    base = relay_url(load_config(config), url)
    try:
        r = httpx.get(f"{base}/health", timeout=5)
    except httpx.HTTPError as e:
        err.print(f"not ready: no answer from {base}: {type(e).__name__}", highlight=False)
        raise typer.Exit(1) from None
    if r.status_code != 200:
        err.print(f"not ready: {base}/health answered {r.status_code}: {r.text[:300]}", highlight=False)
        raise typer.Exit(1)
    out.print("ready", highlight=False)
