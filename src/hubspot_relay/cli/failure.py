"""An unexpected error in a command: one line that names what failed and where the details are,
never a screen of traceback (`--debug` shows it). The details go to a private file, scrubbed of
credentials like every log line."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from ..secrets import scrub_text


def report_file(error: BaseException, command: str, folder: Path | None = None) -> Path:
    """The traceback, written where only this user can read it; its path."""
    folder = folder or Path(tempfile.gettempdir())
    path = folder / f"hubspot-relay-error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt"
    text = "".join(traceback.format_exception(error))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"hubspot-relay {command}\n\n{scrub_text(text)}")
    return path


def one_line(error: BaseException, command: str, details: Path | None) -> str:
    """What the user reads: the command, the error in words, where to look next."""
    where = _where(error)
    said = scrub_text(str(error)).strip().splitlines()[0][:300] if str(error).strip() else ""
    head = f"hubspot-relay {command} failed: {type(error).__name__}"
    head += f": {said}" if said else ""
    head += f" (in {where})" if where else ""
    tail = f"the details are in {details}" if details else "the details could not be written"
    return f"{head}; {tail} (run it again with --debug to see them here)"


def _where(error: BaseException) -> str:
    """The innermost frame of ours (file:line), else the innermost at all."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "hubspot_relay" in f.filename]
    if not (ours or frames):
        return ""
    frame = (ours or frames)[-1]
    name = frame.filename.rpartition("hubspot_relay/")[2]
    return f"{name}:{frame.lineno}"
