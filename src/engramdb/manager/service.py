"""``MemoryManager(memory, llm)``: the background manager over a ``Memory``.

The runtime (:mod:`.runtime`: triggers, background jobs, windows, retries, flush) wired to the
store's high-water marks and leases (:class:`~.pipeline.StoreWindowSource`) and to the
extraction pipeline (:class:`~.pipeline.Pipeline`)::

    manager = MemoryManager(memory, "openai:gpt-4o-mini", user_id="ada")
    session = manager.watch(Session("chat-1", memory.store))
    session.add_items([{"role": "user", "content": "I moved to Lyon last week"}])
    manager.close()   # flushes: nothing said is left unextracted
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..llm import LLM, resolve_llm
from ..types import Quota
from . import runtime
from .pipeline import Pipeline, StoreWindowSource
from .transcript import ToolRule

if TYPE_CHECKING:
    from ..memory import Memory


class MemoryManager(runtime.MemoryManager):
    """Watches sessions of one namespace and turns what is said into memories of one scope
    (``user_id`` / ``agent_id``) in the background. ``llm`` defaults to ``memory.llm``;
    without any model, messages are stored as said (deduplicated). Every other keyword is the
    runtime's (:class:`~engramdb.manager.runtime.MemoryManager`): ``triggers``, ``retry``,
    ``max_window_items``, ``workers``, ``lease_ttl``, ..."""

    def __init__(
        self,
        memory: Memory,
        llm: LLM | str | None = None,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        tools: ToolRule = "summarize",
        quota: Quota | None = None,
        **options: Any,
    ) -> None:
        self.memory = memory
        self.pipeline = Pipeline(
            memory,
            resolve_llm(llm) if llm is not None else memory.llm,
            namespace=namespace,
            user_id=user_id,
            agent_id=agent_id,
            tools=tools,
            quota=quota,
        )
        super().__init__(StoreWindowSource(memory, namespace), self.pipeline, **options)


__all__ = ["MemoryManager"]
