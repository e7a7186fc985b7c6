"""Strands Agents integration: an engramdb-backed ``strands.memory`` store.

>>> from strands import Agent                                             # doctest: +SKIP
>>> from strands.memory import MemoryManager                              # doctest: +SKIP
>>> from engramdb import Memory                                           # doctest: +SKIP
>>> from engramdb.integrations.strands import EngramMemoryStore           # doctest: +SKIP
>>> store = EngramMemoryStore(Memory("./memory.db"), user_id="alice")     # doctest: +SKIP
>>> agent = Agent(model=model, memory_manager=MemoryManager(stores=[store]))  # doctest: +SKIP

The store implements the ``MemoryStore`` protocol of ``strands.memory``:

- ``search`` is engramdb's hybrid recall (full text + vectors), scoped to the store's
  ``user_id`` / ``agent_id``; each entry's metadata carries the memory's id and score.
- ``add`` stores one memory as given (the ``add_memory`` tool, ``MemoryManager.add``).
- ``add_messages`` is the sink of Strands' automatic extraction: the raw conversation goes to
  engramdb's memory manager (:meth:`engramdb.Memory.add_messages` /
  :meth:`engramdb.Client.add_messages`), which extracts with the LLM configured on the
  ``Memory`` (or the server), or stores each message as said when there is none: no extra
  model call on the client.

Re-sent batches are stored once. Strands numbers the messages of an agent from 0 (again for
each new agent), and re-sends a batch with the same numbers after a failed save; the store
keys each message with ``(run_id, seq)``, where ``run_id`` is new each time a ``MemoryManager``
initialises the store for an agent (or fixed by the caller), plus a digest of the message,
and skips messages it already holds. Give each agent its own store (they are cheap; share the
``Memory``): agents sharing one store share its run id and session. Messages go to the
engramdb session ``session_id`` (default ``strands-<run_id>``).

Works embedded (a :class:`engramdb.Memory`) and remote (a :class:`engramdb.Client` of
``engramdb serve``). Strands is imported lazily, when a store is created; without it that
raises :class:`~engramdb.errors.InvalidInputError` naming ``pip install 'engramdb[strands]'``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..client import Client
from ..errors import ConflictError, InvalidInputError
from ..memory import Memory
from ..sessions import Session
from ..types import Hit, format_datetime
from ..validation import check_id

if TYPE_CHECKING:
    from strands.memory import AddMessagesContext, MemoryEntry, SearchOptions
    from strands.memory.extraction.types import ExtractionConfig

INSTALL_HINT = (
    "the Strands integration needs the strands-agents package: pip install 'engramdb[strands]'"
)

MARKER_KEY = "engramdb_strands"
"""The key of the ``{"run_id", "seq"}`` marker each stored message carries in its session."""

DEFAULT_DESCRIPTION = "Long-term memory: facts, preferences and events from past conversations."


def _strands_memory() -> Any:
    from .._extras import require

    return require("strands.memory", "strands", "the Strands integration")


def _text_blocks(message: Mapping[str, Any]) -> list[dict[str, str]]:
    """The text blocks of a Strands message (``{"text": ...}``); other blocks (images,
    documents, tool traffic) are not conversation text and are left out."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, Sequence):
        return []
    return [
        {"text": block["text"]}
        for block in content
        if isinstance(block, Mapping) and isinstance(block.get("text"), str)
        if block["text"].strip()
    ]


