"""HubSpot's answers, sorted by what the relay should do about them."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson


class Kind(Enum):
    RATE_LIMIT = "rate_limit"  # 429: wait as its policyName says, then the same call again
    RETRYABLE = "retryable"  # 5xx, timeouts, connection errors: back off and retry
    VALIDATION = "validation"  # 400: something in the input; split the batch to find it
    CONFLICT = "conflict"  # 409
    NOT_FOUND = "not_found"  # 404
    PERMANENT = "permanent"  # 401, 403: no retry helps until someone changes the account
    # The portal serves none of the paths HubSpot publishes for an endpoint (or stopped serving
    # the one it did): the account's setting to fix (`api_version`); the messages wait for it.
    UNSERVED = "unserved"
    # The account's credentials refused where a fix will do (an OAuth app's refresh refused):
    # the account's problem; the messages wait for the fix.
    CREDENTIALS = "credentials"
    # Something in the portal only its admins can change (a list that is not MANUAL): the
    # account's problem; the messages wait for the fix.
    SETUP = "setup"


class HubSpotError(Exception):
    """A refused call, with HubSpot's body; the message never contains credentials."""

    def __init__(self, status: int, body: Any, *, kind: Kind, retry_after: float | None = None) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {"message": str(body)[:500]}
        self.kind = kind
        self.retry_after = retry_after
        super().__init__(self.describe())

    @property
    def category(self) -> str:
        return str(self.body.get("category") or self.body.get("errorType") or "")

    @property
    def policy(self) -> str:
        return str(self.body.get("policyName") or "")

    @property
    def message(self) -> str:
        return str(self.body.get("message") or "")

    def describe(self) -> str:
        head = f"HubSpot {self.status}"
        if self.category:
            head += f" {self.category}"
        return f"{head}: {self.message[:400]}" if self.message else head

    @classmethod
    def from_response(cls, status: int, content: bytes, headers: Any) -> HubSpotError:
        try:
            body = orjson.loads(content) if content else {}
        except orjson.JSONDecodeError:
            body = {"message": content[:300].decode(errors="replace")}
        retry_after = None
        raw = headers.get("retry-after") if headers is not None else None
        if raw and str(raw).replace(".", "", 1).isdigit():
            retry_after = float(raw)
        if status == 429:
            kind = Kind.RATE_LIMIT
        elif status >= 500:
            kind = Kind.RETRYABLE
        elif status in (401, 403):
            kind = Kind.PERMANENT
        elif status == 409:
            kind = Kind.CONFLICT
        elif status == 404:
            kind = Kind.NOT_FOUND
        else:
            kind = Kind.VALIDATION
        return cls(status, body, kind=kind, retry_after=retry_after)

    def missing_properties(self) -> list[str]:
        """Property names HubSpot says do not exist (`PROPERTY_DOESNT_EXIST` in the message)."""
        names: list[str] = []
        text = self.message
        start = text.find("[")
        if "PROPERTY_DOESNT_EXIST" in text and start >= 0:
            try:
                for item in orjson.loads(text[start:]):
                    if item.get("error") == "PROPERTY_DOESNT_EXIST":
                        names.append(str(item.get("name")))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                pass
        return names


def transport_error(exc: Exception) -> HubSpotError:
    return HubSpotError(0, {"message": f"{type(exc).__name__}: could not reach HubSpot"}, kind=Kind.RETRYABLE)


# The relay's own refusals, by what they are (the kind is the classifier's to name).


def still_limited() -> HubSpotError:
    """Rate limited after every wait: retried later like a 5xx."""
    return HubSpotError(429, {"message": "still rate limited after many waits"}, kind=Kind.RETRYABLE)


def bad_answer(status: int, message: str) -> HubSpotError:
    """HubSpot answered, but not with what it publishes (a token endpoint with no token)."""
    return HubSpotError(status, {"message": message}, kind=Kind.RETRYABLE)


def not_in_portal(message: str) -> HubSpotError:
    """Something the account's configuration names that its portal does not have (an object
    type, an association label): permanent until someone changes one or the other."""
    return HubSpotError(400, {"message": message}, kind=Kind.PERMANENT)


def unserved(message: str) -> HubSpotError:
    """The portal serves none of the paths HubSpot publishes for a call (or stopped serving one)."""
    return HubSpotError(404, {"message": message}, kind=Kind.UNSERVED)


def credentials_refused(status: int, body: dict[str, Any]) -> HubSpotError:
    """The account's credentials refused where a fix will do (an OAuth refresh refused)."""
    return HubSpotError(status, body, kind=Kind.CREDENTIALS)


def setup_needed(category: str, message: str) -> HubSpotError:
    """A portal setting only its admins can change (a list that takes no members)."""
    return HubSpotError(400, {"category": category, "message": message}, kind=Kind.SETUP)
