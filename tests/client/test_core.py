"""The client's shared core on its own: paths, JSON both ways, error mapping, back-off."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from engramdb import (
    ConflictError,
    CorruptRecordError,
    InvalidInputError,
    LeaseHeldError,
    RateLimitError,
    ServerError,
    StoreError,
    StoreUnavailableError,
)
from engramdb.client import Client, _loads, _segment, error_for, retry_after


@pytest.mark.parametrize(
    ("session_id", "segment"),
    [
        ("plain", "plain"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
        ("q?x#y", "q%3Fx%23y"),
        ("ü 🧠", "%C3%BC%20%F0%9F%A7%A0"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("a.b", "a.b"),
    ],
)
def test_session_ids_become_single_path_segments(session_id: str, segment: str) -> None:
    assert _segment(session_id) == segment


def test_json_is_parsed_exactly() -> None:
    body = (
        b'{"big": 123456789012345678901234567890, "f": 0.1, "s": "\\u00fc", "o": {"z": 1, "a": 2}}'
    )
    parsed = _loads(body)
    assert parsed["big"] == 123456789012345678901234567890 and isinstance(parsed["big"], int)
    assert parsed["f"] == 0.1 and parsed["s"] == "ü" and list(parsed["o"]) == ["z", "a"]
    assert _loads(b'{"n": 18446744073709551615}') == {"n": 18446744073709551615}


def response(status: int, code: str | None = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://server/v1/x")
    if code is None:
        return httpx.Response(status, text="<html>proxy error</html>", request=request)
    body = {"error": {"code": code, "message": f"message for {code}"}}
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (409, "lease_held", LeaseHeldError),
        (409, "idempotency_in_progress", ConflictError),
        (500, "corrupt_record", CorruptRecordError),
        (503, "store_error", StoreError),
        (503, "store_unavailable", StoreUnavailableError),
        (500, "internal_error", ServerError),
        (405, "method_not_allowed", InvalidInputError),
    ],
)
def test_error_codes_pick_the_precise_exception(status: int, code: str, kind: type) -> None:
    error = error_for(response(status, code))
    assert type(error) is kind
    assert (error.status, error.code, str(error)) == (status, code, f"message for {code}")


def test_a_body_not_in_the_api_shape_is_quoted() -> None:
    error = error_for(response(502))
    assert isinstance(error, ServerError) and error.code is None
    assert "HTTP 502" in str(error) and "proxy error" in str(error)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after(response(429, "rate_limited", **{"Retry-After": "3"})) == 3.0
    later = datetime.now(UTC) + timedelta(seconds=90)
    dated = response(429, "rate_limited", **{"Retry-After": email.utils.format_datetime(later)})
    assert 80 <= (retry_after(dated) or 0) <= 91
    assert retry_after(response(429, "rate_limited", **{"Retry-After": "soon"})) is None
    error = error_for(response(429, "quota_exceeded", **{"Retry-After": "7"}))
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0


def test_back_off_grows_with_jitter_and_is_capped() -> None:
    c = Client("http://server", backoff=1.0, max_retry_wait=5.0)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 5), (5, 5)]):
        for _ in range(20):
            assert low <= c._backoff(attempt) <= high
    c.close()
