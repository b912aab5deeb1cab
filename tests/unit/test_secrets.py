from __future__ import annotations

from typing import Any

import pytest

from hubspot_relay.secrets import Secret, scrub, scrub_fields, scrub_text


def test_secret_never_shows() -> None:
    s = Secret("pat-na1-abc")
    assert "pat-na1-abc" not in f"{s} {s!r} {[s]}"
    assert s.reveal() == "pat-na1-abc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"access_token": "t0k", "n": 1}, {"access_token": "********", "n": 1}),
        ({"headers": {"Authorization": "Bearer abc.def"}}, {"headers": {"Authorization": "********"}}),
        (
            {"url": "https://x/v1/event?_a=1&hapikey=dfdb-123&email=a"},
            {"url": "https://x/v1/event?_a=1&hapikey=********&email=a"},
        ),
        ({"writeKey": "wk", "event": "ok"}, {"writeKey": "********", "event": "ok"}),
        ({"items": [Secret("x"), "Bearer zzz"]}, {"items": ["********", "Bearer ********"]}),
        ({"token": None}, {"token": None}),
        (  # an OAuth refresh's form body, wherever it would be written
            {"body": "grant_type=refresh_token&client_id=a&client_secret=s3&refresh_token=r9"},
            {"body": "grant_type=refresh_token&client_id=a&client_secret=********&refresh_token=********"},
        ),
    ],
)
def test_scrub(value: Any, expected: Any) -> None:
    assert scrub(value) == expected


def test_scrub_text() -> None:
    assert scrub_text("GET /x?access_token=abc&y=1") == "GET /x?access_token=********&y=1"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"refresh_token_rotated": True}, {"refresh_token_rotated": True}),  # a flag is no secret
        ({"access_token_expires_in": 1800}, {"access_token_expires_in": 1800}),
        ({"client_secret_length": 0.0}, {"client_secret_length": 0.0}),
        ({"refresh_token": None}, {"refresh_token": None}),
        ({"refresh_token": "rt-123"}, {"refresh_token": "********"}),
        ({"api_key": ["a", "b"]}, {"api_key": "********"}),
        ({"token": {"value": "x"}}, {"token": "********"}),
    ],
)
def test_the_scrubber_masks_values_of_secrets_never_flags_or_numbers(
    fields: dict[str, object], expected: dict[str, object]
) -> None:
    assert scrub_fields(fields) == expected
