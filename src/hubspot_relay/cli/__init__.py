"""The `hubspot-relay` command: a module per command group, each adding its commands to `app`."""

import sys

from typer.models import CommandInfo

from . import forget, importing, preview, sandbox, send, serve, status
from .common import app, debugging, err
from .failure import one_line, report_file

# As `--help` lists them: the everyday commands first.
ORDER = (
    "serve", "status", "health", "replay", "forget", "import", "preview", "send", "sandbox", "version",
)


def _place(command: CommandInfo) -> int:
    name = command.name or getattr(command.callback, "__name__", "")
    return ORDER.index(name) if name in ORDER else len(ORDER)


app.registered_commands.sort(key=_place)


def main(args: list[str] | None = None) -> None:
    """The console script: Typer's app, with an unexpected error said in one line."""
    argv = sys.argv[1:] if args is None else args
    try:
        app(args=argv, prog_name="hubspot-relay")
    except Exception as e:
        if debugging():
            raise
        command = next((a for a in argv if not a.startswith("-")), "")
        try:
            details = report_file(e, command)
        except OSError:
            details = None
        err.print(one_line(e, command, details), style="bold red", highlight=False, markup=False)
        sys.exit(1)


__all__ = ["app", "forget", "importing", "main", "preview", "sandbox", "send", "serve", "status"]
