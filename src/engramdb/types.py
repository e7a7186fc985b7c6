"""Records that cross the public API."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

JSONItem = dict[str, Any]
"""One session item: any JSON object (for the Agents SDK, a Responses input item)."""

DEFAULT_NAMESPACE = "default"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_day(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as a UTC ``YYYY-MM-DD`` day: the key of daily counters."""
    return (moment or datetime.now(UTC)).astimezone(UTC).date().isoformat()


def now_us() -> int:
    """The current time as integer microseconds since the epoch (how stores keep time)."""
    return time.time_ns() // 1000


def datetime_from_us(us: int) -> datetime:
    """Stored microseconds to an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=us)


def us_from_datetime(value: datetime) -> int:
    """An aware datetime to stored microseconds, exactly (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Metadata of one session: when it started, when it last changed, how many items it has."""

    namespace: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    item_count: int


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Default settings of a session; ``limit`` bounds ``get_items()`` when no limit is given."""

    limit: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One long-term memory as stored."""

    id: str
    namespace: str
    content: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    importance: float
    occurred_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    content_hash: str
    invalidated_at: datetime | None = None
    """When the memory was invalidated (``Memory.invalidate``: excluded from recall and, by
    default, from ``list``; kept, with its history, and restorable); ``None`` while live."""
    invalidated_reason: str | None = None
    """Why it was invalidated, if a reason was given."""

    @property
    def invalidated(self) -> bool:
        """True while the memory is invalidated."""
        return self.invalidated_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601)."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "content": self.content,
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "importance": self.importance,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
            "invalidated_at": self.invalidated_at.isoformat() if self.invalidated_at else None,
            "invalidated_reason": self.invalidated_reason,
        }


MEMORY_EVENT_ACTIONS = frozenset(
    {"add", "update", "delete", "invalidate", "restore", "none", "merge"}
)
"""What a memory event may record (``delete`` is a manager's decision; the memory is then
invalidated, not removed)."""


@dataclass(frozen=True, slots=True)
class MemoryEvent:
    """One recorded decision about a memory: why it exists, changed or was invalidated.

    ``action`` is one of :data:`MEMORY_EVENT_ACTIONS`; ``model`` and ``prompt_version`` name
    what decided it (``None``: a person or a deterministic rule); ``session_id`` and
    ``item_seqs`` point at the session items it came from; ``details`` holds anything else
    (JSON). ``id`` orders a memory's events (store-assigned, increasing)."""

    id: int
    namespace: str
    memory_id: str
    at: datetime
    action: str
    reason: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    session_id: str | None = None
    item_seqs: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601)."""
        return {
            "id": self.id,
            "memory_id": self.memory_id,
            "at": self.at.isoformat(),
            "action": self.action,
            "reason": self.reason,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "session_id": self.session_id,
            "item_seqs": list(self.item_seqs),
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Remembered:
    """What storing one memory did: ``created`` a new memory; found an identical one in the
    same scope and ``merged`` the new tags into it; or found one that already had them all
    (``existing``). ``memory`` is the memory as stored now."""

    memory: MemoryRecord
    status: Literal["created", "merged", "existing"]
    merged_tags: tuple[str, ...] = ()

    @property
    def created(self) -> bool:
        return self.status == "created"


@dataclass(frozen=True, slots=True)
class MemoryVersion:
    """A prior version of a memory, kept by ``update``."""

    memory_id: str
    version: int
    content: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    importance: float
    replaced_at: datetime


@dataclass(frozen=True, slots=True)
class Hit:
    """A recalled memory with its final score; ``explain`` says why it ranked (if asked)."""

    memory: MemoryRecord
    score: float
    explain: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Triple:
    """A knowledge triple with its provenance and validity interval."""

    id: str
    namespace: str
    subject: str
    predicate: str
    object: str
    confidence: float
    source: str | None
    valid_from: datetime
    valid_to: datetime | None
    created_at: datetime

    @property
    def current(self) -> bool:
        """True while the fact has not been superseded."""
        return self.valid_to is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "predicate": self.predicate,
            "object": self.object,
            "confidence": self.confidence,
            "source": self.source,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Counts for one namespace."""

    namespace: str
    memories: int
    embedded: int
    triples: int
    current_triples: int
    sessions: int
    session_items: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A server API key as stored: never the secret itself, only its hash and a display prefix.

    Every key is bound to one namespace. ``limits`` overrides the server's default quotas for
    this key (``max_memories``, ``max_facts``, ``recalls_per_day``, ``requests_per_second``);
    a missing entry means the default, ``None`` means unlimited. ``created_by`` is the id of
    the namespace key that created this one (``None``: an admin key or registration).
    """

    id: str
    namespace: str
    name: str
    purpose: str | None
    prefix: str
    limits: dict[str, int | None]
    created_at: datetime
    revoked_at: datetime | None
    created_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": self.namespace,
            "name": self.name,
            "purpose": self.purpose,
            "prefix": self.prefix,
            "limits": self.limits,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class Quota:
    """Limits on what one namespace stores, enforced by the store inside the write's own
    transaction (``None``: unlimited).

    ``max_memories`` bounds the namespace's memories (every memory, including the one that
    makes each learned fact searchable); ``max_facts`` bounds its facts (triples, superseded
    versions included: they stay stored as history until deleted).
    """

    max_memories: int | None = None
    max_facts: int | None = None


@dataclass(frozen=True, slots=True)
class IdempotentResponse:
    """What a store holds for one ``Idempotency-Key``: the request's fingerprint and, once the
    request finished, its response (``status`` is ``None`` while the first attempt runs)."""

    request_hash: str
    status: int | None
    body: bytes | None
    created_at: datetime


JOB_STATUSES = ("pending", "running", "done", "failed")
"""A job's states: ``pending`` (claimable, possibly after ``retry_at``), ``running`` (leased
to an owner until ``lease_expires_at``; an expired lease is taken over by the next claim),
``done`` (completed, with its input watermark) and ``failed`` (its retries are exhausted;
``last_error`` says why; it is never claimed again on its own)."""


@dataclass(frozen=True, slots=True)
class Spend:
    """What background work spent: sessions processed, LLM calls and their tokens."""

    sessions: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.sessions + other.sessions,
            self.llm_calls + other.llm_calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class SpendDay:
    """The spend of one namespace's ``scope`` on one UTC ``day`` (``YYYY-MM-DD``)."""

    namespace: str
    day: str
    scope: str
    spend: Spend


@dataclass(frozen=True, slots=True)
class ScopeSettings:
    """A consolidation scope of a namespace as configured by its user: whether consolidation
    runs for it (``enabled``; off is the per-scope opt-out) and which sessions belong to it
    (those whose id starts with ``session_prefix``; ``None``: every session of the
    namespace)."""

    namespace: str
    scope: str
    enabled: bool
    session_prefix: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    """One lease-locked background job of a namespace, identified by ``(kind, job_key)``.

    ``token`` is the ownership token, set only on the record :meth:`Store.job_claim` returns
    (every later write of that run — heartbeat, complete, fail, release — must present it;
    records read back never carry it). ``attempts`` counts claims since the job last
    completed; a failure with ``attempts >= max_attempts`` makes the job ``failed``.
    ``input_watermark`` is what the last completed run processed (opaque to the store);
    ``spend`` adds up what every run of the job reported spending.
    """

    namespace: str
    kind: str
    job_key: str
    status: str
    owner: str | None
    token: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    input_watermark: str | None
    attempts: int
    max_attempts: int
    retry_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    spend: Spend = field(default_factory=Spend)
