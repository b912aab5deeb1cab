"""Structured logs (structlog), with every credential masked before it is written."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

from .secrets import scrub_fields, scrub_text


def _scrub_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    return scrub_fields(event)


class ScrubFilter(logging.Filter):
    """Masks credentials in stdlib log records (uvicorn's, httpx's: a URL can carry `hapikey`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(fmt: Literal["console", "json"] = "console", level: str = "INFO") -> None:
    """Route structlog and the stdlib (uvicorn) through one renderer on stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _scrub_event,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())
    # One line per HubSpot call is noise at info level (and the URL may carry a legacy API key).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
