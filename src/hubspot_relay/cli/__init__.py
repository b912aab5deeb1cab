"""The `hubspot-relay` command: a module per command group, each adding its commands to `app`."""

from typer.models import CommandInfo

from . import forget, importing, preview, sandbox, send, serve, status
from .common import app

# As `--help` lists them: the everyday commands first.
ORDER = ("serve", "status", "replay", "forget", "import", "preview", "send", "sandbox", "version")


def _place(command: CommandInfo) -> int:
    name = command.name or getattr(command.callback, "__name__", "")
    return ORDER.index(name) if name in ORDER else len(ORDER)


app.registered_commands.sort(key=_place)

__all__ = ["app", "forget", "importing", "preview", "sandbox", "send", "serve", "status"]
