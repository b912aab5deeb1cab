"""The `hubspot-relay` command: a module per command group, each adding its commands to `app`."""

from . import forget, importing, preview, sandbox, send, serve, status
from .common import app

# As `--help` lists them: the everyday commands first.
ORDER = ("serve", "status", "replay", "forget", "import", "preview", "send", "sandbox", "version")
app.registered_commands.sort(key=lambda c: ORDER.index(c.name or c.callback.__name__))  # type: ignore[union-attr]

__all__ = ["app", "forget", "importing", "preview", "sandbox", "send", "serve", "status"]
