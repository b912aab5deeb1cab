"""The shared error types: which failures are the machine's (the store), never a message's."""

from __future__ import annotations

import sqlite3

import pytest
import redis.exceptions

from hubspot_relay.errors import (
    MACHINE_FAILURES,
    ConfigError,
    DailyLimitReached,
    MappingError,
    QueueUnavailable,
    QueueWriteError,
    StoreUnavailable,
)
from hubspot_relay.hubspot.errors import HubSpotError, Kind


@pytest.mark.parametrize(
    ("error", "machine"),
    [
        (OSError(5, "Input/output error"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (redis.exceptions.ConnectionError("Error 111 connecting"), True),
        (redis.exceptions.TimeoutError("Timeout reading"), True),
        (redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (QueueUnavailable("no Redis"), True),
        (QueueWriteError("writer died"), True),
        (ValueError("a value nobody foresaw"), False),
        (KeyError("x"), False),
        (HubSpotError(500, {}, kind=Kind.RETRYABLE), False),
        (DailyLimitReached(0.0), False),
        (MappingError("bad path"), False),
    ],
)
def test_machine_failures(error: BaseException, machine: bool) -> None:
    assert isinstance(error, MACHINE_FAILURES) is machine


def test_the_hierarchy() -> None:
    assert issubclass(QueueUnavailable, StoreUnavailable) and issubclass(QueueWriteError, StoreUnavailable)
    assert issubclass(ConfigError, ValueError) and issubclass(MappingError, ValueError)
    assert DailyLimitReached(86_400.0).resets_at == 86_400.0
