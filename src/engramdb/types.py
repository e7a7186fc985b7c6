"""Records that cross the public API."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


DATETIME_EXAMPLE = "2026-05-01T14:30:00Z"
"""An accepted date/time, shown in the message of a rejected one."""


def format_datetime(value: datetime) -> str:
    """``value`` as RFC 3339 in UTC with ``Z``: ``2026-05-01T14:30:00.123456Z``.

    The one formatter of every timestamp engramdb emits (records' ``to_dict``, the server's
    JSON, the client, the CLI's ``--json``, export). Microseconds are written when not zero,
    as ``datetime.isoformat`` does; a naive datetime is taken as UTC."""
    zone = value.tzinfo
    if zone is None:
        return value.isoformat() + "Z"
    if zone is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"  # drop "+00:00"


def format_optional(value: datetime | None) -> str | None:
    """:func:`format_datetime`, with ``None`` passed through."""
    return None if value is None else format_datetime(value)


def parse_datetime(name: str, value: object) -> datetime:
    """An aware UTC-comparable datetime from what a caller may pass as a time (``occurred_at``,
    ``valid_from``, ``as_of``, ``since``, ...): a ``datetime`` (naive = UTC), a ``date``
    (midnight UTC) or an ISO 8601 / RFC 3339 string (``Z`` or an offset; none = UTC).

    Anything else raises :class:`~engramdb.errors.InvalidInputError` whose message shows an
    accepted example. The one time parser of the library, the client and import."""
    from .errors import InvalidInputError

    def bad(detail: str) -> InvalidInputError:
        return InvalidInputError(
            f"{name} must be a datetime or an ISO 8601 string such as {DATETIME_EXAMPLE!r} "
            f"(no offset: UTC); {detail}"
        )

    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        except ValueError:
            raise bad(f"got {value[:60]!r}") from None
        value = parsed
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, datetime):
        raise bad(f"got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise bad("this one is out of range once converted to UTC") from None
    return value


def _time(value: object) -> datetime:
    """A timestamp read back from a record's dict (see :func:`parse_datetime`)."""
    return parse_datetime("timestamp", value)


def _optional_time(value: object) -> datetime | None:
    return None if value is None else _time(value)


def content_hash(content: str) -> str:
    """The identity of a memory's text: identical text in one scope is stored once."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Metadata of one session: when it started, when it last changed, how many items it has."""

    namespace: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    item_count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps RFC 3339, ``Z``): what the API answers."""
        return {
            "namespace": self.namespace,
            "session_id": self.session_id,
            "created_at": format_datetime(self.created_at),
            "updated_at": format_datetime(self.updated_at),
            "item_count": self.item_count,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SessionInfo:
        """The record :meth:`to_dict` (or the API) wrote."""
        return cls(
            namespace=d["namespace"],
            session_id=d["session_id"],
            created_at=_time(d["created_at"]),
            updated_at=_time(d["updated_at"]),
            item_count=int(d["item_count"]),
        )


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
        """JSON-ready form, the one shape of a memory: what the server answers, the client
        reads, ``--json`` prints and export writes (timestamps RFC 3339 with ``Z``;
        ``content_hash`` is left out: it follows from ``content``)."""
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
            "occurred_at": format_optional(self.occurred_at),
            "created_at": format_datetime(self.created_at),
            "updated_at": format_datetime(self.updated_at),
            "version": self.version,
            "invalidated_at": format_optional(self.invalidated_at),
            "invalidated_reason": self.invalidated_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryRecord:
        """The record :meth:`to_dict` (or the API) wrote; ``to_dict`` → JSON → ``from_dict``
        gives an equal record."""
        content = d["content"]
        return cls(
            id=d["id"],
            namespace=d["namespace"],
            content=content,
            user_id=d.get("user_id"),
            agent_id=d.get("agent_id"),
            session_id=d.get("session_id"),
            tags=tuple(d.get("tags") or ()),
            metadata=dict(d.get("metadata") or {}),
            importance=float(d["importance"]),
            occurred_at=_optional_time(d.get("occurred_at")),
            created_at=_time(d["created_at"]),
            updated_at=_time(d["updated_at"]),
            version=int(d["version"]),
            content_hash=d.get("content_hash") or content_hash(content),
            invalidated_at=_optional_time(d.get("invalidated_at")),
            invalidated_reason=d.get("invalidated_reason"),
        )


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
        """JSON-ready form (timestamps RFC 3339 with ``Z``; the namespace is the caller's)."""
        return {
            "id": self.id,
            "memory_id": self.memory_id,
            "at": format_datetime(self.at),
            "action": self.action,
            "reason": self.reason,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "session_id": self.session_id,
            "item_seqs": list(self.item_seqs),
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], namespace: str = "") -> MemoryEvent:
        """The event :meth:`to_dict` (or the API) wrote, in ``namespace``."""
        return cls(
            id=int(d["id"]),
            namespace=d.get("namespace", namespace),
            memory_id=d["memory_id"],
            at=_time(d["at"]),
            action=d["action"],
            reason=d.get("reason"),
            model=d.get("model"),
            prompt_version=d.get("prompt_version"),
            session_id=d.get("session_id"),
            item_seqs=tuple(int(n) for n in d.get("item_seqs") or ()),
            details=dict(d.get("details") or {}),
        )


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

    def to_dict(self) -> dict[str, Any]:
        """The memory's :meth:`~MemoryRecord.to_dict` plus ``status``, ``deduplicated`` and
        ``merged_tags``: one entry of the server's remember answers."""
        return {
            **self.memory.to_dict(),
            "status": self.status,
            "deduplicated": not self.created,
            "merged_tags": list(self.merged_tags),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Remembered:
        """What :meth:`to_dict` wrote."""
        return cls(MemoryRecord.from_dict(d), d["status"], tuple(d.get("merged_tags") or ()))


BatchErrors = Literal["raise", "skip"]
"""What a batch write does with a bad entry: ``"raise"`` (the default) rejects the whole batch
and writes nothing; ``"skip"`` stores the good entries and reports each bad one as an
:class:`EntryError` in its place."""


@dataclass(frozen=True, slots=True)
class EntryError:
    """One entry of a batch write (``errors="skip"``) that was not stored: its position in the
    batch (``index``, from 0), the error's ``code`` (as the server's error bodies name it:
    ``invalid_input``, ``payload_too_large``) and ``message``."""

    index: int
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "code", "message"}``: one entry of a batch answer's ``errors``."""
        return {"index": self.index, "code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EntryError:
        """What :meth:`to_dict` wrote."""
        return cls(int(d["index"]), str(d["code"]), str(d["message"]))


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps RFC 3339 with ``Z``)."""
        return {
            "memory_id": self.memory_id,
            "version": self.version,
            "content": self.content,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "importance": self.importance,
            "replaced_at": format_datetime(self.replaced_at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryVersion:
        """The version :meth:`to_dict` (or the API) wrote."""
        return cls(
            memory_id=d["memory_id"],
            version=int(d["version"]),
            content=d["content"],
            tags=tuple(d.get("tags") or ()),
            metadata=dict(d.get("metadata") or {}),
            importance=float(d["importance"]),
            replaced_at=_time(d["replaced_at"]),
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """A recalled memory with its final score; ``explain`` says why it ranked (if asked)."""

    memory: MemoryRecord
    score: float
    explain: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"memory": <MemoryRecord.to_dict()>, "score", "explain"}``."""
        return {"memory": self.memory.to_dict(), "score": self.score, "explain": self.explain}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Hit:
        """The hit :meth:`to_dict` (or the API) wrote."""
        return cls(MemoryRecord.from_dict(d["memory"]), float(d["score"]), d.get("explain"))


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
        """JSON-ready form (timestamps RFC 3339 with ``Z``)."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "subject": self.subject,
            "predicate": self.predicate,
            "object": self.object,
            "confidence": self.confidence,
            "source": self.source,
            "valid_from": format_datetime(self.valid_from),
            "valid_to": format_optional(self.valid_to),
            "created_at": format_datetime(self.created_at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], namespace: str = "") -> Triple:
        """The triple :meth:`to_dict` (or the API) wrote (``namespace`` when it has none)."""
        return cls(
            id=d["id"],
            namespace=d.get("namespace", namespace),
            subject=d["subject"],
            predicate=d["predicate"],
            object=d["object"],
            confidence=float(d["confidence"]),
            source=d.get("source"),
            valid_from=_time(d["valid_from"]),
            valid_to=_optional_time(d.get("valid_to")),
            created_at=_time(d["created_at"]),
        )


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
        """JSON-ready form (timestamps RFC 3339 with ``Z``); never a secret."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "name": self.name,
            "purpose": self.purpose,
            "prefix": self.prefix,
            "limits": self.limits,
            "created_at": format_datetime(self.created_at),
            "revoked_at": format_optional(self.revoked_at),
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ApiKey:
        """The key :meth:`to_dict` (or the API) wrote."""
        return cls(
            id=d["id"],
            namespace=d["namespace"],
            name=d["name"],
            purpose=d.get("purpose"),
            prefix=d["prefix"],
            limits=dict(d.get("limits") or {}),
            created_at=_time(d["created_at"]),
            revoked_at=_optional_time(d.get("revoked_at")),
            created_by=d.get("created_by"),
        )


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
