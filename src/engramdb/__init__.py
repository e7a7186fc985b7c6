"""engramdb: persistent memory for AI agents.

Sessions (short-term conversation history) today; long-term memories, knowledge triples and
the memory server build on the same store. Everything users catch derives from
:class:`EngramError`.
"""

from __future__ import annotations

from .errors import (
    ConflictError,
    CorruptRecordError,
    EngramError,
    InvalidInputError,
    LeaseHeldError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from .sessions import AsyncSession, Session, list_sessions
from .store import Store, open_store
from .types import SessionInfo, SessionSettings

__version__ = "0.1.0"

__all__ = [
    "AsyncSession",
    "ConflictError",
    "CorruptRecordError",
    "EngramError",
    "InvalidInputError",
    "LeaseHeldError",
    "NotFoundError",
    "SchemaVersionError",
    "Session",
    "SessionInfo",
    "SessionSettings",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "__version__",
    "list_sessions",
    "open_store",
]
