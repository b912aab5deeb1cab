"""HubSpot's answers sorted by what to do (`Kind`), their words, and the missing properties a
400 names, as tables."""

from __future__ import annotations

import orjson
import pytest

from hubspot_relay.hubspot.errors import HubSpotError, Kind, transport_error


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, Kind.RATE_LIMIT),
        (500, Kind.RETRYABLE),
        (502, Kind.RETRYABLE),
        (504, Kind.RETRYABLE),
        (401, Kind.PERMANENT),
        (403, Kind.PERMANENT),
        (409, Kind.CONFLICT),
        (404, Kind.NOT_FOUND),
        (400, Kind.VALIDATION),
        (422, Kind.VALIDATION),
    ],
)
def test_status_to_kind(status: int, kind: Kind) -> None:
    assert HubSpotError.from_response(status, b"{}", {}).kind is kind


@pytest.mark.parametrize(
    ("body", "headers", "described", "policy", "retry_after"),
    [
        (
            {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
             "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
            {"retry-after": "2"},
            "HubSpot 429 RATE_LIMIT: You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
            2.0,
        ),
        ({"category": "VALIDATION_ERROR", "message": "bad"}, {},
         "HubSpot 429 VALIDATION_ERROR: bad", "", None),
        ({}, {"retry-after": "soon"}, "HubSpot 429", "", None),
    ],
)  # fmt: skip
def test_what_a_refusal_says(
    body: dict[str, str], headers: dict[str, str], described: str, policy: str, retry_after: float | None
) -> None:
    e = HubSpotError.from_response(429, orjson.dumps(body), headers)
    assert (e.describe(), e.policy, e.retry_after) == (described, policy, retry_after)


def test_a_body_that_is_not_json_is_kept_as_words() -> None:
    e = HubSpotError.from_response(502, b"<html>Bad gateway</html>", {})
    assert e.describe() == "HubSpot 502: <html>Bad gateway</html>"


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        (
            'Property values were not valid: [{"isValid":false,"message":"Property \\"x\\" does not exist",'
            '"error":"PROPERTY_DOESNT_EXIST","name":"x"},{"error":"INVALID_OPTION","name":"y"}]',
            ["x"],
        ),
        ("PROPERTY_DOESNT_EXIST but no list", []),
        ('Property values were not valid: [{"error":"PROPERTY_DOESNT_EXIST","name":"a"}', []),  # cut short
        ("something else [1, 2]", []),
    ],
)
def test_missing_properties(message: str, missing: list[str]) -> None:
    e = HubSpotError(400, {"message": message}, kind=Kind.VALIDATION)
    assert e.missing_properties() == missing


def test_a_transport_error_is_retried_and_says_nothing_of_the_url() -> None:
    e = transport_error(ConnectionError("https://api.hubapi.com/?hapikey=secret refused"))
    assert e.kind is Kind.RETRYABLE and e.status == 0
    assert "secret" not in e.describe() and "hapikey" not in e.describe()
