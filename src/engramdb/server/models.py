"""Request and response bodies of the HTTP API (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from ..memory import MAX_LIMIT
from ..types import ApiKey, Hit, MemoryRecord, MemoryVersion, SessionInfo, Triple

# Strict scalars: "0.5" is not a number and 1 is not a string.
Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Number = Annotated[float, Strict()] | Annotated[int, Strict()]
Limit = Annotated[int, Strict(), Field(ge=1, le=MAX_LIMIT)]


class Body(BaseModel):
    """Request bodies reject unknown fields."""

    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------
class MemoryIn(Body):
    content: Str
    user_id: Str | None = None
    agent_id: Str | None = None
    session_id: Str | None = None
    tags: list[Str] = []
    metadata: dict[str, Any] = {}
    importance: Number = 0.5
    occurred_at: datetime | None = None


class MemoryBatchIn(Body):
    memories: Annotated[list[MemoryIn], Field(min_length=1, max_length=1000)]


class FiltersIn(Body):
    user_id: Str | None = None
    agent_id: Str | None = None
    session_id: Str | None = None
    tags: list[Str] | None = None
    metadata: dict[str, Any] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def to_filter(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RecallIn(Body):
    query: Str
    filters: FiltersIn | None = None
    limit: Limit = 10
    mode: Literal["hybrid", "text", "vector"] = "hybrid"
    explain: Bool = False


class MemoryPatch(Body):
    content: Str | None = None
    tags: list[Str] | None = None
    metadata: dict[str, Any] | None = None
    importance: Number | None = None


class ForgetIn(Body):
    filters: FiltersIn
    dry_run: Bool = False


class ItemsIn(Body):
    items: list[dict[str, Any]]


class TripleIn(Body):
    subject: Str
    predicate: Str
    object: Str
    confidence: Number = 1.0
    source: Str | None = None
    valid_from: datetime | None = None
    single_valued: Bool = False


class LimitsIn(Body):
    max_memories: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    recalls_per_day: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    requests_per_second: Annotated[int, Strict(), Field(ge=1, le=10**6)] | None = None


class KeyIn(Body):
    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    purpose: Annotated[str, Strict(), Field(max_length=1000)] | None = None
    namespace: Str | None = None
    limits: LimitsIn | None = None


# -- responses ----------------------------------------------------------------------------
class MemoryOut(BaseModel):
    id: str
    namespace: str
    content: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    importance: float
    occurred_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, record: MemoryRecord) -> MemoryOut:
        return cls(
            id=record.id,
            namespace=record.namespace,
            content=record.content,
            user_id=record.user_id,
            agent_id=record.agent_id,
            session_id=record.session_id,
            tags=list(record.tags),
            metadata=record.metadata,
            importance=record.importance,
            occurred_at=record.occurred_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )


class HitOut(BaseModel):
    memory: MemoryOut
    score: float
    explain: dict[str, Any] | None = None

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(memory=MemoryOut.of(hit.memory), score=hit.score, explain=hit.explain)


class RecallOut(BaseModel):
    hits: list[HitOut]


class MemoriesOut(BaseModel):
    memories: list[MemoryOut]


class MemoryPageOut(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None


class VersionOut(BaseModel):
    memory_id: str
    version: int
    content: str
    tags: list[str]
    metadata: dict[str, Any]
    importance: float
    replaced_at: datetime

    @classmethod
    def of(cls, v: MemoryVersion) -> VersionOut:
        return cls(
            memory_id=v.memory_id,
            version=v.version,
            content=v.content,
            tags=list(v.tags),
            metadata=v.metadata,
            importance=v.importance,
            replaced_at=v.replaced_at,
        )


class HistoryOut(BaseModel):
    versions: list[VersionOut]


class ForgetOut(BaseModel):
    ids: list[str]
    count: int
    dry_run: bool


class TripleOut(BaseModel):
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

    @classmethod
    def of(cls, t: Triple) -> TripleOut:
        return cls(
            id=t.id,
            namespace=t.namespace,
            subject=t.subject,
            predicate=t.predicate,
            object=t.object,
            confidence=t.confidence,
            source=t.source,
            valid_from=t.valid_from,
            valid_to=t.valid_to,
            created_at=t.created_at,
        )


class LearnOut(BaseModel):
    triple: TripleOut
    superseded: list[TripleOut]
    created: bool


class TriplesOut(BaseModel):
    triples: list[TripleOut]


class NeighborsOut(BaseModel):
    entity: str
    triples: list[TripleOut]
    entities: list[str]


class SessionOut(BaseModel):
    namespace: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    item_count: int

    @classmethod
    def of(cls, info: SessionInfo) -> SessionOut:
        return cls(
            namespace=info.namespace,
            session_id=info.session_id,
            created_at=info.created_at,
            updated_at=info.updated_at,
            item_count=info.item_count,
        )


class SessionPageOut(BaseModel):
    sessions: list[SessionOut]
    next_cursor: str | None


class ItemsOut(BaseModel):
    items: list[dict[str, Any]]


class AddedOut(BaseModel):
    added: int


class PoppedOut(BaseModel):
    item: dict[str, Any] | None


class ClearedOut(BaseModel):
    removed: int


class DeletedOut(BaseModel):
    deleted: bool


class KeyOut(BaseModel):
    id: str
    namespace: str
    name: str
    purpose: str | None
    prefix: str
    limits: dict[str, int | None]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            namespace=key.namespace,
            name=key.name,
            purpose=key.purpose,
            prefix=key.prefix,
            limits=key.limits,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class NewKeyOut(BaseModel):
    api_key: str = Field(description="The secret. Shown once: only its hash is stored.")
    key: KeyOut


class KeysOut(BaseModel):
    keys: list[KeyOut]


class RevokedOut(BaseModel):
    key: KeyOut


class UsageOut(BaseModel):
    memories: int
    recalls_today: int


class RemainingOut(BaseModel):
    memories: int | None
    recalls_today: int | None


class StatsOut(BaseModel):
    namespace: str
    memories: int
    embedded: int
    triples: int
    current_triples: int
    sessions: int
    session_items: int
    usage: UsageOut
    limits: dict[str, int | None]
    remaining: RemainingOut


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str
    version: str
    store: str
