from __future__ import annotations

import logging

import pytest
import structlog

from hubspot_relay.logs import configure

KEY = "dfdbfe6f-e7bf-4938-8e82-7d1938e48ab8"


def test_credentials_are_masked_in_every_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console", "DEBUG")
    try:
        logging.getLogger("uvicorn.error").warning(
            "GET /properties/v1/contacts/properties?hapikey=%s failed", KEY
        )
        logging.getLogger("httpx").warning("HTTP Request: GET http://x/v1/event?_a=1&hapikey=%s", KEY)
        structlog.get_logger("t").warning(
            "call failed",
            url=f"http://x/?hapikey={KEY}",
            access_token="pat-1",
            headers={"Authorization": "Bearer pat-1"},
        )
        err = capsys.readouterr().err
        assert KEY not in err and "pat-1" not in err
        assert err.count("hapikey=********") == 3
        assert logging.getLogger("httpx").level >= logging.WARNING  # no line per request
    finally:
        structlog.reset_defaults()
        logging.basicConfig(force=True)
