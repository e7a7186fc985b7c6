"""The exception tree users catch.

Every error engramdb raises on purpose derives from :class:`EngramError`, so
``except engramdb.EngramError`` is enough for callers that want one net. Input
errors also derive from :class:`ValueError` so generic validation code keeps working.
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class of every error engramdb raises on purpose."""


class InvalidInputError(EngramError, ValueError):
    """The caller passed something engramdb cannot accept; nothing was written."""


class NotFoundError(EngramError, LookupError):
    """The requested record does not exist (or belongs to another namespace)."""


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


__all__ = [
    "ConflictError",
    "CorruptRecordError",
    "EngramError",
    "InvalidInputError",
    "LeaseHeldError",
    "NotFoundError",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailableError",
]
