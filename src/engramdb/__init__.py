"""engramdb: persistent memory for AI agents.

Sessions (short-term conversation history), long-term memories with hybrid recall and
knowledge triples, over one store: SQLite embedded, or PostgreSQL. Everything users catch
derives from :class:`EngramError`.
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
from .filters import Filter
from .memory import AsyncMemory, ForgetResult, Memory, Page, RecallSettings
from .sessions import AsyncSession, Session, list_sessions
from .store import Store, open_store
from .types import (
    Hit,
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    SessionInfo,
    SessionSettings,
    Triple,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory",
    "AsyncSession",
    "ConflictError",
    "CorruptRecordError",
    "EngramError",
    "Filter",
    "ForgetResult",
    "Hit",
    "InvalidInputError",
    "LeaseHeldError",
    "Memory",
    "MemoryRecord",
    "MemoryStats",
    "MemoryVersion",
    "NotFoundError",
    "Page",
    "RecallSettings",
    "SchemaVersionError",
    "Session",
    "SessionInfo",
    "SessionSettings",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "Triple",
    "__version__",
    "list_sessions",
    "open_store",
]
