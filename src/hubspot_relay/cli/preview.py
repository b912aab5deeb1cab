"""`hubspot-relay preview`: the HubSpot requests a message would become."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.markup import escape

from ..config import Config
from ..logs import configure as configure_logs
from .common import ConfigOpt, UrlOpt, app, err, load_config, out, relay_url


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
    configure_logs("console", "warning")  # stdout is the preview's; what delivery logs is not
    cfg = load_config(config)
    parsed = _read_message(message)
    chosen = source or (cfg.sources[0].name if cfg.sources else "")
    result = _from_relay(cfg, url, chosen, parsed)
    if result is None:  # no relay here: the same dry run in this process
        result = _here(cfg, chosen, parsed)
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
    _print_result(result)


def _read_message(message: Path) -> Any:
    try:
        raw = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    except OSError as e:
        err.print(f"[bold red]cannot read {escape(str(message))}:[/] {e.strerror}", highlight=False)
        raise typer.Exit(2) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        err.print(f"[bold red]{escape(str(message))} is not JSON:[/] {e}", highlight=False)
        raise typer.Exit(2) from None


def _from_relay(cfg: Config, url: str | None, source: str, message: Any) -> dict[str, Any] | None:
    """The running relay's dry run (its catalog, definitions, identity map), None with no relay."""
    base = relay_url(cfg, url)
    headers = {"Authorization": f"Bearer {cfg.admin_token.reveal()}"} if cfg.admin_token else {}
    try:
        r = httpx.post(
            f"{base}/admin/api/preview",
            json={"source": source, "message": message},
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError:
        if url:
            err.print(f"[bold red]no relay answers at {base}[/]", highlight=False)
            raise typer.Exit(1) from None
        return None
    if r.status_code == 400:
        err.print(f"[bold red]refused:[/] {escape(r.json().get('message', r.text))}", highlight=False)
        raise typer.Exit(1)
    return dict(r.json()) if r.status_code == 200 else None


def _here(cfg: Config, source: str, message: Any) -> dict[str, Any]:
    """The dry run in this process: the configuration, the identity map on disk, HubSpot's catalog."""
    from ..backends import backend_for
    from ..hubspot.errors import HubSpotError
    from ..preview import PreviewError
    from ..preview import preview as dry_run

    identity = backend_for(cfg).identity(if_exists=True)
    try:
        return dict(asyncio.run(dry_run(cfg, source, orjson.dumps(message), identity=identity)).as_dict())
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


def _print_result(result: dict[str, Any]) -> None:
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
