"""The Store protocol: what every storage backend provides.

Stores are synchronous; the async faces above them run store calls in worker threads.
Every method takes the namespace explicitly, so no caller can forget it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..types import SessionInfo


@runtime_checkable
class Store(Protocol):
    """Storage backend. Implementations: :class:`~engramdb.store.sqlite.SQLiteStore`."""

    url: str
    inline_reads: bool
    """True if bounded reads never block (they may then run on an event loop directly)."""

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    # -- sessions --------------------------------------------------------------------------
    def session_add(self, namespace: str, session_id: str, encoded_items: Sequence[str]) -> None:
        """Append encoded items atomically, in order, with store-assigned sequence numbers."""

    def session_get(
        self, namespace: str, session_id: str, limit: int | None
    ) -> list[dict[str, Any]]:
        """The last ``limit`` items (all if ``None``), oldest first."""

    def session_pop(self, namespace: str, session_id: str) -> dict[str, Any] | None:
        """Remove and return the newest item; ``None`` when empty. Corrupt items are not removed."""

    def session_clear(self, namespace: str, session_id: str) -> int:
        """Remove every item (sequence numbers are never reused). Returns the count."""

    def session_delete(self, namespace: str, session_id: str) -> bool:
        """Remove the session and its items entirely. Returns whether it existed."""

    def session_info(self, namespace: str, session_id: str) -> SessionInfo | None:
        """Metadata of one session, or ``None`` if it was never written."""

    def session_list(
        self, namespace: str, *, limit: int = 100, before: tuple[int, str] | None = None
    ) -> list[SessionInfo]:
        """Sessions of a namespace, most recently updated first, paged by ``before``."""

    # -- leases ----------------------------------------------------------------------------
    def lease_acquire(self, namespace: str, name: str, owner: str, ttl: float) -> bool:
        """Take (or renew, if ``owner`` already holds it) a lease; False if held by another."""

    def lease_release(self, namespace: str, name: str, owner: str) -> bool:
        """Release a lease held by ``owner``. Returns whether it was held."""
