"""`hubspot-relay forget`: the right to be forgotten, asked of the running relay."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.markup import escape

from .common import ConfigOpt, DataDirOpt, QueueOpt, UrlOpt, app, err, load_config, out, relay_url

TYPES = ("SUPPRESS_WITH_DELETE", "DELETE_ONLY", "SUPPRESS_ONLY", "UNSUPPRESS")


@app.command()
def forget(
    email: Annotated[list[str] | None, typer.Option("--email", help="A person's email (repeatable).")] = None,
    user_id: Annotated[
        list[str] | None, typer.Option("--user-id", help="A person's userId (repeatable).")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--type", help="SUPPRESS_WITH_DELETE (default), DELETE_ONLY, SUPPRESS_ONLY or UNSUPPRESS."
        ),
    ] = "SUPPRESS_WITH_DELETE",
    wait: Annotated[bool, typer.Option(help="Wait until the relay has carried it out.")] = True,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    queue: QueueOpt = None,
    url: UrlOpt = None,
) -> None:
    """Forget people: suppress their new messages, delete what the relay holds of them (queued
    and dead-lettered messages, identity ties) and GDPR-delete their HubSpot contacts."""
    if not email and not user_id:
        err.print("[bold red]give --email or --user-id[/]")
        raise typer.Exit(2)
    if kind not in TYPES:
        err.print(f"[bold red]--type: one of {', '.join(TYPES)}[/]")
        raise typer.Exit(2)
    cfg = load_config(config, data_dir, queue)
    base = relay_url(cfg, url)
    headers = {"Authorization": f"Bearer {cfg.admin_token.reveal()}"} if cfg.admin_token else {}
    body = {"user_ids": user_id or [], "emails": email or [], "type": kind}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            r = http.post("/admin/api/forget", json=body)
            if r.status_code != 202:
                err.print(
                    f"[bold red]the relay at {base} refused:[/] {escape(r.text[:300])}", highlight=False
                )
                raise typer.Exit(2)
            ids = r.json()["regulateIds"]
            for reg_id in ids:
                status = "INITIALIZED"
                deadline = time.monotonic() + 120
                while wait and status in ("INITIALIZED", "RUNNING") and time.monotonic() < deadline:
                    time.sleep(0.5)
                    status = http.get(f"/regulations/{reg_id}").json()["data"]["regulation"]["overallStatus"]
                out.print(f"{reg_id} {kind}: {status if wait else 'submitted'}", highlight=False)
    except httpx.HTTPError as e:
        err.print(f"[bold red]no relay answers at {base}[/] ({type(e).__name__})", highlight=False)
        raise typer.Exit(1) from None
