"""The Memory facade: remember, recall, forget and learn over any store.

>>> from engramdb import Memory
>>> mem = Memory("./data")                                          # doctest: +SKIP
>>> mem.remember("Ada prefers tea over coffee", user_id="ada", tags=["prefs"])  # doctest: +SKIP
>>> [h.memory.content for h in mem.recall("what does Ada drink?", filters={"user_id": "ada"})]
... # doctest: +SKIP

:class:`Memory` is synchronous; :class:`AsyncMemory` has the same methods as coroutines and
runs them in worker threads.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from . import cursors
from .embed import Embedder, EmbeddingError, Fallback, resolve_embedder
from .embed.chunking import embed_chunked
from .errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from .filters import Filter, normalize_tags, tags_to_merge
from .llm import LLM, resolve_llm
from .search.recall import MAX_LIMIT as MAX_LIMIT
from .search.recall import Mode as Mode
from .search.recall import RecallSettings as RecallSettings
from .search.recall import Retriever
from .search.rerank import Reranker
from .search.vectors import VectorIndex
from .sessions import Session, resolve_store
from .store import Store
from .store.base import MemoryChanges, NewMemory, NewMemoryEvent, NewTriple
from .store.rows import event_rows
from .transfer import ImportReport
from .types import (
    DEFAULT_NAMESPACE,
    BatchErrors,
    EntryError,
    Hit,
    MemoryEvent,
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    Quota,
    Remembered,
    Triple,
    content_hash,
    now_us,
    parse_datetime,
    us_from_datetime,
)
from .validation import MAX_QUERY_CHARS, check_id, check_limit, check_text, encode_json

if TYPE_CHECKING:
    from .manager.context import Context
    from .manager.pipeline import ExtractionReport

log = logging.getLogger("engramdb")

FilterInput = Filter | Mapping[str, Any] | None

MAX_CONTENT_CHARS = 32_000
MAX_METADATA_BYTES = 16_384
MAX_FACT_CHARS = 1000
"""Longest subject, predicate, object or source of a triple."""


@dataclass(frozen=True)
class Page:
    """One page of :meth:`Memory.list`; pass ``next_cursor`` back for the next page."""

    items: list[MemoryRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class ForgetResult:
    """What :meth:`Memory.forget` removed (or, with ``dry_run``, would remove)."""

    ids: list[str]
    dry_run: bool

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass
class _SharedIndex:
    lock: threading.Lock = field(default_factory=threading.Lock)
    index: VectorIndex | None = None
    cursor_key: bytes | None = None


class Memory:
    """Long-term memory over a store: one namespace by default, any namespace per call."""

    def __init__(
        self,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        embedder: Embedder | str | None = "auto",
        settings: RecallSettings | None = None,
        max_content_chars: int = MAX_CONTENT_CHARS,
        max_query_chars: int = MAX_QUERY_CHARS,
        llm: LLM | str | None = None,
        fallback: Fallback = None,
        index_metadata: Sequence[str] = (),
        index_neighbors: bool | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.store = resolve_store(store)
        self.index_metadata: tuple[str, ...] = _index_keys(index_metadata)
        """The metadata keys whose values are full-text indexed (none by default: an id or a
        label kept in metadata does not match queries). Applies to what this memory writes;
        :meth:`reindex` rewrites existing rows."""
        if index_neighbors is not None:
            # a property of what the store writes, so it is the store's (see Store)
            self.store.index_neighbors = bool(index_neighbors)
        self.llm = resolve_llm(llm)
        """The model :meth:`add_messages` and :meth:`extract` use (``"openai:MODEL"``, any
        :class:`~engramdb.llm.LLM`, or ``None``)."""
        self.namespace = check_id("namespace", namespace)
        self.embedder = resolve_embedder(embedder, fallback=fallback)
        """``None`` when recall is text-only (``"auto"`` without ``engramdb[local]``, ``"none"``,
        or ``fallback="text"`` after a failed load)."""
        self.settings = settings or RecallSettings()
        if reranker is not None and not isinstance(reranker, Reranker):
            raise InvalidInputError(
                f"reranker must have a rerank(query, documents) method and a model name, "
                f"got {type(reranker).__name__}"
            )
        self.reranker = reranker
        """Reorders the best ``settings.rerank_depth`` candidates of every recall
        (:mod:`engramdb.search.rerank`); ``None`` (the default): no reranking."""
        self.max_content_chars = max_content_chars
        self.max_query_chars = max_query_chars
        self._locked = False
        self._shared = _SharedIndex()  # views made by scoped() share it

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def ping(self) -> None:
        """Raise :class:`~engramdb.errors.StoreUnavailableError` if the store cannot serve
        requests now (SQLite: its database file was deleted or replaced; PostgreSQL: no
        connection)."""
        self.store.ping()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scoped(self, namespace: str) -> Memory:
        """A view of this memory locked to one namespace, sharing the store, the embedder and
        the vector index. Passing any other ``namespace=`` to the view raises: the server hands
        each request such a view, so no route can reach another tenant's data."""
        view = copy.copy(self)
        view.namespace = check_id("namespace", namespace)
        view._locked = True
        return view

    @property
    def _retriever(self) -> Retriever:
        """The recall pipeline over this memory's store, embedder and vector index (a light
        object: made per call, so a changed attribute is always seen)."""
        return Retriever(
            self.store,
            self.embedder,
            self._vector_index,
            max_query_chars=self.max_query_chars,
            reranker=self.reranker,
        )

    def _ns(self, namespace: str | None) -> str:
        if namespace is None or namespace == self.namespace:
            return self.namespace
        if self._locked:
            raise InvalidInputError(f"this view is bound to namespace {self.namespace!r}")
        return check_id("namespace", namespace)

    # -- cursors ---------------------------------------------------------------------------
    def seal_cursor(self, kind: str, payload: bytes, *, namespace: str | None = None) -> str:
        """An opaque page cursor for ``payload`` (see :mod:`engramdb.cursors`): encrypted and
        signed with the store's secret, valid only in this namespace for this ``kind``."""
        return cursors.seal(self._cursor_key(), self._ns(namespace), kind, payload)

    def open_cursor(self, kind: str, cursor: object, *, namespace: str | None = None) -> bytes:
        """The payload of a cursor made by :meth:`seal_cursor` in this namespace;
        :class:`InvalidInputError` for anything else (another namespace's cursor included)."""
        return cursors.unseal(self._cursor_key(), self._ns(namespace), kind, cursor)

    def _cursor_key(self) -> bytes:
        shared = self._shared
        if shared.cursor_key is None:
            shared.cursor_key = self.store.secret("cursor")
        return shared.cursor_key

    # -- writing ---------------------------------------------------------------------------
    def remember(
        self,
        content: str,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        importance: float = 0.5,
        occurred_at: datetime | str | None = None,
        quota: Quota | None = None,
    ) -> MemoryRecord:
        """Store one memory. Identical content in the same scope (namespace, user, agent,
        session) is stored once: the existing memory is returned, with any new tags merged
        into it (see :meth:`remember_results` to tell created from merged); a ``quota`` is
        checked as in :meth:`remember_many`."""
        entry = {
            "content": content,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "tags": tags,
            "metadata": metadata,
            "importance": importance,
            "occurred_at": occurred_at,
        }
        return self.remember_many([entry], namespace=namespace, quota=quota)[0]

    @overload
    def remember_many(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: Literal["raise"] = "raise",
    ) -> list[MemoryRecord]: ...

    @overload
    def remember_many(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: BatchErrors,
    ) -> list[MemoryRecord | EntryError]: ...

    def remember_many(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: BatchErrors = "raise",
    ) -> list[MemoryRecord] | list[MemoryRecord | EntryError]:
        """Store a batch in one transaction. Entries take :meth:`remember`'s arguments.

        ``errors="raise"`` (the default): every entry is validated first; one bad entry
        rejects the batch (:class:`~engramdb.errors.InvalidInputError` naming it) and nothing
        is written. ``errors="skip"``: the good entries are stored and each bad one is
        reported in its place as an :class:`~engramdb.types.EntryError` (``index``, ``code``,
        ``message``); the result has one element per entry, in order.

        With a ``quota``, the batch is checked against it inside the same transaction (only
        memories actually added count; identical ones already stored do not): if the
        namespace would exceed ``quota.max_memories``, nothing is stored and
        :class:`~engramdb.errors.QuotaExceededError` is raised, whatever ``errors`` says.
        Concurrent writers cannot overrun the limit together. Returns the memories as stored
        (see :meth:`remember_results` for what each did).
        """
        results = self.remember_results(entries, namespace=namespace, quota=quota, errors=errors)
        return [r if isinstance(r, EntryError) else r.memory for r in results]

    @overload
    def remember_results(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: Literal["raise"] = "raise",
    ) -> builtins.list[Remembered]: ...

    @overload
    def remember_results(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: BatchErrors,
    ) -> builtins.list[Remembered | EntryError]: ...

    def remember_results(
        self,
        entries: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        quota: Quota | None = None,
        errors: BatchErrors = "raise",
    ) -> builtins.list[Remembered] | builtins.list[Remembered | EntryError]:
        """:meth:`remember_many`, saying for each entry whether it was ``created``, or was
        identical to a memory of the same scope (namespace, user, agent, session) and
        ``merged`` its new tags into it (a new version; the prior one is in :meth:`history`),
        or found it ``existing`` with every tag already. Content, metadata and importance of
        an identical memory are kept as first stored. ``errors`` as in :meth:`remember_many`
        (with ``"skip"``, an :class:`~engramdb.types.EntryError` stands for each bad entry)."""
        ns = self._ns(namespace)
        if errors not in ("raise", "skip"):
            raise InvalidInputError(f"errors must be 'raise' or 'skip', got {errors!r}")
        drafts: builtins.list[NewMemory] = []
        failed: builtins.list[EntryError] = []
        for n, entry in enumerate(entries):
            try:
                drafts.append(self._draft(n, entry))
            except InvalidInputError as exc:
                if errors == "raise":
                    raise
                code = "payload_too_large" if isinstance(exc, PayloadTooLargeError) else None
                failed.append(EntryError(n, code or "invalid_input", str(exc)))
        stored = self._insert(ns, drafts, quota)
        if not failed:
            return stored
        out: builtins.list[Remembered | EntryError] = []
        good = iter(stored)
        bad = {e.index: e for e in failed}
        for n in range(len(stored) + len(failed)):
            out.append(bad[n] if n in bad else next(good))
        return out

    def _insert(
        self, ns: str, drafts: builtins.list[NewMemory], quota: Quota | None
    ) -> builtins.list[Remembered]:
        """Store validated drafts in one transaction (see :meth:`remember_results`)."""
        if not drafts:
            return []
        drafts = self._with_embeddings(drafts)  # before the transaction: embedding is slow
        if quota is None:  # the insert is one transaction of its own
            stored = self.store.memory_insert(ns, drafts)
        else:
            with self.store.atomic():
                stored = self.store.memory_insert(ns, drafts)
                added = sum(1 for _, created in stored if created)
                self.store.quota_check(ns, quota, memories=added, facts=0)
        out: builtins.list[Remembered] = []
        fresh: dict[str, MemoryRecord] = {}
        for draft, (record, created) in zip(drafts, stored, strict=True):
            if created:
                out.append(Remembered(record, "created"))
                continue
            # the store returns the record before merging: what it lacked was merged
            merged = tags_to_merge(record.tags, draft.tags)
            if not merged:
                out.append(Remembered(record, "existing"))
                continue
            if record.id not in fresh:
                fresh[record.id] = self.store.memory_get(ns, record.id) or record
            out.append(Remembered(record, "merged", merged))
        # every result shows the memory as it is now (several entries may have merged into it)
        return [
            dataclass_replace(r, memory=fresh.get(r.memory.id, r.memory)) if not r.created else r
            for r in out
        ]

    _ENTRY_FIELDS = frozenset(
        {
            "content",
            "user_id",
            "agent_id",
            "session_id",
            "tags",
            "metadata",
            "importance",
            "occurred_at",
            "id",
            "created_at",
        }
    )

    def _draft(self, n: int, entry: Mapping[str, Any]) -> NewMemory:
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"entry {n} must be a dict, got {type(entry).__name__}")
        unknown = sorted(set(entry) - self._ENTRY_FIELDS)
        if unknown:
            raise InvalidInputError(f"entry {n}: unknown field(s) {', '.join(map(repr, unknown))}")
        where = f"entry {n}: " if n else ""
        try:
            content = self._content(entry.get("content"))
            metadata = _metadata(entry.get("metadata"))
            scope: dict[str, Any] = {
                name: check_id(name, entry[name]) if entry.get(name) is not None else None
                for name in ("user_id", "agent_id", "session_id")
            }
            occurred = entry.get("occurred_at")
            created = entry.get("created_at")
            memory_id = entry.get("id")
            if memory_id is not None:
                check_id("id", memory_id)
            return NewMemory(
                id=memory_id or new_id("mem"),
                content=content,
                content_hash=content_hash(content),
                tags=normalize_tags(entry.get("tags") or ()),
                metadata=metadata,
                importance=_importance(entry.get("importance", 0.5)),
                occurred_at=(
                    us_from_datetime(parse_datetime("occurred_at", occurred))
                    if occurred is not None
                    else None
                ),
                search_text=_metadata_text(metadata, self.index_metadata),
                created_at=(
                    us_from_datetime(parse_datetime("created_at", created))
                    if created is not None
                    else None
                ),
                **scope,
            )
        except InvalidInputError as exc:  # same kind (e.g. too large: 413), says which entry
            raise type(exc)(f"{where}{exc}") from None

    def _content(self, content: object) -> str:
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError("content is not valid UTF-8") from None
        if not isinstance(content, str):
            raise InvalidInputError(f"content must be a string, got {type(content).__name__}")
        content = content.strip()
        if not content:
            raise InvalidInputError("content must not be empty or whitespace")
        if len(content) > self.max_content_chars:
            raise PayloadTooLargeError(
                f"content is {len(content):,} characters; the limit is {self.max_content_chars:,}"
                " (split it, or raise max_content_chars)"
            )
        if "\x00" in content:
            raise InvalidInputError("content must not contain NUL characters")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError("content is not valid Unicode (a lone surrogate)") from None
        return content

    def _with_embeddings(self, drafts: list[NewMemory]) -> list[NewMemory]:
        embedder = self.embedder
        if embedder is None or not drafts:
            return drafts
        cached = self.store.embedding_cache(embedder.model, [d.content_hash for d in drafts])
        todo = list(dict.fromkeys(d.content for d in drafts if d.content_hash not in cached))
        if todo:
            try:
                embedded = embed_chunked(embedder, todo)  # a long text: a vector per chunk
            except EmbeddingError as exc:
                # keep the text; `engramdb reembed` fills the gap once the embedder is back
                log.warning("storing %d memories without embeddings: %s", len(todo), exc)
                return drafts
            for text, vectors in zip(todo, embedded, strict=True):
                cached[content_hash(text)] = vectors
        return [
            _replace(
                d,
                embedding=cached[d.content_hash][0],
                embedding_spans=cached[d.content_hash][1],
                embedding_model=embedder.model,
            )
            for d in drafts
        ]

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        namespace: str | None = None,
    ) -> MemoryRecord:
        """Change a memory; the prior version is kept (see :meth:`history`)."""
        ns = self._ns(namespace)
        check_id("memory_id", memory_id)
        changes: dict[str, Any] = {}
        if content is not None:
            text = self._content(content)
            changes.update(content=text, content_hash=content_hash(text))
            if self.embedder is not None:
                try:
                    ((vectors, spans),) = embed_chunked(self.embedder, [text])
                    changes.update(
                        embedding=vectors,
                        embedding_spans=spans,
                        embedding_model=self.embedder.model,
                    )
                except EmbeddingError as exc:
                    log.warning("updating %s without an embedding: %s", memory_id, exc)
        if tags is not None:
            changes["tags"] = normalize_tags(tags)
        if metadata is not None:
            meta = _metadata(metadata)
            changes.update(metadata=meta, search_text=_metadata_text(meta, self.index_metadata))
        if importance is not None:
            changes["importance"] = _importance(importance)
        if not changes:
            raise InvalidInputError("nothing to update: pass content, tags, metadata or importance")
        record = self.store.memory_update(ns, memory_id, MemoryChanges(**changes))
        if record is None:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {ns!r}")
        return record

    def forget(
        self,
        memory_id: str | None = None,
        *,
        filters: FilterInput = None,
        all: bool = False,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> ForgetResult:
        """Remove one memory by id, or every memory matching a *scoped* filter.

        Removal is complete: text index, vectors, tags, version history, and a current fact
        the memory was made for (see :meth:`learn`). A filter must name a scope - user, agent,
        session, tags or metadata; ``since``/``until`` only narrow a scope, they are not one -
        so forgetting a whole namespace by accident is refused. ``all=True`` says "the whole
        namespace (within ``since``/``until`` if given) on purpose". ``dry_run`` lists what
        would go.
        """
        ns = self._ns(namespace)
        if not isinstance(all, bool) or not isinstance(dry_run, bool):
            raise InvalidInputError("all and dry_run must be booleans")
        if memory_id is not None and (filters is not None or all):
            raise InvalidInputError("pass either a memory id or filters, not both")
        if memory_id is None and filters is None and not all:
            raise InvalidInputError("pass either a memory id, filters, or all=True")
        if memory_id is not None:
            check_id("memory_id", memory_id)
            if self.store.memory_get(ns, memory_id) is None:
                raise NotFoundError(f"no memory {memory_id!r} in namespace {ns!r}")
            ids = [memory_id]
        else:
            flt = Filter.parse(filters)
            if not flt.has_scope and not all:
                raise InvalidInputError(
                    "refusing to forget without a scope: give user_id, agent_id, session_id, "
                    "tags or metadata (since/until only narrow a scope), or all=True to forget "
                    "the whole namespace"
                )
            ids = self.store.memory_ids(ns, flt, limit=None)
        if dry_run:
            return ForgetResult(ids, True)
        return ForgetResult(_in_batches(ids, partial(self.store.memory_delete, ns)), False)

    # -- reading ---------------------------------------------------------------------------
    def get(self, memory_id: str, *, namespace: str | None = None) -> MemoryRecord:
        """One memory by id; :class:`NotFoundError` if absent (or in another namespace)."""
        ns = self._ns(namespace)
        record = self.store.memory_get(ns, check_id("memory_id", memory_id))
        if record is None:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {ns!r}")
        return record

    def history(
        self, memory_id: str, *, namespace: str | None = None, limit: int | None = None
    ) -> list[MemoryVersion]:
        """Prior versions of a memory, oldest first (the current one is :meth:`get`): the
        newest ``limit`` of them (an integer from 1 to :data:`MAX_LIMIT`), or all with
        ``None`` (the default)."""
        ns = self._ns(namespace)
        count = check_limit(limit, allow_none=True)
        self.get(memory_id, namespace=ns)
        versions = self.store.memory_history(ns, memory_id)
        return versions if count is None else versions[-count:]

    # -- invalidation and decision records (the memory manager) --------------------------
    def invalidate(
        self,
        memory_id: str,
        *,
        reason: str | None = None,
        event: NewMemoryEvent | None = None,
        namespace: str | None = None,
    ) -> MemoryRecord:
        """Invalidate a memory: from now on recall (every lane) and :meth:`list` leave it
        out; :meth:`get`, :meth:`history` and :meth:`events` still show it (with
        ``invalidated_at`` set) and :meth:`restore` brings it back. It still counts as stored
        (stats, quotas); :meth:`forget` removes it for good.

        An ``invalidate`` event is recorded in the same transaction (``event`` supplies its
        model, prompt version and provenance; its memory id and action are set here).
        Invalidating an invalidated memory changes and records nothing."""
        return self._set_invalidated(memory_id, "invalidate", reason, event, namespace)

    def restore(
        self,
        memory_id: str,
        *,
        reason: str | None = None,
        event: NewMemoryEvent | None = None,
        namespace: str | None = None,
    ) -> MemoryRecord:
        """Undo :meth:`invalidate` (recording a ``restore`` event); a live memory is returned
        unchanged, with nothing recorded."""
        return self._set_invalidated(memory_id, "restore", reason, event, namespace)

    def _set_invalidated(
        self,
        memory_id: str,
        action: Literal["invalidate", "restore"],
        reason: str | None,
        event: NewMemoryEvent | None,
        namespace: str | None,
    ) -> MemoryRecord:
        ns = self._ns(namespace)
        check_id("memory_id", memory_id)
        if reason is not None and not isinstance(reason, str):
            raise InvalidInputError(f"reason must be a string, got {type(reason).__name__}")
        base = event or NewMemoryEvent(memory_id, action)
        record = dataclass_replace(
            base, memory_id=memory_id, action=action, reason=reason or base.reason
        )
        event_rows(ns, [record], 0)  # bad input fails before anything is written
        with self.store.atomic():
            before = self.store.memory_get(ns, memory_id)
            if before is None:
                raise NotFoundError(f"no memory {memory_id!r} in namespace {ns!r}")
            if before.invalidated == (action == "invalidate"):
                return before
            if action == "invalidate":
                after = self.store.memory_invalidate(ns, memory_id, reason=record.reason)
            else:
                after = self.store.memory_restore(ns, memory_id)
            assert after is not None
            self.store.memory_event_add(ns, [record])
        return after

    def events(self, memory_id: str, *, namespace: str | None = None) -> builtins.list[MemoryEvent]:
        """Why a memory exists: the decisions recorded about it (added, updated, invalidated,
        restored, ...; by which model and prompt, from which session items), oldest first.
        :class:`NotFoundError` if there is no such memory."""
        ns = self._ns(namespace)
        self.get(memory_id, namespace=ns)
        return self.store.memory_events(ns, memory_id)

    def record_events(
        self, events: Sequence[NewMemoryEvent], *, namespace: str | None = None
    ) -> int:
        """Record decisions about memories (see :meth:`events`), in one transaction; an event
        for a memory not in the namespace is not recorded. Returns how many were. Call it
        inside ``memory.store.atomic()`` with the write it explains to commit both at once."""
        ns = self._ns(namespace)
        return self.store.memory_event_add(ns, list(events))

    def list(
        self,
        filters: FilterInput = None,
        *,
        namespace: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        include_invalidated: bool = False,
    ) -> Page:
        """Memories in the order they were stored, a page at a time (stable under inserts).
        ``next_cursor`` is opaque and valid in this namespace only. Invalidated memories (see
        :meth:`invalidate`) are left out unless ``include_invalidated``."""
        ns = self._ns(namespace)
        page = check_limit(limit) or 0
        after = None
        if cursor is not None:
            raw = self.open_cursor("memories", cursor, namespace=ns)
            if len(raw) != 8:
                raise InvalidInputError("cursor must be a next_cursor value returned by list")
            after = int.from_bytes(raw, "big")
        items, last = self.store.memory_list(
            ns,
            Filter.parse(filters),
            after=after,
            limit=page,
            include_invalidated=bool(include_invalidated),
        )
        next_cursor = (
            self.seal_cursor("memories", last.to_bytes(8, "big"), namespace=ns)
            if last is not None
            else None
        )
        return Page(items, next_cursor)

    def stats(self, *, namespace: str | None = None) -> MemoryStats:
        """Counts of memories, embeddings, triples and sessions in a namespace."""
        return self.store.memory_stats(self._ns(namespace))

    def reindex(self, *, namespace: str | None = None) -> int:
        """Rewrite the full-text index of every memory of a namespace under this memory's
        settings: metadata values of the :attr:`index_metadata` keys only, and the
        neighbours' text or none (``index_neighbors``). Needed after changing either for
        existing data; content, tags and vectors are untouched. Returns the memories
        reindexed."""
        ns = self._ns(namespace)
        done, after = 0, None
        while True:
            items, after = self.store.memory_list(
                ns, Filter(), after=after, limit=500, include_invalidated=True
            )
            texts = {r.id: _metadata_text(r.metadata, self.index_metadata) for r in items}
            done += self.store.memory_reindex(ns, texts)
            if after is None or not items:
                return done

    def recall(
        self,
        query: str,
        *,
        filters: FilterInput = None,
        tags: Sequence[str] | None = None,
        limit: int = 10,
        mode: Mode = "hybrid",
        explain: bool = False,
        namespace: str | None = None,
        settings: RecallSettings | None = None,
        min_score: float | None = 0.0,
        as_of: datetime | str | None = None,
    ) -> builtins.list[Hit]:
        """Memories ranked for ``query``: full text + vectors (+ tags), fused.

        ``limit`` is an integer from 1 to :data:`MAX_LIMIT` (anything else:
        :class:`~engramdb.errors.InvalidInputError`). Only hits scoring at least
        ``min_score`` come back, and never one with no matching signal (no lane matched it:
        no query term, no tag, no positive similarity; and no boost gave it a score) unless
        ``min_score=None``, which returns every candidate.

        Any string is a valid query. Filters are applied inside each lane's candidate query,
        so a filter never empties a list that was truncated first; ``tags`` adds exact tags to
        ``filters["tags"]`` (every one must be present). ``explain=True`` attaches each lane's
        rank and score to every hit.

        Tag semantics: a ``key:value`` token of the query (``session:abc``) is an exact tag,
        never words: memories carrying it rank first, the rest of the query ranks the others.
        A query made only of such tokens — or an empty query with ``tags`` — is a *tag
        lookup*: exactly the memories carrying every tag (and matching the filters), newest
        first, with no full-text or vector hits mixed in.

        Time in the query ("last weekend", "in May 2023", "two weeks ago", "when did I first
        …") is read against ``as_of`` (a datetime or ISO 8601 string; default: now) and
        boosts the memories that happened then (``settings.time_mode``); ``explain`` shows
        the window under ``"time"``.
        """
        reference = parse_datetime("as_of", as_of) if as_of is not None else None
        return self._retriever.recall(
            self._ns(namespace),
            query,
            filters=filters,
            tags=tags,
            limit=limit,
            mode=mode,
            explain=explain,
            settings=settings or self.settings,
            min_score=min_score,
            as_of=reference,
        )

    def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        budget_tokens: int = 800,
        limit: int = 20,
        namespace: str | None = None,
        scope: str | None = None,
    ) -> Context:
        """The memories recalled for ``query`` as a block to put into a prompt: fenced, marked
        as data (not instructions), most relevant first, each with its date and source
        session, within ``budget_tokens`` (estimated as characters / 4); plus the ids shown.
        With ``scope``, the scope's consolidated ``MEMORY.md`` comes first (whole lines, at
        most two thirds of the budget) and the recalled memories share the rest.
        See :func:`engramdb.manager.context.build_context`."""
        from .manager.context import build_context  # the manager package sits beside Memory

        owner = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
        filters = {key: value for key, value in owner.items() if value is not None}
        hits = self.recall(query, filters=filters or None, limit=limit, namespace=namespace)
        if scope is None:
            return build_context(hits, budget_tokens=budget_tokens)
        from .consolidate.scope import read_memory_md
        from .manager.context import with_memory_md

        memory_md = read_memory_md(self, scope, namespace=namespace)
        return with_memory_md(memory_md, hits, scope=scope, budget_tokens=budget_tokens)

    # -- the memory manager: conversation in, memories out ---------------------------------
    def add_messages(
        self,
        messages: Iterable[dict[str, Any]],
        *,
        session_id: str,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
        quota: Quota | None = None,
        namespace: str | None = None,
    ) -> ExtractionReport:
        """Store ``messages`` in the session, then turn what the session says into memories.

        With ``infer`` (the default) the LLM extracts facts, preferences, events and plans from
        every item past the session's high-water mark (so nothing said earlier is skipped and
        nothing is extracted twice), decides add / update / delete / none for each against the
        most similar memories of the same user and agent, and applies the decisions, recording
        each as an event (see :meth:`events`). ``infer=False`` stores each message as said
        (deduplicated). ``dry_run`` decides without applying or moving the mark. Returns
        what was decided and applied; the model's errors propagate after the messages are
        stored (a later call or the :class:`~engramdb.manager.MemoryManager` retries them)."""
        ns = self._ns(namespace)
        self._llm_for(infer)
        Session(check_id("session_id", session_id), self.store, namespace=ns).add_items(
            builtins.list(messages)
        )
        return self.extract(
            session_id,
            user_id=user_id,
            agent_id=agent_id,
            infer=infer,
            dry_run=dry_run,
            quota=quota,
            namespace=ns,
        )

    def extract(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        infer: bool = True,
        dry_run: bool = False,
        quota: Quota | None = None,
        namespace: str | None = None,
    ) -> ExtractionReport:
        """Extract memories from the session's items past its high-water mark (see
        :meth:`add_messages`), window by window, under the session's extraction lease."""
        from .manager.pipeline import Pipeline, extract_session

        ns = self._ns(namespace)
        pipeline = Pipeline(
            self,
            self._llm_for(infer),
            namespace=ns,
            user_id=user_id,
            agent_id=agent_id,
            quota=quota,
        )
        return extract_session(pipeline, check_id("session_id", session_id), dry_run=dry_run)

    def _llm_for(self, infer: bool) -> LLM | None:
        if not isinstance(infer, bool):
            raise InvalidInputError(f"infer must be true or false, got {infer!r}")
        if infer and self.llm is None:
            raise InvalidInputError(
                "extraction needs an LLM: Memory(..., llm='openai:MODEL') or ENGRAMDB_LLM_MODEL"
                " with an OpenAI-compatible endpoint; infer=False stores messages as said"
            )
        return self.llm if infer else None

    def _vector_index(self) -> VectorIndex:
        assert self.embedder is not None
        shared = self._shared
        with shared.lock:
            if shared.index is None:
                shared.index = VectorIndex(self.store, self.embedder.model, self.embedder.dim)
            return shared.index

    # -- knowledge triples -----------------------------------------------------------------
    def learn(
        self,
        subject: str,
        predicate: str,
        object: str,
        *,
        confidence: float = 1.0,
        source: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
        single_valued: bool = False,
        namespace: str | None = None,
        quota: Quota | None = None,
    ) -> Triple:
        """Store a fact. With ``single_valued=True`` a new object for the same subject and
        predicate closes the current fact's validity (kept, visible with ``as_of``).

        ``valid_from`` is when the fact became true (default: now). ``valid_to`` records a
        closed interval, a fact that was true until then ("Ada lived in Paris from 2015 to
        2019"): it must come after ``valid_from``, it supersedes nothing (so it cannot be
        ``single_valued``), and like a superseded fact it is found with ``as_of`` inside the
        interval or ``include_history``, not among the current facts. Learning the same
        interval again returns the stored fact.

        The fact, the memory that makes it searchable, and the removal of superseded facts'
        memories are one transaction. With a ``quota``, a new fact counts toward
        ``quota.max_facts`` and its memory toward ``quota.max_memories``, checked inside that
        transaction (:class:`~engramdb.errors.QuotaExceededError`: nothing is stored)."""
        ns = self._ns(namespace)
        parts = {
            name: _triple_part(name, value)
            for name, value in (("subject", subject), ("predicate", predicate), ("object", object))
        }
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, (int, float))
            or not (0.0 <= confidence <= 1.0)
        ):
            shown = f"{confidence!r}"[:40]
            raise InvalidInputError(f"confidence must be a number from 0 to 1, got {shown}")
        if source is not None and not isinstance(source, str):
            raise InvalidInputError("source must be a string")
        if source is not None and len(check_text("source", source)) > MAX_FACT_CHARS:
            raise InvalidInputError(f"source is longer than {MAX_FACT_CHARS} characters")
        start = (
            us_from_datetime(parse_datetime("valid_from", valid_from))
            if valid_from is not None
            else now_us()
        )
        end: int | None = None
        if valid_to is not None:
            end = us_from_datetime(parse_datetime("valid_to", valid_to))
            if end <= start:
                raise InvalidInputError("valid_to must be after valid_from")
            if single_valued:
                raise InvalidInputError(
                    "a fact with valid_to (a closed interval) supersedes nothing: "
                    "leave out single_valued"
                )
        fact_id = new_id("fact")
        # the memory that makes the fact searchable through recall, embedded before the
        # transaction (used only if the fact is new)
        text = f"{parts['subject']} {parts['predicate']} {parts['object']}"
        drafts = self._with_embeddings(
            [
                self._draft(
                    0, {"content": text, "tags": ["fact"], "metadata": {"triple_id": fact_id}}
                )
            ]
        )
        # one unit of work: the fact, its memory, the superseded facts' memories going, and
        # the quota check commit or roll back together
        with self.store.atomic():
            triple, superseded, created = self.store.triple_insert(
                ns,
                NewTriple(
                    fact_id,
                    parts["subject"],
                    parts["predicate"],
                    parts["object"],
                    float(confidence),
                    source,
                    start,
                    bool(single_valued),
                    end,
                ),
            )
            if created:
                (record, made), *_ = self.store.memory_insert(ns, drafts)
                self.store.triple_set_memory(ns, triple.id, record.id)
                stale = self.store.triple_memory_ids(ns, [t.id for t in superseded])
                gone = self.store.memory_delete(ns, stale) if stale else []
                if quota is not None:
                    self.store.quota_check(ns, quota, memories=int(made) - len(gone), facts=1)
        return triple

    def facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        as_of: datetime | str | None = None,
        include_history: bool = False,
        limit: int = 100,
        namespace: str | None = None,
    ) -> builtins.list[Triple]:
        """Facts matching a pattern (``None`` matches anything): the current ones, those valid
        at ``as_of``, or with ``include_history`` every version."""
        ns = self._ns(namespace)
        return self.store.triple_query(
            ns,
            subject=_triple_part("subject", subject) if subject is not None else None,
            predicate=_triple_part("predicate", predicate) if predicate is not None else None,
            object=_triple_part("object", object) if object is not None else None,
            as_of=us_from_datetime(parse_datetime("as_of", as_of)) if as_of is not None else None,
            include_history=include_history,
            limit=check_limit(limit) or 0,
        )

    def forget_fact(self, fact_id: str, *, namespace: str | None = None) -> ForgetResult:
        """Remove one fact (one version: a superseded fact's history is rows of its own) and
        the memory :meth:`learn` made to keep it searchable. :class:`NotFoundError` if absent."""
        ns = self._ns(namespace)
        check_id("fact_id", fact_id)
        removed = self.store.triple_delete(ns, [fact_id], scrub=True)
        if not removed:
            raise NotFoundError(f"no fact {fact_id!r} in namespace {ns!r}")
        return ForgetResult(removed, False)

    def forget_facts(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> ForgetResult:
        """Remove every fact matching a pattern - current and superseded versions alike - with
        the memories that made them searchable. The pattern never widens: at least one of
        ``subject``, ``predicate`` and ``object`` is required (an empty pattern is refused).
        ``dry_run`` lists what would go."""
        ns = self._ns(namespace)
        if not isinstance(dry_run, bool):
            raise InvalidInputError("dry_run must be a boolean")
        if subject is None and predicate is None and object is None:
            raise InvalidInputError(
                "refusing to forget facts without a pattern: give subject, predicate or object"
            )
        ids = self.store.triple_ids(
            ns,
            subject=_triple_part("subject", subject) if subject is not None else None,
            predicate=_triple_part("predicate", predicate) if predicate is not None else None,
            object=_triple_part("object", object) if object is not None else None,
        )
        if dry_run:
            return ForgetResult(ids, True)
        return ForgetResult(_in_batches(ids, partial(self.store.triple_delete, ns)), False)

    def neighbors(
        self,
        entity: str,
        *,
        depth: int = 1,
        as_of: datetime | str | None = None,
        namespace: str | None = None,
    ) -> builtins.list[Triple]:
        """Facts reachable from ``entity`` within ``depth`` hops (either direction)."""
        ns = self._ns(namespace)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
            raise InvalidInputError("depth must be an integer from 1 to 5")
        seen: dict[str, Triple] = {}
        frontier = {_triple_part("entity", entity).casefold()}
        visited: set[str] = set()
        for _ in range(depth):
            next_frontier: set[str] = set()
            for node in frontier - visited:
                visited.add(node)
                found = self.facts(node, as_of=as_of, limit=MAX_LIMIT, namespace=ns)
                found += self.facts(object=node, as_of=as_of, limit=MAX_LIMIT, namespace=ns)
                for t in found:
                    seen.setdefault(t.id, t)
                    next_frontier |= {t.subject.casefold(), t.object.casefold()}
            frontier = next_frontier
        return sorted(seen.values(), key=lambda t: (t.valid_from, t.id))

    # -- maintenance -----------------------------------------------------------------------
    def reembed(
        self, *, batch_size: int = 256, progress: Callable[[int], None] | None = None
    ) -> int:
        """Embed every memory that lacks a vector from the current embedder. Returns the count."""
        if self.embedder is None:
            raise InvalidInputError("reembed needs an embedder")
        done, after = 0, 0
        while True:
            rows = self.store.memory_without_embedding(
                self.embedder.model, after=after, limit=batch_size
            )
            if not rows:
                return done
            embedded = embed_chunked(self.embedder, [content for _, content in rows])
            self.store.memory_set_embeddings(
                [
                    (rowid, self.embedder.model, vectors, spans)
                    for (rowid, _), (vectors, spans) in zip(rows, embedded, strict=True)
                ]
            )
            done += len(rows)
            after = rows[-1][0]
            if progress is not None:
                progress(len(rows))

    def export(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        with_vectors: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Everything of a namespace (or, with ``all_namespaces``, of every namespace) as the
        records of an export file, read from the store page by page: a header, then memories
        with their version history, facts with their validity, sessions with their items, and
        an end record. ``with_vectors`` includes the embeddings (the file then grows by about
        4 bytes × dimensions per memory; without them an import embeds the text again).
        The format is described in docs/export-format.md and :mod:`engramdb.transfer`."""
        from .transfer import export_records

        if all_namespaces:
            if self._locked:
                raise InvalidInputError(f"this view is bound to namespace {self.namespace!r}")
            namespaces = self.store.export_namespaces()
        else:
            namespaces = [self._ns(namespace)]
        return export_records(self, namespaces, with_vectors=with_vectors)

    def export_file(
        self,
        path: str | Path | IO[bytes],
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        with_vectors: bool = False,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> dict[str, int]:
        """Write :meth:`export` to a JSON Lines file (a path, or a binary file object such as
        ``sys.stdout.buffer``); returns the count per record type. ``progress("exporting",
        done, total)`` follows the memories, facts, sessions and session items written (as
        :func:`engramdb.consolidate.consolidate` reports its steps)."""
        from .transfer import COUNTED, write_export

        records = self.export(
            namespace=namespace, all_namespaces=all_namespaces, with_vectors=with_vectors
        )
        tick: Callable[[str], None] | None = None
        if progress is not None:
            report = progress
            every = self.store.export_namespaces
            namespaces = every() if all_namespaces else [self._ns(namespace)]
            total = 0
            for ns in namespaces:
                s = self.stats(namespace=ns)
                total += s.memories + s.triples + s.sessions + s.session_items
            done = 0
            report("exporting", 0, total)

            def tick(kind: str) -> None:
                nonlocal done
                if kind in COUNTED:
                    done += 1
                    report("exporting", done, total)

        if not isinstance(path, (str, Path)):
            return write_export(records, path, progress=tick)
        with Path(path).open("wb") as out:
            return write_export(records, out, progress=tick)

    def import_records(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        batch_size: int = 500,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> ImportReport:
        """Import the records of an export (as :meth:`export` yields them, header first) or,
        for files written before the versioned format, plain memory dicts. Idempotent: ids
        are kept and what is already there is skipped, so importing the same records twice
        leaves the same database. Records are consumed as they come (an iterator is never
        read ahead by more than ``batch_size``), validated and written a batch at a time;
        memories are embedded in batches of 64. ``progress("importing", done, None)``
        follows the records stored.

        A one-namespace export goes into ``namespace`` (default: this memory's); a file of
        several namespaces needs ``all_namespaces=True`` and restores each into its own."""
        from .transfer import import_records

        return import_records(
            self,
            enumerate(records, 1),
            namespace=namespace,
            all_namespaces=all_namespaces,
            batch_size=batch_size,
            progress=_counter(progress, "importing", None),
        )

    def import_file(
        self,
        path: str | Path | IO[bytes],
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        batch_size: int = 500,
        progress: Callable[[str, int, int | None], None] | None = None,
        quota: Quota | None = None,
    ) -> ImportReport:
        """Import an export file (see :meth:`import_records`): a path, or a seekable binary
        file object. It is streamed line by line, never read whole, so memory stays bounded
        whatever its size. The whole file is checked first, so a malformed line (named by its
        number) imports nothing; then it is read again and written.

        With a ``quota`` (the server passes the key's), the writing pass is one transaction
        and the memories and facts it created are checked against the quota inside it, as
        :meth:`remember` checks its writes: over the quota, or any other failure of the
        writing pass, stores nothing (:class:`~engramdb.errors.QuotaExceededError`). The
        store's write lock is then held for the whole pass, embedding included.

        ``progress(step, done, total)`` follows both passes: ``"checking"`` counts bytes of
        the file (``total``: its size, when known), ``"importing"`` the records stored
        (``total``: the records the check counted)."""
        from .transfer import import_records, read_lines

        source: Path | IO[bytes]
        if isinstance(path, (str, Path)):
            source = Path(path)
            if not source.is_file():
                raise InvalidInputError(f"{source} is not a file")
            where, size, start = source.name, source.stat().st_size, 0
        else:
            source = path
            if not source.seekable():
                raise InvalidInputError(
                    "import reads its input twice (check, then write): pass a path or a "
                    "seekable file (save a stream to a file first)"
                )
            where = str(getattr(source, "name", "") or "")
            start = source.tell()
            size = source.seek(0, 2) - start
            source.seek(start)
        options: dict[str, Any] = {
            "namespace": namespace,
            "all_namespaces": all_namespaces,
            "batch_size": batch_size,
            "where": where,
        }
        check = import_records(
            self,
            read_lines(source, progress=_counter(progress, "checking", size)),
            write=False,
            **options,
        )
        if not isinstance(source, Path):
            source.seek(start)

        def write() -> ImportReport:
            return import_records(
                self,
                read_lines(source),
                progress=_counter(progress, "importing", check.records),
                **options,
            )

        if quota is None:
            return write()
        with self.store.atomic():
            report = write()
            for ns in report.namespaces:
                self.store.quota_check(
                    ns,
                    quota,
                    memories=report.created["memories"],
                    facts=report.created["triples"],
                )
        return report


def _counter(
    progress: Callable[[str, int, int | None], None] | None, step: str, total: int | None
) -> Callable[[int], None] | None:
    """``progress(step, done, total)`` from increments (``None`` without a callback)."""
    if progress is None:
        return None
    report = progress
    done = 0
    report(step, 0, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        report(step, done, total)

    return advance


_P = ParamSpec("_P")
_T = TypeVar("_T")


class AsyncMemory:
    """:class:`Memory` with coroutine methods (each runs in a worker thread)."""

    def __init__(
        self,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        embedder: Embedder | str | None = "auto",
        settings: RecallSettings | None = None,
        max_content_chars: int = MAX_CONTENT_CHARS,
        max_query_chars: int = MAX_QUERY_CHARS,
        llm: LLM | str | None = None,
        fallback: Fallback = None,
        index_metadata: Sequence[str] = (),
        index_neighbors: bool | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.sync = Memory(
            store,
            namespace=namespace,
            embedder=embedder,
            settings=settings,
            max_content_chars=max_content_chars,
            max_query_chars=max_query_chars,
            llm=llm,
            fallback=fallback,
            index_metadata=index_metadata,
            index_neighbors=index_neighbors,
            reranker=reranker,
        )

    @staticmethod
    async def _run(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.to_thread(func, *args, **kwargs)

    async def remember(self, content: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self.sync.remember, content, **kwargs)

    async def remember_many(
        self, entries: Iterable[Mapping[str, Any]], **kwargs: Any
    ) -> builtins.list[MemoryRecord] | builtins.list[MemoryRecord | EntryError]:
        """See :meth:`Memory.remember_many` (``errors="skip"`` included)."""
        batch = builtins.list(entries)
        return await self._run(lambda: self.sync.remember_many(batch, **kwargs))

    async def remember_results(
        self, entries: Iterable[Mapping[str, Any]], **kwargs: Any
    ) -> builtins.list[Remembered] | builtins.list[Remembered | EntryError]:
        """See :meth:`Memory.remember_results` (``errors="skip"`` included)."""
        batch = builtins.list(entries)
        return await self._run(lambda: self.sync.remember_results(batch, **kwargs))

    async def reindex(self, **kwargs: Any) -> int:
        return await self._run(self.sync.reindex, **kwargs)

    async def recall(self, query: str, **kwargs: Any) -> builtins.list[Hit]:
        return await self._run(self.sync.recall, query, **kwargs)

    async def context(self, query: str, **kwargs: Any) -> Context:
        return await self._run(self.sync.context, query, **kwargs)

    async def add_messages(
        self, messages: Iterable[dict[str, Any]], **kwargs: Any
    ) -> ExtractionReport:
        return await self._run(self.sync.add_messages, builtins.list(messages), **kwargs)

    async def extract(self, session_id: str, **kwargs: Any) -> ExtractionReport:
        return await self._run(self.sync.extract, session_id, **kwargs)

    async def get(self, memory_id: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self.sync.get, memory_id, **kwargs)

    async def list(self, filters: FilterInput = None, **kwargs: Any) -> Page:
        return await self._run(self.sync.list, filters, **kwargs)

    async def update(self, memory_id: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self.sync.update, memory_id, **kwargs)

    async def history(self, memory_id: str, **kwargs: Any) -> builtins.list[MemoryVersion]:
        return await self._run(self.sync.history, memory_id, **kwargs)

    async def invalidate(self, memory_id: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self.sync.invalidate, memory_id, **kwargs)

    async def restore(self, memory_id: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self.sync.restore, memory_id, **kwargs)

    async def events(self, memory_id: str, **kwargs: Any) -> builtins.list[MemoryEvent]:
        return await self._run(self.sync.events, memory_id, **kwargs)

    async def record_events(self, events: Sequence[NewMemoryEvent], **kwargs: Any) -> int:
        return await self._run(self.sync.record_events, list(events), **kwargs)

    async def forget(self, memory_id: str | None = None, **kwargs: Any) -> ForgetResult:
        return await self._run(self.sync.forget, memory_id, **kwargs)

    async def stats(self, **kwargs: Any) -> MemoryStats:
        return await self._run(self.sync.stats, **kwargs)

    async def learn(self, subject: str, predicate: str, object: str, **kwargs: Any) -> Triple:
        return await self._run(self.sync.learn, subject, predicate, object, **kwargs)

    async def facts(self, *args: Any, **kwargs: Any) -> builtins.list[Triple]:
        return await self._run(self.sync.facts, *args, **kwargs)

    async def forget_fact(self, fact_id: str, **kwargs: Any) -> ForgetResult:
        return await self._run(self.sync.forget_fact, fact_id, **kwargs)

    async def forget_facts(self, *args: Any, **kwargs: Any) -> ForgetResult:
        return await self._run(self.sync.forget_facts, *args, **kwargs)

    async def neighbors(self, entity: str, **kwargs: Any) -> builtins.list[Triple]:
        return await self._run(self.sync.neighbors, entity, **kwargs)

    def close(self) -> None:
        self.sync.close()


# -- helpers -------------------------------------------------------------------------------


def _in_batches(
    ids: builtins.list[str], delete: Callable[..., builtins.list[str]]
) -> builtins.list[str]:
    """Delete in transactions of 500; the store scrubs its files once, after the last."""
    removed: builtins.list[str] = []
    for start in range(0, len(ids), 500):
        last = start + 500 >= len(ids)
        removed += delete(ids[start : start + 500], scrub=last)
    return removed


def new_id(prefix: str) -> str:
    """A new public id: ``prefix_`` + 32 hex digits, time-ordered (milliseconds first)."""
    return f"{prefix}_{now_us() // 1000:012x}{uuid.uuid4().hex[:20]}"


def _replace(draft: NewMemory, **changes: Any) -> NewMemory:
    from dataclasses import replace

    return replace(draft, **changes)


def _importance(value: object) -> float:
    # the range test comes first: it is exact for huge ints (which float() cannot convert)
    # and false for NaN and infinities
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        shown = f"{value!r}"[:40]
        raise InvalidInputError(f"importance must be a number from 0 to 1, got {shown}")
    return float(value)


def _metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(value).__name__}")
    text = encode_json("metadata", dict(value))  # depth, JSON types, valid Unicode
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise PayloadTooLargeError(
            f"metadata is {size:,} bytes as JSON; the limit is {MAX_METADATA_BYTES:,}"
        )
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _index_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """``index_metadata`` checked: metadata keys (strings), in order, without repeats."""
    if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
        raise InvalidInputError("index_metadata must be a list of metadata keys (strings)")
    return tuple(dict.fromkeys(keys))


def _metadata_text(metadata: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The values of the metadata ``keys`` (the memory's ``index_metadata``) as searchable
    text: strings and numbers, nested ones included. Other keys are not indexed."""
    out: builtins.list[str] = []
    metadata = {k: metadata[k] for k in keys if k in metadata}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(str(value))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(metadata)
    return " ".join(out)


def _triple_part(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string")
    if len(value) > MAX_FACT_CHARS:
        raise InvalidInputError(f"{name} is longer than {MAX_FACT_CHARS} characters")
    check_id(name, value.strip()[:512])
    return check_text(name, value.strip())
