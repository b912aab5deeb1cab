"""`hubspot-relay send`: a test message from the command line, as a Segment client sends it."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import httpx
import orjson
import typer

from .. import __version__
from .common import app, err, out


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
