"""The Store protocol: what every storage backend provides.

Stores are synchronous; the async faces above them run store calls in worker threads.
Every method takes the namespace explicitly, so no caller can forget it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..filters import Filter
from ..types import (
    ApiKey,
    IdempotentResponse,
    Job,
    MemoryEvent,
    MemoryRecord,
    MemoryStats,
    MemoryVersion,
    Quota,
    ScopeSettings,
    SessionInfo,
    Spend,
    SpendDay,
    Triple,
)

# -- parsed recall questions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A full-text question: literal words, OR-ed (any one may match), and the token the
    text index stores for each (``stems[i]`` for ``terms[i]``; SQLite's porter stem).

    Words are plain text, never query syntax: each backend builds its own query from them
    (SQLite reads the index's postings for ``stems``; PostgreSQL ORs ``plainto_tsquery`` of
    each word). Build one with :func:`engramdb.search.query.text_query`."""

    terms: tuple[str, ...]
    stems: tuple[str, ...]


Span = tuple[int, int]
"""A chunk's ``[start, end)`` character span in its memory's content."""


class VectorHit(NamedTuple):
    """A memory found by vector search: its best chunk's similarity, which chunk that was
    and the chunk's character span in the content (a memory embedded whole is chunk 0
    spanning all of it). (A named tuple: a search makes up to a thousand of them.)"""

    rowid: int
    score: float
    chunk: int = 0
    start: int = 0
    end: int = 0


def chunk_rows(
    embedding: bytes, spans: Sequence[Span], length: int
) -> list[tuple[int, bytes, Span]]:
    """``(chunk, vector bytes, span)`` of each chunk of a stored embedding.

    An embedding is the float32 vectors of a memory's chunks, concatenated in chunk order;
    ``spans`` gives each chunk's span (empty: one chunk covering the ``length`` characters of
    the content)."""
    if not spans:
        return [(0, embedding, (0, length))]
    size, rest = divmod(len(embedding), len(spans))
    if rest or not size:
        raise ValueError(f"{len(embedding)} embedding bytes do not split into {len(spans)} chunks")
    return [(n, embedding[n * size : (n + 1) * size], span) for n, span in enumerate(spans)]


def gather_chunks(rows: Sequence[Sequence[Any]]) -> dict[Any, tuple[bytes, tuple[Span, ...]]]:
    """The inverse of :func:`chunk_rows`: ``(key, vector, start, end)`` rows in chunk order →
    per key, the concatenated vectors and the spans (empty for a single chunk)."""
    parts: dict[Any, list[tuple[bytes, Span]]] = {}
    for key, vector, start, end in rows:
        parts.setdefault(key, []).append((bytes(vector), (int(start), int(end))))
    return {
        key: (b"".join(v for v, _ in c), tuple(s for _, s in c) if len(c) > 1 else ())
        for key, c in parts.items()
    }


TEXT_CANDIDATES = 2_000
"""Most full-text matches one text search ranks, on every backend: the newest ones of the
namespace (after the filter). Recall prunes a namespace's commonest words first, so only a
query whose rarest word is in thousands of memories reaches it."""

Adjacency = tuple[str | None, int | None, int | None, str | None, str | None]
"""A memory's place in its session: ``(its user_id, the previous rowid, the next rowid, the
previous memory's user_id, the next memory's user_id)``."""


# -- records for export, import and store-to-store transfer ------------------------------


@dataclass(frozen=True, slots=True)
class ExportedMemory:
    """A memory with everything a full copy needs (``memory_export_full``)."""

    rowid: int
    """The page cursor (store-assigned; never part of an export file)."""
    record: MemoryRecord
    search_text: str
    """The indexed metadata text, as stored."""
    embedding_model: str | None
    embedding: bytes | None
    """The vectors (float32 bytes, chunks concatenated) if asked for, else ``None``."""
    history: tuple[MemoryVersion, ...]
    """Prior versions, oldest first."""
    embedding_spans: tuple[Span, ...] = ()
    """Each chunk's character span when the embedding has several chunks (else empty)."""


