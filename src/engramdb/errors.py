"""The exception tree users catch.

Every error engramdb raises on purpose derives from :class:`EngramError`, so
``except engramdb.EngramError`` is enough for callers that want one net. Input
errors also derive from :class:`ValueError` so generic validation code keeps working.
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class of every error engramdb raises on purpose.

    Errors raised by :class:`engramdb.Client` for a server's response also carry the HTTP
    ``status`` and the machine-readable ``code`` the server sent (``None`` otherwise).
    """

    status: int | None = None
    code: str | None = None


class InvalidInputError(EngramError, ValueError):
    """The caller passed something engramdb cannot accept; nothing was written."""


class MissingExtraError(InvalidInputError, ImportError):
    """An optional package is not installed. The message is one line naming the command that
    installs it (``pip install 'engramdb[postgres]'``); ``extra`` is the extra's name (``None``
    when the package is not one of engramdb's extras) and ``install`` the command."""

    def __init__(self, message: str, *, extra: str | None, install: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.install = install


class NotFoundError(EngramError, LookupError):
    """The requested record does not exist (or belongs to another namespace)."""


class PayloadTooLargeError(InvalidInputError):
    """Input over a size limit: content, metadata, a query, or a whole request body (HTTP
    413). The message names the limit; nothing was written. See ``GET /v1/limits``."""


class NotJSONError(InvalidInputError, TypeError):
    """A value that must be JSON is not (a set, an arbitrary object, ...). It is also a
    ``TypeError``, as the OpenAI Agents SDK's own sessions raise for such items."""


class AuthenticationError(EngramError):
    """The server did not accept the API key: missing, unknown or revoked (HTTP 401)."""


class PermissionDeniedError(EngramError):
    """The API key is valid but may not do this (HTTP 403)."""


class RateLimitError(EngramError):
    """A rate limit or quota of the API key was reached (HTTP 429); nothing was done.

    ``retry_after`` is how many seconds the server asked the client to wait (``None`` if it
    did not say).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceededError(RateLimitError):
    """A write would take a namespace past a stored-data quota; nothing was written.

    Raised by the store inside the write's own transaction, so concurrent writers can never
    overrun the limit together. ``quota`` names the limit (``max_memories`` or
    ``max_facts``), ``limit`` is its value, ``used`` what the namespace held before the write
    and ``adding`` how many the write would have added.
    """

    def __init__(
        self,
        message: str,
        *,
        quota: str,
        limit: int,
        used: int,
        adding: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.quota = quota
        self.limit = limit
        self.used = used
        self.adding = adding


class BudgetExceededError(RateLimitError):
    """A consolidation cost cap (per run or per day: sessions, input tokens or LLM calls) would
    be passed by the next LLM call; the call was not made.

    ``cap`` names the cap (for example ``"run.max_input_tokens"`` or ``"day.max_llm_calls"``),
    ``limit`` is its value and ``used`` what was spent before the refused call.
    """

    def __init__(self, message: str, *, cap: str, limit: int, used: int) -> None:
        super().__init__(message)
        self.cap = cap
        self.limit = limit
        self.used = used


class ServerError(EngramError):
    """The server failed in an unexpected way (HTTP 5xx other than 503, or a response that is
    not the API's)."""


class ConflictError(EngramError):
    """The operation conflicts with the current state (for example a held lease)."""


class LeaseHeldError(ConflictError):
    """A lease (for example a session run lease) is held by another owner."""


class StoreError(EngramError):
    """The storage backend failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be opened or written: missing, not a database, read-only, refused."""


class SchemaVersionError(StoreError):
    """The database was written by a newer engramdb than this one."""


class CorruptRecordError(StoreError):
    """A stored record cannot be decoded. It is reported and left in place, never deleted."""

    def __init__(self, message: str, *, record_id: str | int | None = None) -> None:
        super().__init__(message)
        self.record_id = record_id


class LLMError(EngramError):
    """A language model call failed (the memory manager retries later; nothing is lost)."""


class LLMUnavailableError(LLMError):
    """The model endpoint could not be reached, timed out, or kept answering 429/5xx."""


class LLMResponseError(LLMError):
    """The model answered, but not with a JSON object matching the requested schema."""


__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConflictError",
    "CorruptRecordError",
    "EngramError",
    "InvalidInputError",
    "LLMError",
    "LLMResponseError",
    "LLMUnavailableError",
    "LeaseHeldError",
    "MissingExtraError",
    "NotFoundError",
    "NotJSONError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "SchemaVersionError",
    "ServerError",
    "StoreError",
    "StoreUnavailableError",
]
