"""Every error type the relay raises across modules, in one leaf module (it imports nothing of the
package), so that no two modules import each other for an exception.

    Exception
    ├── ConfigError (ValueError)      a configuration the person running the relay must fix
    ├── MappingError (ValueError)     a mapping that cannot be used as written
    ├── DailyLimitReached             HubSpot's daily budget is spent: wait for the reset
    └── StoreUnavailable (RuntimeError)
        ├── QueueUnavailable          Redis cannot be reached (or refuses writes)
        └── QueueWriteError           an append was not stored (SQLite's writer)

HubSpot's own refusals are `hubspot.errors.HubSpotError`, sorted by `Kind`.
"""

from __future__ import annotations

import sqlite3

import redis.exceptions


class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix it."""


class MappingError(ValueError):
    """A mapping that cannot be used as written; the text names the key."""


class DailyLimitReached(Exception):
    def __init__(self, resets_at: float) -> None:
        super().__init__(
            f"HubSpot's daily API limit is reached; delivery resumes at the reset ({resets_at:.0f})"
        )
        self.resets_at = resets_at


class StoreUnavailable(RuntimeError):
    """The queue's store (SQLite's file, Redis) failed: the machine, never a message."""


class QueueUnavailable(StoreUnavailable):
    pass


class QueueWriteError(StoreUnavailable):
    """The messages of an append were not stored."""


# The store failing (SQLite's file, the disk, Redis): a machine failure, never a message's fault.
# Delivery retries the cycle with backoff and hands back what it could not settle; no message is
# halved down to or dead-lettered for it.
MACHINE_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    sqlite3.Error,
    redis.exceptions.RedisError,
    StoreUnavailable,
)