@dataclass(frozen=True, slots=True)
class ImportedMemory:
    """A memory to restore exactly: id, times, version and history kept."""

    memory: NewMemory
    """``created_at`` must be set."""
    updated_at: int
    version: int
    history: tuple[MemoryVersion, ...] = ()
    invalidated_at: int | None = None
    """Kept as given: an invalidated memory stays invalidated."""
    invalidated_reason: str | None = None


def imported_vectors(
    fresh: Sequence[tuple[ImportedMemory, int]],
) -> list[tuple[int, str, bytes, Sequence[Span], int]]:
    """``(rowid, model, embedding, spans, content length)`` of the newly imported memories
    that carry an embedding: what each store's ``write_vectors`` takes."""
    return [
        (
            rowid,
            i.memory.embedding_model,
            i.memory.embedding,
            i.memory.embedding_spans,
            len(i.memory.content),
        )
        for i, rowid in fresh
        if i.memory.embedding is not None and i.memory.embedding_model is not None
    ]


@dataclass(frozen=True, slots=True)
class TripleRow:
    """A stored fact with the id of the memory that makes it searchable."""

    rowid: int
    """The page cursor on export (store-assigned); ignored on import."""
    triple: Triple
    memory_id: str | None


@dataclass(frozen=True, slots=True)
class SessionItemRow:
    """One stored session item: its position (store-assigned), text and time."""

    seq: int
    data: str
    created_at: int


@dataclass(frozen=True, slots=True)
class NewMemoryEvent:
    """A decision to record about a memory (see :class:`~engramdb.types.MemoryEvent`).

    ``action`` must be one of :data:`~engramdb.types.MEMORY_EVENT_ACTIONS`; ``at`` in
    microseconds (``None``: now; imports keep the original time)."""

    memory_id: str
    action: str
    reason: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    session_id: str | None = None
    item_seqs: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    at: int | None = None


@dataclass(frozen=True, slots=True)
class NewMemory:
    """A validated memory ready to insert (the facade builds it; times in microseconds)."""

    id: str
    content: str
    content_hash: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    importance: float
    occurred_at: int | None
    search_text: str
    """Extra text indexed for full-text search: metadata values."""
    embedding: bytes | None = None
    """float32 vectors, one per chunk, concatenated (see :func:`chunk_rows`)."""
    embedding_model: str | None = None
    embedding_spans: tuple[Span, ...] = ()
    """Each chunk's character span; empty: one chunk, the whole content."""
    created_at: int | None = None
    """Keep an original creation time (imports); ``None`` means now."""


@dataclass(frozen=True, slots=True)
class MemoryChanges:
    """New values for ``memory_update``; ``None`` leaves a field as it is."""

    content: str | None = None
    content_hash: str | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = None
    search_text: str | None = None
    embedding: bytes | None = None
    embedding_model: str | None = None
    embedding_spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class VectorDelta:
    """Embeddings added and removed since a vector index last looked (see ``vector_changes``)."""

    rowids: list[int]
    namespaces: list[str]
    models: list[str]
    vectors: list[bytes]
    removed: list[int]
    embedding_seq: int
    removal_seq: int
    sessions: list[str | None] = field(default_factory=list)
    """session_id per added row (empty: unknown)."""
    chunks: list[int] = field(default_factory=list)
    """Chunk number per added row (empty: all 0). A memory's chunks come in chunk order,
    chunk 0 first: chunk 0 replaces whatever the index held for that memory."""
    spans: list[Span] = field(default_factory=list)
    """Character span per added row (empty: unknown)."""


