"""engramdb: persistent memory for AI agents.

Sessions (short-term conversation history), long-term memories with hybrid recall and
knowledge triples, over one store: SQLite embedded, or PostgreSQL. Everything users catch
derives from :class:`EngramError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    CorruptRecordError,
    EngramError,
    InvalidInputError,
    LeaseHeldError,
    LLMError,
    LLMResponseError,
    LLMUnavailableError,
    MissingExtraError,
    NotFoundError,
    NotJSONError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    SchemaVersionError,
    ServerError,
    StoreError,
    StoreUnavailableError,
)
from .filters import Filter
from .sessions import AsyncSession, Session, list_sessions
from .store import Store, open_store
from .types import (
    Hit,
    MemoryEvent,
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    Quota,
    Remembered,
    SessionInfo,
    SessionSettings,
    Triple,
)

if TYPE_CHECKING:
    from .client import AsyncClient, Client, RemoteSession
    from .manager import MemoryManager
    from .memory import AsyncMemory, ForgetResult, Memory, Page, RecallSettings

__version__ = "0.1.0"

_LAZY = {
    "AsyncClient": "client",
    "Client": "client",
    "RemoteSession": "client",
    "MemoryManager": "manager",
    "AsyncMemory": "memory",
    "ForgetResult": "memory",
    "Memory": "memory",
    "Page": "memory",
    "RecallSettings": "memory",
}
"""Names imported on first use: ``import engramdb`` stays light (no numpy, no search stack,
no HTTP client) for sessions and the command line."""


def __getattr__(name: str) -> Any:
    """The long-term memory facade, the HTTP clients and the memory manager, imported on
    first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "AsyncMemory",
    "AsyncSession",
    "AuthenticationError",
    "BudgetExceededError",
    "Client",
    "ConflictError",
    "CorruptRecordError",
    "EngramError",
    "Filter",
    "ForgetResult",
    "Hit",
    "InvalidInputError",
    "LLMError",
    "LLMResponseError",
    "LLMUnavailableError",
    "LeaseHeldError",
    "Memory",
    "MemoryEvent",
    "MemoryManager",
    "MemoryRecord",
    "MemoryStats",
    "MemoryVersion",
    "MissingExtraError",
    "NotFoundError",
    "NotJSONError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Quota",
    "QuotaExceededError",
    "RateLimitError",
    "RecallSettings",
    "Remembered",
    "RemoteSession",
    "SchemaVersionError",
    "ServerError",
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
