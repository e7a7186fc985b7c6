"""Request and response bodies of the HTTP API (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from ..filters import MAX_METADATA_FILTER_KEYS, MAX_TAG_LENGTH, MAX_TAGS
from ..memory import MAX_FACT_CHARS, MAX_LIMIT
from ..validation import MAX_ID_LENGTH, check_depth, check_text

# Every field of every request body is bounded here, once: strings in length and to valid
# Unicode (a lone surrogate such as "\ud800" cannot be stored), numbers to finite values in
# range, lists in count, JSON objects in nesting depth. Content and queries have no schema
# bound: the library checks them against its configured limits and answers 413 naming the
# limit (GET /v1/limits lists them all); the body size limit bounds them first.


def _valid_text(value: str) -> str:
    return check_text("string", value)  # InvalidInputError is a ValueError: a 422


def _valid_json(value: dict[str, Any]) -> dict[str, Any]:
    check_depth("value", value)
    _check_strings(value)
    return value


def _check_strings(value: object) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            check_text("string", node)
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_Unicode = AfterValidator(_valid_text)

# Strict scalars: "0.5" is not a number and 1 is not a string.
Str = Annotated[str, Strict(), _Unicode]
"""Unbounded in the schema: only for content and queries, which the library bounds (413)."""
Id = Annotated[str, Strict(), Field(max_length=MAX_ID_LENGTH), _Unicode]
Tag = Annotated[str, Strict(), Field(max_length=MAX_TAG_LENGTH), _Unicode]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
TagsText = Annotated[str, Strict(), Field(max_length=MAX_TAGS * (MAX_TAG_LENGTH + 1)), _Unicode]
"""Tags as one comma-separated string (the compatibility API)."""
FactText = Annotated[str, Strict(), Field(max_length=MAX_FACT_CHARS), _Unicode]
KEY_NAME_CHARS = 200
PURPOSE_CHARS = 1000
KeyName = Annotated[str, Strict(), Field(min_length=1, max_length=KEY_NAME_CHARS), _Unicode]
Purpose = Annotated[str, Strict(), Field(max_length=PURPOSE_CHARS), _Unicode]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Number = (
    Annotated[float, Strict(), Field(allow_inf_nan=False)]
    | Annotated[int, Strict(), Field(ge=-(2**63), lt=2**63)]
)
Fraction = (
    Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
    | Annotated[int, Strict(), Field(ge=0, le=1)]
)
"""A number from 0 to 1 (importance, confidence)."""
Limit = Annotated[int, Strict(), Field(ge=1, le=MAX_LIMIT)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_valid_json)]
"""Any JSON object nested at most MAX_JSON_DEPTH deep, of valid Unicode."""
MetadataValue = Annotated[str, Strict(), Field(max_length=MAX_FACT_CHARS), _Unicode] | Bool | Number
MAX_BATCH = 1000
MAX_ITEMS = 10_000


class Body(BaseModel):
    """Request bodies reject unknown fields."""

    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------
class MemoryIn(Body):
    content: Str
    user_id: Id | None = None
    agent_id: Id | None = None
    session_id: Id | None = None
    tags: Tags = []
    metadata: JSONObject = {}
    importance: Fraction = 0.5
    occurred_at: datetime | None = None


class MemoryBatchIn(Body):
    memories: Annotated[list[MemoryIn], Field(min_length=1, max_length=MAX_BATCH)]


class FiltersIn(Body):
    user_id: Id | None = None
    agent_id: Id | None = None
    session_id: Id | None = None
    tags: Tags | None = None
    metadata: (
        Annotated[dict[Id, MetadataValue], Field(max_length=MAX_METADATA_FILTER_KEYS)] | None
    ) = None
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
    tags: Tags | None = None
    metadata: JSONObject | None = None
    importance: Fraction | None = None


class ForgetIn(Body):
    filters: FiltersIn
    dry_run: Bool = False


class ItemsIn(Body):
    items: Annotated[list[JSONObject], Field(max_length=MAX_ITEMS)]


class TripleIn(Body):
    subject: FactText
    predicate: FactText
    object: FactText
    confidence: Fraction = 1.0
    source: FactText | None = None
    valid_from: datetime | None = None
    single_valued: Bool = False


class LimitsIn(Body):
    max_memories: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    recalls_per_day: Annotated[int, Strict(), Field(ge=0, le=2**53)] | None = None
    requests_per_second: Annotated[int, Strict(), Field(ge=1, le=10**6)] | None = None


class KeyIn(Body):
    name: KeyName
    purpose: Purpose | None = None
    namespace: Id | None = None
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


class HitOut(FromRecord):
    memory: MemoryOut
    score: float
    explain: dict[str, Any] | None = None


class RecallOut(BaseModel):
    hits: list[HitOut]


class MemoriesOut(BaseModel):
    memories: list[MemoryOut]


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


class LimitsOut(BaseModel):
    """Size limits of this server (README "Limits" table)."""

    content_chars: int = Field(description="characters of a memory's content (413 beyond)")
    metadata_bytes: int = Field(description="bytes of a memory's metadata as JSON (413)")
    query_chars: int = Field(description="characters of a recall query (413)")
    body_bytes: int = Field(description="bytes of a request body (413)")
    batch_memories: int = Field(description="memories in one batch")
    session_items_per_request: int = Field(description="session items in one append")
    tags_per_memory: int
    tag_chars: int
    id_chars: int = Field(description="characters of an id: session, user, agent, namespace")
    fact_chars: int = Field(description="characters of a triple's subject/predicate/object")
    json_depth: int = Field(description="nesting depth of metadata and session items")
    page_limit: int = Field(description="largest `limit` of a recall or list page")
    metadata_filter_keys: int
    key_name_chars: int
    purpose_chars: int
    registrations_per_minute: int | None = Field(
        description="open registrations per client address and minute (null: unlimited)"
    )


class HealthOut(BaseModel):
    status: str
    version: str
    store: str
