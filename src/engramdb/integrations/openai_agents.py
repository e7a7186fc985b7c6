"""OpenAI Agents SDK integration: an engramdb-backed session, memory tools, and instructions
that carry what the agent remembers.

>>> from agents import Agent                                             # doctest: +SKIP
>>> from engramdb import Memory                                          # doctest: +SKIP
>>> from engramdb.integrations.openai_agents import (                    # doctest: +SKIP
...     memory_instructions, memory_tools)
>>> memory = Memory("./data")                                            # doctest: +SKIP
>>> agent = Agent(name="assistant", model=model,                        # doctest: +SKIP
...               instructions=memory_instructions("Be brief.", memory, user_id="ada"),
...               tools=memory_tools(memory, user_id="ada"))

- :class:`EngramSession`: the SDK's ``Session`` (conversation history) stored in engramdb.
  Items are stored exactly as the SDK hands them over and come back unchanged.
  ``session_settings`` is the SDK's ``SessionSettings`` (or a dict of its fields);
  ``get_items(limit)`` with an explicit limit wins over ``session_settings.limit``. For two
  concurrent runs on one session, hold :meth:`EngramSession.run_lease` around each run: the
  SDK itself does not serialise them. It works under the SDK's
  ``OpenAIResponsesCompactionSession``: its bounded suffix snapshot
  (``_get_compaction_snapshot``, as the SDK's SQL sessions have it) and its whole-history hook
  (``_atomic_replace_items``) each write in one store transaction;
  :class:`~engramdb.client.RemoteSession` has the latter (``PUT /v1/sessions/{id}/items``).
- :func:`memory_tools`: ``remember``, ``recall`` and ``forget`` function tools bound to one
  scope (user, agent, namespace), over :class:`~engramdb.Memory`,
  :class:`~engramdb.AsyncMemory`, :class:`~engramdb.Client` or :class:`~engramdb.AsyncClient`.
- :func:`memory_instructions`: dynamic instructions that put ``memory.context(...)`` for the
  latest user message into the agent's instructions on every run.

The SDK is imported only when one of these is used; without it they raise
:class:`~engramdb.errors.MissingExtraError` naming ``pip install 'engramdb[agents]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import InvalidInputError, NotFoundError
from ..sessions import AsyncSession
from ..store import Store
from ..types import DEFAULT_NAMESPACE, Hit, MemoryRecord

if TYPE_CHECKING:
    from agents import Agent, RunContextWrapper, Tool
    from agents.memory import SessionSettings

    from ..client import AsyncClient, Client
    from ..memory import AsyncMemory, Memory

    MemoryLike = Memory | AsyncMemory | Client | AsyncClient

INSTALL_HINT = (
    "the OpenAI Agents integration needs the openai-agents package: pip install 'engramdb[agents]'"
)
DEFAULT_RECALL_LIMIT = 5
MAX_RECALL_LIMIT = 50


def _require_agents() -> None:
    from .._extras import require

    require("agents", "agents", "the OpenAI Agents integration")


class EngramSession(AsyncSession):
    """An ``agents.memory.Session`` stored in engramdb (SQLite by default, any Store)."""

    session_settings: SessionSettings

    def __init__(
        self,
        session_id: str,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        _require_agents()
        from agents.memory import SessionSettings

        # the SDK's coercion: a dict with an unknown key raises its TypeError
        super().__init__(
            session_id,
            store,
            namespace=namespace,
            session_settings=session_settings
            if session_settings is not None
            else SessionSettings(),
        )

    async def _get_compaction_snapshot(
        self, limit: int, *, prune_prefix: Callable[[Any], bool] | None = None
    ) -> Any:
        """The Agents SDK's bounded compaction snapshot, as its SQL sessions implement it:
        the newest ``limit`` items, and ``replace_suffix(start, output)`` that swaps
        ``items[start:]`` for ``output`` in one store transaction if the session has not
        changed since (else ``False``, and the SDK skips that compaction). ``prune_prefix``
        (expiring older items, asked only by the SDK's encrypted wrapper) is not supported:
        ``None`` then, and the SDK replaces the whole history through
        :meth:`_atomic_replace_items` instead."""
        if prune_prefix is not None:
            return None
        from agents.memory.session import _CompactionSnapshot

        items, complete, version = await asyncio.to_thread(self._sync.tail_snapshot, limit)

        async def replace_suffix(start: int, output: list[Any]) -> bool:
            return await self._write(
                lambda: self._sync.replace_tail(items[start:], output, version=version)
            )

        return _CompactionSnapshot(cast(Any, items), complete, replace_suffix)


class _Scoped:
    """One scope (user, agent, namespace) over a Memory, AsyncMemory, Client or AsyncClient,
    with coroutine methods; blocking backends run in a worker thread."""

    def __init__(
        self,
        memory: MemoryLike,
        *,
        user_id: str | None,
        agent_id: str | None,
        namespace: str | None,
    ) -> None:
        from ..client import AsyncClient, Client
        from ..memory import AsyncMemory, Memory
        from ..validation import check_id

        self.user_id = None if user_id is None else check_id("user_id", user_id)
        self.agent_id = None if agent_id is None else check_id("agent_id", agent_id)
        self.filters = {
            k: v for k, v in (("user_id", self.user_id), ("agent_id", self.agent_id)) if v
        }
        self.local: Memory | None = None
        self.remote: Client | AsyncClient | None = None
        if isinstance(memory, AsyncMemory):
            self.local = memory.sync
        elif isinstance(memory, Memory):
            self.local = memory
        elif isinstance(memory, Client | AsyncClient):
            if namespace is not None:
                raise InvalidInputError(
                    "a Client works in its API key's namespace; namespace= is for a local Memory"
                )
            self.remote = memory
        else:
            raise InvalidInputError(
                "memory must be a Memory, AsyncMemory, Client or AsyncClient, "
                f"got {type(memory).__name__}"
            )
        self.namespace = None if namespace is None else check_id("namespace", namespace)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        from ..client import AsyncClient

        target: Any = self.local if self.local is not None else self.remote
        if isinstance(target, AsyncClient):
            return await getattr(target, name)(*args, **kwargs)
        if self.local is not None and name in {"remember", "recall", "get", "forget", "context"}:
            kwargs["namespace"] = self.namespace
        return await asyncio.to_thread(getattr(target, name), *args, **kwargs)

    async def remember(self, content: str, tags: list[str]) -> MemoryRecord:
        record: MemoryRecord = await self._call(
            "remember", content, user_id=self.user_id, agent_id=self.agent_id, tags=tags
        )
        return record

    async def recall(self, query: str, limit: int) -> list[Hit]:
        hits: list[Hit] = await self._call(
            "recall", query, filters=self.filters or None, limit=limit
        )
        return hits

    async def in_scope(self, memory_id: str) -> MemoryRecord | None:
        """The memory if it exists and belongs to this scope, else ``None``."""
        try:
            record: MemoryRecord = await self._call("get", memory_id)
        except NotFoundError:
            return None
        if any(getattr(record, key) != value for key, value in self.filters.items()):
            return None
        return record

    async def forget(self, memory_id: str) -> None:
        await self._call("forget", memory_id)

    async def context(self, query: str, budget_tokens: int, scope: str | None = None) -> str:
        ctx = await self._call(
            "context",
            query,
            user_id=self.user_id,
            agent_id=self.agent_id,
            budget_tokens=budget_tokens,
            scope=scope,
        )
        return str(ctx.text)


def _hit_line(hit: Hit) -> str:
    record = hit.memory
    return f"- [{record.id}] {record.content} (saved {record.created_at:%Y-%m-%d})"


def memory_tools(
    memory: MemoryLike,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    namespace: str | None = None,
) -> list[Tool]:
    """``remember``, ``recall`` and ``forget`` as Agents SDK ``FunctionTool``s (typed as the
    ``list[Tool]`` that ``Agent(tools=...)`` takes), bound to a scope.

    Everything the tools store carries ``user_id``/``agent_id``; ``recall`` searches only
    that scope, and ``forget`` removes one memory by id only if it belongs to the scope (an id
    from elsewhere answers "not found", as if it did not exist), so a model can never reach
    another user's memories. ``memory`` is a :class:`~engramdb.Memory`,
    :class:`~engramdb.AsyncMemory` (``namespace`` picks one of its namespaces), a
    :class:`~engramdb.Client` or an :class:`~engramdb.AsyncClient` (the API key's namespace).
    A failing call (bad input, a server that is down) becomes a message the model reads.

    >>> agent = Agent(name="a", tools=memory_tools(memory, user_id="ada"))  # doctest: +SKIP
    """
    _require_agents()
    from agents import function_tool

    scope = _Scoped(memory, user_id=user_id, agent_id=agent_id, namespace=namespace)

    async def remember(content: str, tags: list[str] | None = None) -> str:
        """Save one durable fact about the user or the task to long-term memory, so it can be
        recalled in later conversations. Save self-contained statements ("Ada prefers tea"),
        one fact per call; skip small talk. Saving the same text twice stores it once.

        Args:
            content: The fact to remember, as a complete sentence.
            tags: Optional exact labels to file it under, such as "preference" or "project:x".
        """
        record = await scope.remember(content, list(tags or ()))
        return f"Remembered [{record.id}]: {record.content}"

    async def recall(query: str, limit: int = DEFAULT_RECALL_LIMIT) -> str:
        """Search long-term memory for facts relevant to a query, most relevant first. Use it
        before answering anything that may depend on what the user said in earlier
        conversations (names, preferences, decisions). Each line starts with the memory's id
        in brackets.

        Args:
            query: What to look for, in plain words.
            limit: How many memories to return at most (1 to 50).
        """
        if not 1 <= limit <= MAX_RECALL_LIMIT:
            raise InvalidInputError(f"limit must be between 1 and {MAX_RECALL_LIMIT}")
        hits = await scope.recall(query, limit)
        if not hits:
            return "No memories found."
        return "\n".join(_hit_line(hit) for hit in hits)

    async def forget(memory_id: str) -> str:
        """Delete one memory for good, by the id shown in brackets by `recall`. Use it when the
        user asks to forget something or a remembered fact is wrong. This cannot be undone.

        Args:
            memory_id: The id of the memory to delete, exactly as `recall` showed it.
        """
        record = await scope.in_scope(memory_id)
        if record is None:
            return f"No memory with id {memory_id!r}; nothing was deleted."
        await scope.forget(memory_id)
        return f"Forgot [{memory_id}]: {record.content}"

    return [
        function_tool(f, failure_error_function=_tool_error) for f in (remember, recall, forget)
    ]


def _tool_error(ctx: Any, error: Exception) -> str:
    """What the model reads when a tool call fails: engramdb's own message (bad input, a
    quota, a server that is down), never a traceback; other errors stay generic."""
    from ..errors import EngramError

    if isinstance(error, EngramError):
        return f"The memory tool failed: {error}"
    return "An error occurred while running the memory tool. Please try again."


def latest_user_text(items: list[Any]) -> str:
    """The text of the newest user message among SDK input items (``""`` if none)."""
    for item in reversed(items):
        if isinstance(item, str):
            return item
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            return " ".join(p for p in parts if isinstance(p, str))
    return ""


def memory_instructions(
    base: str | Callable[[RunContextWrapper[Any], Agent[Any]], str | Awaitable[str]],
    memory: MemoryLike,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    namespace: str | None = None,
    budget_tokens: int = 800,
    scope: str | None = None,
) -> Callable[[RunContextWrapper[Any], Agent[Any]], Awaitable[str]]:
    """Dynamic instructions for ``Agent(instructions=...)``: ``base`` (a string or the SDK's
    ``(run_context, agent)`` instructions function) followed by ``memory.context(...)`` for
    the run's latest user message, recalled in the scope, within ``budget_tokens``. With
    ``scope`` (a project path, say), that scope's consolidated ``MEMORY.md`` comes first: a
    coding agent starts every session with what past sessions taught.

    Computed again on every run (and every turn of a run), so an agent remembers across
    sessions: ``Agent(instructions=memory_instructions("Be brief.", memory, user_id="ada"))``.
    The memories are fenced and marked as data, not instructions. When nothing relevant is
    stored (or the turn has no user text) the instructions are ``base`` alone.
    """
    _require_agents()
    if not isinstance(budget_tokens, int) or isinstance(budget_tokens, bool) or budget_tokens < 1:
        raise InvalidInputError(f"budget_tokens must be a positive integer, got {budget_tokens!r}")
    if not isinstance(base, str) and not callable(base):
        raise InvalidInputError("base must be a string or an instructions function")
    scoped = _Scoped(memory, user_id=user_id, agent_id=agent_id, namespace=namespace)

    async def instructions(run_context: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        if isinstance(base, str):
            text = base
        else:
            result = base(run_context, agent)
            text = await result if isinstance(result, Awaitable) else result
        query = latest_user_text(list(run_context.turn_input))
        block = await scoped.context(query, budget_tokens, scope) if query.strip() else ""
        return f"{text}\n\n{block}" if block else text

    return instructions


__all__ = ["EngramSession", "latest_user_text", "memory_instructions", "memory_tools"]
