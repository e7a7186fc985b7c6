"""The server-run memory manager (``extract_sessions``): session items appended through the
API are turned into memories in the background, so remote users get extraction without
running an LLM client themselves.

One :class:`~engramdb.manager.MemoryManager` per namespace (and stored-data quota: keys of
one namespace may carry different limits), created on first use, over the app's shared
``Memory`` and model. The session route calls :meth:`Managers.notify` after the items are
stored: the hot path is a counter and at most one queue append; the store's high-water
marks and extraction leases keep replicas and worker processes from extracting a window
twice. The app's lifespan :meth:`Managers.close` flushes them on shutdown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..manager import MemoryManager, Triggers
from ..memory import Memory
from ..types import Quota


class Managers:
    """The app's memory managers, one per (namespace, quota), created lazily."""

    def __init__(
        self,
        memory: Memory,
        *,
        every_n_turns: int | None = 5,
        idle_seconds: float | None = 60.0,
        flush_at_exit: float | None = 30.0,
    ) -> None:
        self.memory = memory
        self.triggers = Triggers(every_n_turns=every_n_turns, idle_seconds=idle_seconds)
        self.flush_at_exit = flush_at_exit
        self._managers: dict[tuple[str, Quota | None], MemoryManager] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, namespace: str, quota: Quota | None = None) -> MemoryManager | None:
        """The manager of ``namespace`` (created now if need be); ``None`` once closed."""
        slot = (namespace, quota)
        with self._lock:
            if self._closed:
                return None
            manager = self._managers.get(slot)
            if manager is None:
                manager = MemoryManager(
                    self.memory,
                    namespace=namespace,
                    quota=quota,
                    triggers=self.triggers,
                    workers=1,
                    flush_at_exit=self.flush_at_exit,
                )
                self._managers[slot] = manager
            return manager

    def notify(
        self, namespace: str, quota: Quota | None, session_id: str, items: Sequence[Any]
    ) -> None:
        """``items`` were just stored in the namespace's session: count them towards the
        triggers (never waits for extraction, never raises once closed)."""
        manager = self.get(namespace, quota)
        if manager is not None:
            manager.notify(session_id, items)

    def all(self) -> list[MemoryManager]:
        with self._lock:
            return list(self._managers.values())

    def flush(self, timeout: float | None = None) -> bool:
        """Extract every session with unextracted items now and wait (``timeout`` bounds the
        whole call); ``True`` when every job succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for manager in self.all():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = manager.flush(left) and ok
        return ok

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop every manager; later notifications are ignored (the items stay
        stored, past the mark: the next server run's manager or an extract call takes them)."""
        with self._lock:
            self._closed = True
            managers = list(self._managers.values())
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for manager in managers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = manager.close(left) and ok
        return ok


__all__ = ["Managers"]
