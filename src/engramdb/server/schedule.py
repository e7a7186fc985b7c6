"""The background consolidation schedule of ``engramdb serve`` (off unless
``consolidate_every_seconds`` is set).

One thread per app. Every period it walks the enabled scopes of every namespace, one at a
time, and runs :func:`engramdb.consolidate.consolidate` under the server's cost caps: a scope
with no new sessions costs no model call, a run stops at the per-run cap and the day stops at
the per-day cap of the namespace, whatever the period. The scope's job lease keeps several
workers or replicas from consolidating the same scope at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..consolidate.budget import CostCaps
from ..memory import Memory

log = logging.getLogger("engramdb.server")


class ConsolidationSchedule:
    """Consolidate every enabled scope every ``every_seconds`` until :meth:`stop`."""

    def __init__(
        self,
        memory: Memory,
        *,
        every_seconds: float,
        caps: CostCaps,
        root: Path | None,
        idle_seconds: float,
    ) -> None:
        self.memory = memory
        self.every_seconds = every_seconds
        self.caps = caps
        self.root = root
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="engramdb-consolidate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the scope being consolidated (if any); waits up to ``timeout``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_seconds):
            self.run_once()

    def run_once(self) -> int:
        """One pass over every enabled scope; returns how many scopes were run. A scope's
        failure is logged and does not stop the pass."""
        from ..consolidate import consolidate

        llm = self.memory.llm
        if llm is None:
            return 0
        ran = 0
        for namespace in self.memory.store.export_namespaces():
            for settings in self.memory.store.scope_list(namespace):
                if self._stop.is_set():
                    return ran
                if not settings.enabled:
                    continue
                try:
                    result = consolidate(
                        self.memory,
                        llm,
                        scope=settings.scope,
                        namespace=namespace,
                        root=self.root,
                        caps=self.caps,
                        idle_seconds=self.idle_seconds,
                    )
                except Exception:  # logged; the next scope and the next pass go on
                    log.exception("consolidation of scope %r failed", settings.scope)
                    continue
                ran += 1
                if result.stopped:
                    log.info("consolidation of %r stopped: %s", settings.scope, result.stopped)
        return ran


__all__ = ["ConsolidationSchedule"]
