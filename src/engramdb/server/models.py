"""Request and response bodies of the HTTP API (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict

from ..memory import MAX_LIMIT
from ..types import Remembered

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
    query: Str = ""
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
    """A scoped forget: ``filters`` must name user, agent, session, tags or metadata
    (``since``/``until`` only narrow them); ``all: true`` forgets the whole namespace on
    purpose (within ``since``/``until`` if given)."""

    filters: FiltersIn | None = None
    all: Bool = False
    dry_run: Bool = False


class FactsForgetIn(Body):
    """Forget every fact (current and superseded) matching a pattern; one part is required."""

    subject: Str | None = None
    predicate: Str | None = None
    object: Str | None = None
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
    max_facts: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    recalls_per_day: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    requests_per_second: Annotated[int, Strict(), Field(ge=1, le=10**6)] | None = None


class KeyIn(Body):
    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    purpose: Annotated[str, Strict(), Field(max_length=1000)] | None = None
    namespace: Str | None = None
    limits: LimitsIn | None = None


# -- responses ----------------------------------------------------------------------------
_Out = TypeVar("_Out", bound="FromRecord")


class FromRecord(BaseModel):
    """A response model read from the library record with the same fields."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls: type[_Out], record: object) -> _Out:
        return cls.model_validate(record)


class MemoryOut(FromRecord):
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


class RememberedOut(MemoryOut):
    """A stored memory and what storing it did."""

    status: Literal["created", "merged", "existing"] = Field(
        description="created: a new memory. merged: identical content was already stored in "
        "this scope (namespace, user, agent, session); the new tags were added to it. "
        "existing: identical, and it already had every tag."
    )
    deduplicated: bool = Field(description="true when no new memory was created")
    merged_tags: list[str] = Field(description="tags added to the existing memory")

    @classmethod
    def of_result(cls, result: Remembered) -> RememberedOut:
        return cls.model_validate(
            {
                **MemoryOut.of(result.memory).model_dump(),
                "status": result.status,
                "deduplicated": not result.created,
                "merged_tags": list(result.merged_tags),
            }
        )


class HitOut(FromRecord):
    memory: MemoryOut
    score: float
    explain: dict[str, Any] | None = None


class RecallOut(BaseModel):
    hits: list[HitOut]


class MemoriesOut(BaseModel):
    memories: list[RememberedOut]


class MemoryPageOut(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None


class VersionOut(FromRecord):
    memory_id: str
    version: int
    content: str
    tags: list[str]
    metadata: dict[str, Any]
    importance: float
    replaced_at: datetime


class HistoryOut(BaseModel):
    versions: list[VersionOut]


class ForgetOut(BaseModel):
    ids: list[str]
    count: int
    dry_run: bool


class TripleOut(FromRecord):
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


class SessionOut(FromRecord):
    namespace: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    item_count: int


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


class KeyOut(FromRecord):
    id: str
    namespace: str
    name: str
    purpose: str | None
    prefix: str
    limits: dict[str, int | None]
    created_at: datetime
    revoked_at: datetime | None
    created_by: str | None = Field(
        default=None, description="The namespace key that created this one (null: an admin)."
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
    facts: int
    recalls_today: int


class RemainingOut(BaseModel):
    memories: int | None
    facts: int | None
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
    """``healthy``, or ``unhealthy`` (HTTP 503) when the store cannot serve requests."""
    version: str
    store: str
    error: ErrorDetail | None = None
    """Why the server is unhealthy (only then)."""