class EngramMemoryStore:
    """A ``strands.memory.MemoryStore`` over engramdb, embedded or remote.

    Args:
        memory: a :class:`engramdb.Memory` (embedded) or a :class:`engramdb.Client` (remote;
            the key's namespace).
        name: the store's name in the ``MemoryManager`` (tools target stores by name).
        description: shown to the model in the memory tools' descriptions.
        user_id, agent_id: the scope memories are written to and searched in.
        session_id: the engramdb session the conversation is stored in; default
            ``strands-<run_id>`` (a new session per agent run).
        run_id: keys re-sent messages; default a new id each time a ``MemoryManager``
            initialises the store.
        infer: ``True`` extracts with the model of the Memory (or the server); ``False``
            stores each message as said. ``None`` (default): infer when a model is configured
            (``Memory.llm``; for a ``Client``, unless the server answers
            ``llm_not_configured``).
        max_search_results: results per search when the caller does not say.
        writable: whether the store accepts writes.
        extraction: Strands' automatic extraction for this store (``True``: its defaults,
            every 5 turns; an ``ExtractionConfig``; ``False``: off). Extraction runs through
            :meth:`add_messages`, in engramdb.
    """

    def __init__(
        self,
        memory: Memory | Client,
        *,
        name: str = "engramdb",
        description: str | None = DEFAULT_DESCRIPTION,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        infer: bool | None = None,
        max_search_results: int | None = None,
        writable: bool = True,
        extraction: ExtractionConfig | bool | None = True,
    ) -> None:
        _strands_memory()  # the extra is installed, or a one-line error naming it
        if not isinstance(memory, (Memory, Client)):
            raise InvalidInputError(
                f"memory must be an engramdb Memory or Client, got {type(memory).__name__}"
            )
        if infer is not None and not isinstance(infer, bool):
            raise InvalidInputError(f"infer must be true, false or None, got {infer!r}")
        if isinstance(memory, Memory) and infer is True and memory.llm is None:
            raise InvalidInputError(
                "infer=True needs an LLM on the Memory (Memory(..., llm=...)); "
                "infer=False stores messages as said"
            )
        self.memory = memory
        self.name = name
        self.description = description
        self.user_id = None if user_id is None else check_id("user_id", user_id)
        self.agent_id = None if agent_id is None else check_id("agent_id", agent_id)
        self.session_id = None if session_id is None else check_id("session_id", session_id)
        self._fixed_run_id = run_id is not None
        self.run_id = check_id("run_id", run_id) if run_id is not None else uuid.uuid4().hex
        self.infer = infer
        self.max_search_results = max_search_results
        self.writable = writable
        self.extraction = extraction

    # -- the MemoryStore protocol --------------------------------------------------------
    async def initialize(self) -> None:
        """Called by the ``MemoryManager`` for each agent it serves: the agent numbers its
        messages from 0 again, so a new ``run_id`` starts (unless one was given)."""
        if not self._fixed_run_id:
            self.run_id = uuid.uuid4().hex

    async def search(self, query: str, options: SearchOptions | None = None) -> list[MemoryEntry]:
        """Memories for ``query`` by hybrid recall, best first."""
        limit = (options or {}).get("max_search_results") or self.max_search_results or 3
        hits = await asyncio.to_thread(self._recall, query, limit)
        entry = _strands_memory().MemoryEntry
        return [entry(content=h.memory.content, metadata=_hit_metadata(h)) for h in hits]

    async def add(self, content: str, metadata: Mapping[str, Any] | None = None) -> str:
        """Store ``content`` as one memory (identical content in the scope is stored once);
        returns its id."""
        return await asyncio.to_thread(self._remember, content, dict(metadata or {}))

    async def add_messages(
        self, messages: list[Any], context: AddMessagesContext | None = None
    ) -> int:
        """Hand the conversation to engramdb's memory manager; returns how many messages were
        new (a re-sent message, same ``run_id`` and sequence number, is skipped)."""
        seqs = context.sequence_numbers if context is not None else None
        return await asyncio.to_thread(self._add_messages, list(messages), seqs)

    def get_tools(self) -> list[Any]:
        """No store-specific tools: the manager's ``search_memory`` / ``add_memory`` cover it."""
        return []

    # -- engramdb, off the event loop ----------------------------------------------------
    @property
    def conversation_id(self) -> str:
        """The engramdb session this store writes the conversation to."""
        return self.session_id or f"strands-{self.run_id}"

    def _scope(self) -> dict[str, str]:
        scope = {"user_id": self.user_id, "agent_id": self.agent_id}
        return {key: value for key, value in scope.items() if value is not None}

    def _recall(self, query: str, limit: int) -> list[Hit]:
        filters = self._scope() or None
        return self.memory.recall(query, filters=filters, limit=limit)

    def _remember(self, content: str, metadata: dict[str, Any]) -> str:
        record = self.memory.remember(
            content, metadata=metadata, user_id=self.user_id, agent_id=self.agent_id
        )
        return record.id

    def _stored_markers(self, session_id: str) -> set[tuple[int, str]]:
        """The ``(seq, digest)`` keys of this run's messages already in the session."""
        items = (
            Session(session_id, self.memory.store, namespace=self.memory.namespace).get_items()
            if isinstance(self.memory, Memory)
            else self.memory.get_items(session_id)
        )
        seen: set[tuple[int, str]] = set()
        for item in items:
            marker = item.get(MARKER_KEY)
            if isinstance(marker, Mapping) and marker.get("run_id") == self.run_id:
                seq, digest = marker.get("seq"), marker.get("digest")
                if isinstance(seq, int) and isinstance(digest, str):
                    seen.add((seq, digest))
        return seen

    def _add_messages(self, messages: list[Any], seqs: list[int] | None) -> int:
        if seqs is not None and len(seqs) != len(messages):
            raise InvalidInputError(f"{len(seqs)} sequence numbers for {len(messages)} messages")
        session_id = self.conversation_id
        stored = self._stored_markers(session_id) if seqs is not None else set()
        items: list[dict[str, Any]] = []
        for n, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise InvalidInputError(f"message {n} must be a dict")
            blocks = _text_blocks(message)
            if not blocks:
                continue
            role = message.get("role")
            item: dict[str, Any] = {"role": role if isinstance(role, str) else "user"}
            item["content"] = blocks
            if seqs is not None:
                # a re-sent message has the same number and the same text; the text also
                # keeps apart two agents that share this store (and so a run id)
                key = (seqs[n], _digest(item))
                if key in stored:
                    continue
                stored.add(key)
                item[MARKER_KEY] = {"run_id": self.run_id, "seq": key[0], "digest": key[1]}
            items.append(item)
        self._ingest(session_id, items)
        return len(items)

    def _ingest(self, session_id: str, items: list[dict[str, Any]]) -> None:
        """Store ``items`` in the session and extract what the session holds past its mark
        (also what an earlier, failed call stored but could not extract)."""
        memory = self.memory
        if isinstance(memory, Memory):
            infer = self.infer if self.infer is not None else memory.llm is not None
            memory.add_messages(
                items,
                session_id=session_id,
                user_id=self.user_id,
                agent_id=self.agent_id,
                infer=infer,
            )
            return
        infer = self.infer if self.infer is not None else True
        try:
            self._remote(memory, session_id, items, infer)
        except ConflictError as exc:
            if exc.code != "llm_not_configured" or self.infer is not None:
                raise
            self.infer = False  # nothing was stored: send the same call without a model
            self._remote(memory, session_id, items, False)

    def _remote(
        self, client: Client, session_id: str, items: list[dict[str, Any]], infer: bool
    ) -> None:
        user_id, agent_id = self.user_id, self.agent_id
        if items:
            client.add_messages(
                items, session_id=session_id, user_id=user_id, agent_id=agent_id, infer=infer
            )
        elif client.session_info(session_id) is not None:
            client.extract(session_id, user_id=user_id, agent_id=agent_id, infer=infer)


def _digest(item: Mapping[str, Any]) -> str:
    text = json.dumps([item["role"], item["content"]], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _hit_metadata(hit: Hit) -> dict[str, Any]:
    record = hit.memory
    meta: dict[str, Any] = {"id": record.id, "score": hit.score}
    optional = {
        "user_id": record.user_id,
        "agent_id": record.agent_id,
        "session_id": record.session_id,
    }
    meta.update({key: value for key, value in optional.items() if value is not None})
    if record.tags:
        meta["tags"] = list(record.tags)
    meta["created_at"] = format_datetime(record.created_at)
    if record.metadata:
        meta["metadata"] = record.metadata
    return meta


__all__ = ["INSTALL_HINT", "EngramMemoryStore"]
