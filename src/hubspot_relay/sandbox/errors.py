"""HubSpot's error bodies: `status`, `message`, `correlationId`, `category`, `errors`, ...

Every refusal in the sandbox is an `ApiError` carrying the status and body HubSpot sends, so
clients (ours, and HubSpot's own SDK) see what they would see in production.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def correlation_id() -> str:
    return str(uuid.uuid4())


def error(status: int, category: str, message: str, **extra: Any) -> ApiError:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    body.update(extra)
    return ApiError(status, body)


def validation_failed(failures: list[dict[str, Any]]) -> ApiError:
    """HubSpot's 400 for invalid property values: the results are embedded in the message."""
    embedded = orjson.dumps(failures).decode()
    return error(
        400,
        "VALIDATION_ERROR",
        f"Property values were not valid: {embedded}",
        errors=[
            {"message": f["message"], "code": f["error"], "context": {"propertyName": [f["name"]]}}
            for f in failures
        ],
    )


def invalid_input(message: str, **context: list[str]) -> ApiError:
    return error(
        400,
        "VALIDATION_ERROR",
        message,
        errors=[{"message": message, "code": "400", "in": "body", "context": context}] if context else [],
    )


def not_found(message: str = "resource not found") -> ApiError:
    return error(404, "OBJECT_NOT_FOUND", message)


def missing_auth() -> ApiError:
    return error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )


def invalid_token() -> ApiError:
    return error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found or the access token is invalid, expired or revoked.",
    )


def invalid_api_key() -> ApiError:
    return error(
        401,
        "INVALID_AUTHENTICATION",
        "The API key provided is invalid. View or manage your API key here: "
        "https://app.hubspot.com/l/api-key/",
    )


def missing_scopes(*scopes: str) -> ApiError:
    return error(
        403,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
        "here: https://developers.hubspot.com/scopes.",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(scopes)},
            }
        ],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )


def rate_limited(policy: str) -> ApiError:
    """HubSpot's 429: `policyName` says which limit (TEN_SECONDLY_ROLLING, SECONDLY, DAILY)."""
    message = {
        "DAILY": "You have reached your daily limit.",
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        "SECONDLY": "You have reached your secondly limit.",
    }[policy]
    return ApiError(
        429,
        {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        },
    )


def server_error(status: int = 502) -> ApiError:
    messages = {500: "internal error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return error(
        status,
        "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
        messages.get(status, "internal error"),
    )
