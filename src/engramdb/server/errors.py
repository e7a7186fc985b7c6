"""Every error the server sends is ``{"error": {"code", "message"}}`` with a precise status.

Anything a client can send maps to a 4xx; 5xx means the store is unreachable (503) or a bug.
A 5xx body never carries the underlying error's text (it may name files or SQL): it says what
kind of failure it was and gives the request id; the detail goes to the server log.

The convention: **400** only for a request that cannot be read at all (a body that is not
JSON, a broken ``Content-Length``, a path that is not UTF-8); **422** for every request that
can be read but is not valid (a field out of its bounds, a bad date, an unknown field, ...),
whether the schema or the library finds it. :data:`ERROR_RESPONSES` documents every status a
route can answer; every router takes it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    ConflictError,
    CorruptRecordError,
    EngramError,
    InvalidInputError,
    LeaseHeldError,
    LLMError,
    LLMUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    StoreUnavailableError,
)
from .models import ErrorOut, validation_message

log = logging.getLogger("engramdb.server")


class ApiError(Exception):
    """An HTTP error with a machine-readable code, raised anywhere below a route."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


# most specific first: the first isinstance match wins
_ENGRAM_ERRORS: list[tuple[type[EngramError], int, str]] = [
    (PayloadTooLargeError, 413, "payload_too_large"),
    (InvalidInputError, 422, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (LeaseHeldError, 409, "lease_held"),
    (ConflictError, 409, "conflict"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (CorruptRecordError, 500, "corrupt_record"),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_response("``invalid_json``: the body is not JSON (nothing was done)."),
    401: _error_response("``unauthorized``: the API key is missing, unknown or revoked."),
    403: _error_response("``forbidden``: the key may not do this."),
    404: _error_response("``not_found``: no such record in this namespace, or no route."),
    405: _error_response(
        "``method_not_allowed``: not a method of this path (``Allow`` lists them)."
    ),
    409: _error_response("``conflict``, ``lease_held``: the current state refuses it."),
    413: _error_response(
        "``payload_too_large``: over a size limit (the message names it; ``GET /v1/limits``); "
        "``body_too_large``: the whole body.",
    ),
    422: _error_response(
        "``validation_error`` (the request schema) or ``invalid_input`` (the library's own "
        "checks): the request was read but is not valid; nothing was written.",
    ),
    429: _error_response(
        "``rate_limited``, ``quota_exceeded``: a limit of the key (``Retry-After``)."
    ),
    503: _error_response(
        "``store_unavailable``: the store cannot serve requests now; nothing was lost."
    ),
}
"""Every status an API route can answer besides its success, with its error body: given to
every router (``APIRouter(responses=ERROR_RESPONSES)``) so the OpenAPI document lists them."""


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "invalid_json", "the request body is not valid JSON"
    return 422, "validation_error", validation_message(errors)


_FAILURES = {
    "store_unavailable": "the store is unavailable",
    "corrupt_record": "a stored record cannot be decoded; it was left in place",
    "store_error": "the store failed",
}


def request_id(request: Request) -> str:
    """The id the access log gives this request (also sent as ``X-Request-Id``)."""
    state = request.scope.get("state") or {}
    return str(state.get("request_id") or "-")


def _server_failure(request: Request, exc: Exception, status: int, code: str) -> JSONResponse:
    rid = request_id(request)
    log.error("%s %s failed (request %s): %s", request.method, request.url.path, rid, exc)
    what = _FAILURES.get(code, "internal server error")
    return error_response(status, code, f"{what} (request id {rid}; details in the server log)")


def allowed_methods(request: Request) -> list[str]:
    """Every method the API documents at this path (the router's own 405 names only the
    first matching route's; ``Allow`` must list them all). Read from the OpenAPI paths, so
    the header and the schema cannot disagree. A fixed path (``/v1/memories/batch``) wins over
    a template it also fits (``/v1/memories/{memory_id}``), as in routing."""
    table: list[tuple[re.Pattern[str], bool, set[str]]] | None = getattr(
        request.app.state, "allow_table", None
    )
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$"),
                "{" in path,
                {method.upper() for method in operations},
            )
            for path, operations in request.app.openapi()["paths"].items()
        ]
        request.app.state.allow_table = table
    path = request.scope["path"]
    matches = [(templated, methods) for pattern, templated, methods in table if pattern.match(path)]
    fixed = [methods for templated, methods in matches if not templated]
    chosen = fixed or [methods for _, methods in matches]
    return sorted({method for methods in chosen for method in methods})


LLM_RETRY_AFTER = 30
"""Seconds a client is told to wait after the model endpoint failed (503)."""


def llm_failure(exc: LLMError, what_happened: str) -> ApiError:
    """The HTTP error for a failed model call: 503 ``llm_unavailable`` (with ``Retry-After``)
    when the endpoint cannot answer, 502 ``llm_bad_response`` when it answered unusably. The
    model's own text (an endpoint URL, a provider message) goes to the log only."""
    log.warning("LLM call failed: %s: %s", type(exc).__name__, exc)
    if isinstance(exc, LLMUnavailableError):
        return ApiError(
            503,
            "llm_unavailable",
            f"the model endpoint is unavailable; {what_happened}",
            {"Retry-After": str(LLM_RETRY_AFTER)},
        )
    return ApiError(502, "llm_bad_response", f"the model did not answer usably; {what_happened}")


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure to one JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(EngramError)
    async def _engram(request: Request, exc: EngramError) -> JSONResponse:
        if isinstance(exc, LLMError):  # a route that did not say what was kept
            failure = llm_failure(exc, "see the server log")
            return error_response(failure.status, failure.code, failure.message, failure.headers)
        if isinstance(exc, QuotaExceededError):  # raised inside the write transaction
            wait = {"Retry-After": str(int(exc.retry_after or 3600))}
            return error_response(429, "quota_exceeded", str(exc), wait)
        for kind, status, code in _ENGRAM_ERRORS:
            if isinstance(exc, kind):
                if status >= 500:
                    return _server_failure(request, exc, status, code)
                return error_response(status, code, str(exc))
        return _server_failure(request, exc, 503, "store_error")

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # only input nested thousands of levels deep gets here (the JSON parser's recursion)
        return error_response(422, "invalid_input", "the request is nested too deeply")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # who may call comes before what was sent: a route running in one hop (tenant.one_hop)
        # checks its key only with its body, so an invalid request is authorized here first
        authorize = getattr(
            getattr(request.scope.get("route"), "endpoint", None), "authorize", None
        )
        if authorize is not None:
            try:
                await authorize(request)
            except ApiError as refused:
                return error_response(
                    refused.status, refused.code, refused.message, refused.headers
                )
        status, code, message = _validation_message(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.url.path, rid
        )
        return error_response(
            500, "internal_error", f"internal server error (request id {rid}; logged)"
        )