@dataclass(frozen=True, slots=True)
class NewTriple:
    """A validated triple ready to insert (times in microseconds)."""

    id: str
    subject: str
    predicate: str
    object: str
    confidence: float
    source: str | None
    valid_from: int
    single_valued: bool
    valid_to: int | None = None
    """A closed interval's end: the fact was true until then (``None``: still true)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """An API key to store: ``secret_hash`` is the SHA-256 hex digest of the secret."""

    id: str
    secret_hash: str
    name: str
    purpose: str | None
    prefix: str
    limits: dict[str, int | None]
    created_by: str | None = None
    """Id of the namespace key that created this one (``None``: an admin or registration)."""


@runtime_checkable
class Store(Protocol):
    """Storage backend. Implementations: :class:`~engramdb.store.sqlite.SQLiteStore`."""

    url: str
    inline_reads: bool
    """True if bounded reads never block (they may then run on an event loop directly)."""
    native_vector_search: bool
    """True if the store answers ``memory_vector_search`` itself (e.g. pgvector); otherwise
    engramdb keeps an in-process index fed by ``vector_changes``."""
    index_neighbors: bool
    """Whether writes index a session memory together with its neighbours' text (a
    low-weight column of the full-text index; default on). Off, that text is written empty
    for every memory a write touches; ``Memory(index_neighbors=...)`` sets it and
    :meth:`engramdb.Memory.reindex` rewrites existing rows."""

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def ping(self) -> None:
        """Raise StoreUnavailableError if the store cannot serve requests now (for health
        checks: a SQLite file deleted or replaced, a PostgreSQL server unreachable)."""

    def atomic(self) -> AbstractContextManager[None]:
        """A unit of work: every store call made inside ``with store.atomic():`` *on this
        thread* joins one transaction, committed when the block ends and rolled back entirely
        if it raises. Nested blocks join the outermost one.

        SQLite: ``BEGIN IMMEDIATE`` on the thread's connection (the write lock is held for the
        whole block, so keep it short: embed before, not inside). PostgreSQL: one pooled
        connection and transaction for the block. A store call inside that fails is undone
        alone (a savepoint) before its error propagates.
        """

    def in_atomic(self) -> bool:
        """True inside :meth:`atomic` on this thread: its calls must stay on this thread to
        see the block's own uncommitted writes."""

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

    # -- extraction high-water marks -------------------------------------------------------
    def extraction_mark(self, namespace: str, session_id: str) -> int:
        """The sequence number of the last session item extraction has processed; -1 if
        none yet (items are numbered from 0). Read on with ``Session.items_after(mark)``."""

    def extraction_advance(
        self, namespace: str, session_id: str, from_seq: int, to_seq: int
    ) -> bool:
        """Compare-and-set the mark: move it from ``from_seq`` to ``to_seq`` only if it still
        equals ``from_seq`` (a missing mark equals -1). Returns whether it moved: of two
        processes that read the same mark and processed the same window, exactly one wins.
        Raises :class:`~engramdb.errors.InvalidInputError` if ``to_seq < from_seq`` or either
        is below -1. ``session_delete`` removes the mark; ``session_clear`` keeps it (sequence
        numbers are never reused)."""

    # -- leases ----------------------------------------------------------------------------
    def lease_acquire(self, namespace: str, name: str, owner: str, ttl: float) -> bool:
        """Take (or renew, if ``owner`` already holds it) a lease; False if held by another."""

    def lease_release(self, namespace: str, name: str, owner: str) -> bool:
        """Release a lease held by ``owner``. Returns whether it was held."""

    # -- jobs ------------------------------------------------------------------------------
    def job_claim(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        owner: str,
        ttl: float,
        *,
        max_attempts: int = 5,
    ) -> Job | None:
        """Claim job ``(kind, job_key)`` for ``ttl`` seconds, in one transaction, creating it on
        first use. Succeeds if the job is not running or its lease expired (take-over), its
        ``retry_at`` has passed and it has attempts left of ``max_attempts``; a ``done`` job is
        claimable again with a fresh budget; a ``failed`` one never. Each claim counts an
        attempt. Returns the job with a fresh ownership ``token`` that every later write of this
        run must present, or ``None`` if it is not claimable now. A running job whose lease
        expired during its last attempt is marked ``failed`` instead of taken over.
        Raises :class:`~engramdb.errors.InvalidInputError` for ``ttl <= 0`` or
        ``max_attempts < 1``."""

    def job_heartbeat(
        self, namespace: str, kind: str, job_key: str, token: str, ttl: float
    ) -> bool:
        """Renew the lease for ``ttl`` seconds from now, only if ``token`` still owns the running
        job (after a take-over it does not). Returns whether it was renewed."""

    def job_complete(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        token: str,
        *,
        input_watermark: str | None,
        spend: Spend | None = None,
    ) -> bool:
        """Mark the job ``done`` with the input watermark it processed, only if ``token`` still
        owns it; clears the lease and the last error and adds ``spend`` to the job's.
        Returns whether it was written."""

    def job_fail(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        token: str,
        error: str,
        *,
        retry_in: float,
        spend: Spend | None = None,
    ) -> bool:
        """Record a failed attempt, only if ``token`` still owns the job: ``failed`` with
        ``error`` if its attempts are exhausted, otherwise ``pending`` and claimable again
        ``retry_in`` seconds from now (``error`` kept as ``last_error``); ``spend`` is added
        to the job's. Returns whether it was written."""

    def job_release(
        self, namespace: str, kind: str, job_key: str, token: str, *, spend: Spend | None = None
    ) -> bool:
        """Give the job back unfinished (``pending``, the attempt not counted; ``spend`` added
        to the job's), only if ``token`` owns it; anyone else's release changes nothing and
        returns False."""

    def job_reset(self, namespace: str, kind: str, job_key: str) -> bool:
        """Make a job that is not running claimable now with its full retry budget (a user
        retrying a ``failed`` job). Returns whether a job was reset."""

    def job_get(self, namespace: str, kind: str, job_key: str) -> Job | None:
        """One job of ``namespace`` (without its token), or ``None``."""

    def job_list(
        self, namespace: str, *, kind: str | None = None, status: str | None = None
    ) -> list[Job]:
        """Jobs of ``namespace`` (without tokens), by kind then key, optionally of one kind
        and/or status."""

    # -- spend ledger and consolidation scopes ---------------------------------------------
    def spend_add(self, namespace: str, day: str, scope: str, spend: Spend) -> None:
        """Add ``spend`` to what ``scope`` of ``namespace`` spent on UTC ``day``
        (``YYYY-MM-DD``); the daily cost caps of consolidation read these totals."""

    def spend_list(
        self, namespace: str, *, since: str | None = None, scope: str | None = None
    ) -> list[SpendDay]:
        """The spend ledger of ``namespace``, newest day first, from day ``since`` on and of
        one ``scope`` if given."""

    def scope_put(
        self, namespace: str, scope: str, *, enabled: bool, session_prefix: str | None
    ) -> ScopeSettings:
        """Create or replace the consolidation settings of ``scope``; returns them."""

    def scope_get(self, namespace: str, scope: str) -> ScopeSettings | None:
        """The consolidation settings of ``scope``, or ``None`` if never configured."""

    def scope_list(self, namespace: str) -> list[ScopeSettings]:
        """Every configured consolidation scope of ``namespace``, by name."""

    # -- secrets ---------------------------------------------------------------------------
    def secret(self, name: str) -> bytes:
        """A random 32-byte secret kept in the store under ``name``, made on first use: every
        process and replica sharing the store, before and after a restart, gets the same."""

    # -- memories --------------------------------------------------------------------------
    def memory_insert(
        self, namespace: str, memories: Sequence[NewMemory]
    ) -> list[tuple[MemoryRecord, bool]]:
        """Insert a batch in one transaction; an identical memory in the same scope (namespace,
        user, agent, session) is not stored again: the tags it lacks are merged into it (a new
        version, the prior one kept in history). Returns ``(record, created)`` per input, in
        order; for an identical memory, the record as it was *before* the merge."""

    def memory_get(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        """One memory by public id, only if it belongs to ``namespace``."""

    def memory_list(
        self,
        namespace: str,
        flt: Filter,
        *,
        after: int | None,
        limit: int,
        include_invalidated: bool = False,
    ) -> tuple[list[MemoryRecord], int | None]:
        """Memories in insertion order after cursor ``after``; returns the next cursor.
        Invalidated memories only with ``include_invalidated``."""

    def memory_update(
        self, namespace: str, memory_id: str, changes: MemoryChanges
    ) -> MemoryRecord | None:
        """Apply changes, keeping the prior version in history. ``None`` if not found."""

    def memory_reindex(self, namespace: str, search_texts: Mapping[str, str]) -> int:
        """Rewrite what the full-text index holds beside content and tags for the given
        memories of ``namespace`` (by id): their metadata text (``search_texts``) and their
        neighbours' text (under :attr:`index_neighbors`). Returns how many were found."""

    def memory_history(self, namespace: str, memory_id: str) -> list[MemoryVersion]:
        """Prior versions, oldest first."""

    def memory_invalidate(
        self, namespace: str, memory_id: str, *, reason: str | None
    ) -> MemoryRecord | None:
        """Mark a memory invalidated (now): from then on no search method, nor
        ``memory_records``, nor ``memory_list`` by default, returns it, and a store-fed vector
        index drops its vector. Content, version and history are kept; it still counts in
        ``usage_counts`` and quotas (it is stored). Already invalidated: unchanged. Returns
        the record, ``None`` if there is no such memory in ``namespace``."""

    def memory_restore(self, namespace: str, memory_id: str) -> MemoryRecord | None:
        """Undo :meth:`memory_invalidate` (a live memory is returned unchanged); ``None`` if
        there is no such memory in ``namespace``."""

    def memory_event_add(self, namespace: str, events: Sequence[NewMemoryEvent]) -> int:
        """Record events, in order, in one transaction (joins :meth:`atomic`, so a decision
        and its record commit together). An event whose memory is not in ``namespace`` is
        not recorded. Returns how many were. Bad ``action``: InvalidInputError, nothing
        recorded."""

    def memory_events(self, namespace: str, memory_id: str) -> list[MemoryEvent]:
        """A memory's events, oldest first (none for a memory of another namespace).
        ``memory_delete`` removes them with the memory."""

    def memory_ids(self, namespace: str, flt: Filter, *, limit: int | None) -> list[str]:
        """Public ids of the memories matching a filter, invalidated ones included (for
        forget-by-filter)."""

    def memory_delete(
        self, namespace: str, memory_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        """Remove memories from every index and their history; returns the ids removed.

        ``scrub``: afterwards, make the text of every deletion since the last scrub
        unrecoverable from the store's files too (SQLite: merge the full-text index,
        checkpoint the WAL; it costs one index rewrite, so forget passes it once per call).
        Removed text is gone from every query either way.

        A memory that :meth:`triple_set_memory` linked to a *current* fact it was made for
        (its metadata ``triple_id`` names the fact) takes that fact with it; other links are
        cleared (a superseded fact's history stays). A user id whose last memory goes leaves
        :meth:`memory_users`."""

    def memory_text_search(
        self, namespace: str, query: TextQuery, flt: Filter, *, limit: int
    ) -> list[tuple[int, float]]:
        """Full-text candidates ``(rowid, score)``: memories containing any word of ``query``
        and matching ``flt``, best first (higher is better), at most ``limit``. The backend
        builds its own query from the words, namespace and filter included. A score depends
        only on ``namespace``'s data: never on statistics of other namespaces' documents."""

    def memory_tag_search(self, namespace: str, tag: str, flt: Filter, *, limit: int) -> list[int]:
        """Rowids of memories carrying ``tag`` (case-insensitive), newest first."""

    def memory_term_docs(
        self, namespace: str, stems: Sequence[str], *, at_most: int | None = None
    ) -> tuple[int, dict[str, int]]:
        """(memories of ``namespace``, of them those containing each stemmed term): counts of
        this namespace only; a count above ``at_most`` may be given as ``at_most + 1``.
        Stores without such counts return ``(0, {})``."""

    def memory_filter_rowids(self, namespace: str, flt: Filter, *, limit: int) -> list[int] | None:
        """Rowids matching a scoped filter (``None`` if more than ``limit``)."""

    def memory_records(self, namespace: str, rowids: Sequence[int]) -> dict[int, MemoryRecord]:
        """Records for rowids (those in ``namespace`` only, and not invalidated: recall reads
        its hits through here)."""

    def memory_times(self, namespace: str, rowids: Sequence[int]) -> dict[int, datetime]:
        """When each memory happened (``occurred_at``, else ``created_at``), for the rowids
        :meth:`memory_records` would answer: the time boosts read no whole record."""

    def memory_vectors(self, namespace: str, rowids: Sequence[int]) -> dict[int, bytes]:
        """Stored embeddings for rowids (those in ``namespace`` only): each memory's chunk
        vectors concatenated in chunk order."""

    def memory_adjacency(
        self, namespace: str, rowids: Sequence[int], *, neighbors: bool = True
    ) -> dict[int, Adjacency]:
        """For each rowid of ``namespace``: its :data:`Adjacency` (user, previous and next rowid
        in its session, and their users), all in one query. ``neighbors=False``: the users
        only (the rest ``None``), without the neighbour lookups."""

    def memory_users(self, namespace: str) -> list[str]:
        """Every user_id that has had memories in the namespace (at most 10,000)."""

    def embedding_cache(
        self, model: str, hashes: Sequence[str]
    ) -> dict[str, tuple[bytes, tuple[Span, ...]]]:
        """Stored ``model`` embeddings by content hash, as ``(vectors, spans)`` (see
        :class:`NewMemory`): identical content is embedded once."""

    def memory_set_embeddings(self, rows: Sequence[tuple[int, str, bytes, Sequence[Span]]]) -> None:
        """Store ``(rowid, model, vectors, spans)`` embeddings (replacing every chunk the
        memory had)."""

    def memory_without_embedding(
        self, model: str, *, after: int, limit: int
    ) -> list[tuple[int, str]]:
        """``(rowid, content)`` of memories lacking a ``model`` embedding, for re-embedding."""

    def memory_vector_search(
        self, namespace: str, vector: bytes, model: str, flt: Filter, *, limit: int
    ) -> list[VectorHit]:
        """The ``limit`` nearest memories among ``model`` embeddings, best first, each scored
        by its most similar chunk (native stores only)."""

    def vector_version(self) -> int:
        """A change counter: it moves whenever embeddings may have been written or removed
        since the last call (by any connection or process), and stays put otherwise. Cheap
        (no transaction): an in-process vector index asks it before every search and reads
        ``vector_changes`` only when it moved. It may move for other writes too."""

    def vector_changes(self, embedding_seq: int, removal_seq: int, *, limit: int) -> VectorDelta:
        """Embeddings written and removed after the given marks, across all namespaces.
        Invalidated memories' embeddings are not among those written (invalidating one logs
        a removal; restoring it writes its embedding anew)."""

    def memory_stats(self, namespace: str) -> MemoryStats:
        """Counts for one namespace."""

    def usage_counts(self, namespace: str) -> dict[str, int]:
        """What the namespace stores, from counters maintained in the same transaction as
        every insert and delete (no ``COUNT(*)``): ``{"memories": n, "facts": m}``."""

    def usage_recount(self, namespace: str) -> dict[str, int]:
        """Recompute the namespace's counters from its rows (``COUNT(*)``, in one write
        transaction) and return them: for bulk writers that bypass ``memory_insert`` and
        ``triple_insert`` (imports, migrations) to call once at the end."""

    def quota_check(self, namespace: str, quota: Quota, *, memories: int, facts: int) -> None:
        """Raise :class:`~engramdb.errors.QuotaExceededError` if the namespace now stores more
        than ``quota`` allows. Call it inside :meth:`atomic`, after the writes that added
        ``memories`` and ``facts`` (for the message): the error rolls them back, and the
        counters' row lock makes concurrent writers check one after another."""

    # -- triples ---------------------------------------------------------------------------
    def triple_insert(self, namespace: str, triple: NewTriple) -> tuple[Triple, list[Triple], bool]:
        """Store a fact. Returns (the fact, the facts it superseded, created). A current
        identical fact is returned as is; a single-valued fact closes the current others."""

    def triple_query(
        self,
        namespace: str,
        *,
        subject: str | None,
        predicate: str | None,
        object: str | None,
        as_of: int | None,
        include_history: bool,
        limit: int,
    ) -> list[Triple]:
        """Facts matching a pattern; current ones (or those valid at ``as_of``)."""

    def triple_set_memory(self, namespace: str, triple_id: str, memory_id: str | None) -> None:
        """Link a fact to the memory that makes it searchable through recall."""

    def triple_memory_ids(self, namespace: str, triple_ids: Sequence[str]) -> list[str]:
        """Linked memory ids of the given facts."""

    def triple_ids(
        self, namespace: str, *, subject: str | None, predicate: str | None, object: str | None
    ) -> list[str]:
        """Ids of every fact (current or superseded) matching a pattern, oldest first."""

    def triple_delete(
        self, namespace: str, triple_ids: Sequence[str], *, scrub: bool = False
    ) -> list[str]:
        """Remove facts and, in the same transaction, the memories made for them (linked and
        naming the fact in metadata ``triple_id``). Returns the fact ids removed, in order.
        ``scrub`` as for :meth:`memory_delete`."""

    # -- full copies: export, import, store-to-store transfer --------------------------------
    def export_namespaces(self) -> list[str]:
        """Every namespace holding sessions, memories or facts, sorted."""

    def memory_export_full(
        self, namespace: str, *, after: int, limit: int, with_vectors: bool
    ) -> list[ExportedMemory]:
        """Memories with rowid > ``after`` in insertion order, with their history."""

    def memory_import(self, namespace: str, memories: Sequence[ImportedMemory]) -> list[bool]:
        """Insert memories exactly as given, in one transaction. A memory whose id is already
        in ``namespace``, or whose content is already stored in its scope, is skipped
        (``False``); an id taken in another namespace raises ``ConflictError``."""

    def triple_export(self, namespace: str, *, after: int, limit: int) -> list[TripleRow]:
        """Facts (current and superseded) with rowid > ``after``, in insertion order."""

    def triple_import(self, namespace: str, triples: Sequence[TripleRow]) -> list[bool]:
        """Insert facts exactly as given (ids, validity, times, memory links), in one
        transaction; an id already in ``namespace`` is skipped (``False``)."""

    def memory_event_export(self, namespace: str, *, after: int, limit: int) -> list[MemoryEvent]:
        """Memory events with id > ``after``, in id order (imports go through
        :meth:`memory_event_add`, which keeps a given ``at``)."""

    def session_export(self, namespace: str, *, after: str | None, limit: int) -> list[SessionInfo]:
        """Sessions ordered by id, after ``after``."""

    def session_export_items(
        self, namespace: str, session_id: str, *, after: int, limit: int
    ) -> list[SessionItemRow]:
        """Items of a session with ``seq > after``, in order, as stored (text not parsed)."""

    def session_import(
        self,
        namespace: str,
        session_id: str,
        items: Sequence[tuple[str, int]],
        *,
        created_at: int,
        updated_at: int,
    ) -> None:
        """Append ``(data, created_at)`` items in one transaction (creating the session if
        absent) and set the session's times."""

    # -- API keys, usage counters, idempotent requests (the server's bookkeeping) -------------
    def key_insert(self, namespace: str, key: NewKey) -> ApiKey:
        """Store a new key bound to ``namespace``."""

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        """The key (revoked or not) with this secret hash, in any namespace: how a request's
        namespace is found. The only store method not scoped by a namespace argument."""

    def key_list(self, namespace: str | None) -> list[ApiKey]:
        """Keys of one namespace (``None``: every namespace), oldest first."""

    def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace holds anything: a key, a memory, a fact or a session."""

    def key_revoke(self, namespace: str, key_id: str) -> ApiKey | None:
        """Revoke a key of this namespace (idempotent); ``None`` if it has no such key."""

    def usage_add(
        self,
        namespace: str,
        subject: str,
        counter: str,
        window: str,
        amount: int,
        limit: int | None,
    ) -> tuple[bool, int]:
        """Atomically add ``amount`` to a usage counter unless that would exceed ``limit``.

        Returns ``(added, value)``: the new value if added, else the unchanged current value.
        ``subject`` is who is counted (a key id), ``window`` the period (e.g. ``2026-11-21``).
        """

    def usage_get(self, namespace: str, subject: str, window: str) -> dict[str, int]:
        """Every counter of ``subject`` in ``window``."""

    def idempotency_claim(
        self, namespace: str, key: str, request_hash: str, *, stale_after: float
    ) -> IdempotentResponse | None:
        """Claim an idempotency key for a request about to run.

        ``None``: the caller holds the claim and must later complete or release it. Otherwise
        the existing record: a finished response to replay, or a claim still running. A claim
        running for longer than ``stale_after`` seconds is taken over (returns ``None``).
        """

    def idempotency_complete(self, namespace: str, key: str, status: int, body: bytes) -> None:
        """Record the response of a claimed request."""

    def idempotency_release(self, namespace: str, key: str) -> None:
        """Drop an unfinished claim (the request failed; a retry may run again)."""

    def idempotency_purge(self, older_than: int) -> int:
        """Delete records created before ``older_than`` (microseconds); returns how many."""
