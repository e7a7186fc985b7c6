"""Request and response bodies of the HTTP API (they are also the OpenAPI schema)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from ..cursors import CURSOR_PATTERN
from ..filters import MAX_METADATA_FILTER_KEYS, MAX_TAG_LENGTH, MAX_TAGS
from ..memory import MAX_FACT_CHARS, MAX_LIMIT
from ..types import DATETIME_EXAMPLE, EntryError, Remembered
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


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _json_number(value: object) -> object:
    if isinstance(value, (str, bytes, bool)):
        raise ValueError("must be a JSON number")
    return value


def _not_a_number(value: object) -> object:
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date/time string")
    return value


def _in_range(value: datetime) -> datetime:
    try:
        (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("date/time is out of range once converted to UTC") from None
    return value


_Unicode = AfterValidator(_valid_text)
SPACE_CHARS = (
    r"\x00\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
NON_BLANK = rf"^[^\x00]*[^{SPACE_CHARS}][^\x00]*$"
r"""Some character that is neither NUL nor white space (``str.isspace``, spelled out: regex
engines disagree on ``\s``), and no NUL: what ids, tags and content must be."""

# Strict scalars: "0.5" is not a number and 1 is not a string.
Str = Annotated[str, Strict(), _Unicode]
"""Unbounded in the schema: only for queries (any text is a query; the library bounds its
length with a 413)."""
Content = Annotated[str, Strict(), Field(pattern=NON_BLANK), _Unicode]
"""Its length is bounded by the library, which answers 413 naming the limit."""
Id = Annotated[str, Strict(), Field(max_length=MAX_ID_LENGTH, pattern=NON_BLANK), _Unicode]
Tag = Annotated[str, Strict(), Field(max_length=MAX_TAG_LENGTH, pattern=NON_BLANK), _Unicode]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
_TAG_PART = rf"[^,\x00]{{0,{MAX_TAG_LENGTH}}}"
TagsText = Annotated[
    str,
    Strict(),
    Field(pattern=rf"^{_TAG_PART}(,{_TAG_PART}){{0,{MAX_TAGS - 1}}}$"),
    _Unicode,
]
"""Tags as one comma-separated string (the compatibility API): at most MAX_TAGS parts of at
most MAX_TAG_LENGTH characters."""
FactText = Annotated[str, Strict(), Field(max_length=MAX_FACT_CHARS, pattern=NON_BLANK), _Unicode]
KEY_NAME_CHARS = 200
PURPOSE_CHARS = 1000
KeyName = Annotated[str, Strict(), Field(max_length=KEY_NAME_CHARS, pattern=NON_BLANK), _Unicode]
Purpose = Annotated[str, Strict(), Field(max_length=PURPOSE_CHARS), _Unicode]
Int = Annotated[int, BeforeValidator(_json_number)]
"""An integer as JSON has it: ``7`` or ``7.0``, never ``"7"`` or ``true``."""
DateTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_in_range)]
"""An ISO 8601 date/time string (a number is not one), within the years 1 to 9999 in UTC."""
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
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_json_number)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_valid_json)]
"""Any JSON object nested at most MAX_JSON_DEPTH deep, of valid Unicode."""
MetadataValue = Annotated[str, Strict(), Field(max_length=MAX_FACT_CHARS), _Unicode] | Bool | Number
MetadataFilter = Annotated[
    dict[Id, MetadataValue],
    Field(
        max_length=MAX_METADATA_FILTER_KEYS,
        # every key must match (patternProperties alone would let other keys through)
        json_schema_extra={
            "propertyNames": {"maxLength": MAX_ID_LENGTH, "pattern": NON_BLANK},
            "additionalProperties": False,
        },
    ),
]
MAX_BATCH = 1000
MAX_ITEMS = 10_000


# query parameters
IdQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, pattern=NON_BLANK)]
FactQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_FACT_CHARS, pattern=NON_BLANK)]
TagQuery = Annotated[list[Tag] | None, Query(max_length=MAX_TAGS)]
DateTimeQuery = Annotated[DateTime | None, Query()]
CursorQuery = Annotated[str | None, Query(pattern=CURSOR_PATTERN)]
"""A memory list cursor (``next_cursor`` of the previous page)."""


class Body(BaseModel):
    """Request bodies reject unknown fields."""

    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------
class MemoryIn(Body):
    content: Content
    user_id: Id | None = None
    agent_id: Id | None = None
    session_id: Id | None = None
    tags: Tags = []
    metadata: JSONObject = {}
    importance: Fraction = 0.5
    occurred_at: DateTime | None = None


def validation_message(errors: Sequence[Any]) -> str:
    """What a request's validation errors (pydantic's ``errors()``) say, in one line: the
    field's dotted path and the problem, at most five of them."""
    parts = []
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        kind = str(e.get("type", ""))
        if kind == "extra_forbidden":
            parts.append(f"{where}: unknown field")
        elif kind == "missing":
            parts.append(f"{where}: field required")
        elif kind.startswith(("datetime_", "date_")):
            parts.append(f"{where}: {DATETIME_MESSAGE}")
        elif kind == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == NON_BLANK:
            parts.append(f"{where}: must not be empty or blank (nor contain NUL)")
        elif kind == "value_error":  # the library's own check (InvalidInputError): its words
            parts.append(f"{where}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}")
        else:
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


DATETIME_MESSAGE = f"must be an ISO 8601 date/time such as {DATETIME_EXAMPLE!r}"


def _entries_checked_by_mode(schema: dict[str, Any]) -> None:
    # errors "raise" (or left out): every entry must be a memory, or the request is a 422;
    # errors "skip": any entry is accepted and a bad one is reported in the answer
    memories = schema["properties"]["memories"]
    entry = memories.pop("items")
    schema["if"] = {"properties": {"errors": {"const": "skip"}}, "required": ["errors"]}
    schema["then"] = {"properties": {"memories": {"items": {}}}}
    schema["else"] = {"properties": {"memories": {"items": entry}}}


class MemoryBatchIn(Body):
    """Up to 1,000 memories. ``errors: "raise"`` (the default): one bad entry rejects the
    batch, nothing is stored. ``errors: "skip"``: the good entries are stored and the answer
    reports each bad one (``errors``: its index, code and message; ``null`` in its place in
    ``memories``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_entries_checked_by_mode)

    memories: Annotated[list[MemoryIn], Field(min_length=1, max_length=MAX_BATCH)]
    errors: Literal["raise", "skip"] = Field(
        default="raise",
        description="raise: all or nothing. skip: store the good entries, report the bad ones",
    )
    _skipped: list[EntryError] = PrivateAttr(default_factory=list)
    _count: int = PrivateAttr(default=0)

    @model_validator(mode="wrap")
    @classmethod
    def _skip_bad_entries(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        entries = data.get("memories") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("errors") != "skip"
            or not isinstance(entries, list)
            or not 1 <= len(entries) <= MAX_BATCH
        ):
            batch = handler(data)
            batch._count = len(batch.memories)
            return batch
        good: list[Any] = []
        skipped: list[EntryError] = []
        for n, entry in enumerate(entries):
            try:
                good.append(MemoryIn.model_validate(entry))
            except ValidationError as exc:
                message = validation_message(exc.errors(include_url=False))
                skipped.append(EntryError(n, "validation_error", message))
        if good:
            batch = handler({**data, "memories": [m.model_dump() for m in good]})
        else:
            handler({**data, "memories": [{"content": "x"}]})  # the other fields still checked
            batch = cls.model_construct(memories=[], errors="skip")
        batch._skipped = skipped
        batch._count = len(entries)
        return batch

    @property
    def skipped(self) -> list[EntryError]:
        """The entries the schema refused (``errors: "skip"`` only), by their batch index."""
        return self._skipped

    @property
    def count(self) -> int:
        """How many entries the request held (refused ones included)."""
        return self._count


class FiltersIn(Body):
    user_id: Id | None = None
    agent_id: Id | None = None
    session_id: Id | None = None
    tags: Tags | None = None
    metadata: MetadataFilter | None = None
    since: DateTime | None = None
    until: DateTime | None = None

    def to_filter(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RecallIn(Body):
    query: Str = ""
    filters: FiltersIn | None = None
    limit: Limit = 10
    mode: Literal["hybrid", "text", "vector"] = "hybrid"
    explain: Bool = False
    min_score: Number | None = Field(
        default=0.0,
        description="only hits scoring at least this, and never one no lane matched and no "
        "boost scored (no signal); null returns every candidate",
    )
    as_of: DateTime | None = Field(
        None,
        description='the time the query\'s time words ("last weekend", "in May") are '
        "read against; default: now",
    )


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # leaving the field out is the default; null is not a value


class MemoryPatch(Body):
    """At least one field; ``null`` is not a value (leave the field out to keep it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    content: Content | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    tags: Tags | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    metadata: JSONObject | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    importance: Fraction | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)

    @model_validator(mode="before")
    @classmethod
    def _some_change(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("pass at least one of content, tags, metadata, importance")
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not a value; leave it out")
        return data


_ID_GIVEN = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": NON_BLANK}
_SCOPES: dict[str, dict[str, Any]] = {
    "user_id": _ID_GIVEN,
    "agent_id": _ID_GIVEN,
    "session_id": _ID_GIVEN,
    "tags": {"type": "array", "minItems": 1, "maxItems": MAX_TAGS},
    "metadata": {"type": "object", "minProperties": 1, "maxProperties": MAX_METADATA_FILTER_KEYS},
}
"""What gives a forget filter a scope (:attr:`engramdb.Filter.has_scope`): one of these given;
``since``/``until`` only narrow a scope."""


def _one_of_required(names: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"required": [name], "properties": {name: given}} for name, given in names.items()]


def _scoped_forget(schema: dict[str, Any]) -> None:
    # a scope in the filters, or all: true on purpose
    schema["anyOf"] = [
        {"required": ["all"], "properties": {"all": {"const": True}}},
        {"required": ["filters"], "properties": {"filters": {"anyOf": _one_of_required(_SCOPES)}}},
    ]


def _some_part(schema: dict[str, Any]) -> None:
    parts = ("subject", "predicate", "object")
    given = {"type": "string", "maxLength": MAX_FACT_CHARS, "pattern": NON_BLANK}
    schema["anyOf"] = _one_of_required({name: given for name in parts})


class ForgetIn(Body):
    """A scoped forget: ``filters`` must name user, agent, session, tags or metadata
    (``since``/``until`` only narrow them); ``all: true`` forgets the whole namespace on
    purpose (within ``since``/``until`` if given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_scoped_forget)

    filters: FiltersIn | None = None
    all: Bool = False
    dry_run: Bool = False


class FactsForgetIn(Body):
    """Forget every fact (current and superseded) matching a pattern; one part is required."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_some_part)

    subject: FactText | None = None
    predicate: FactText | None = None
    object: FactText | None = None
    dry_run: Bool = False


class ItemsIn(Body):
    items: Annotated[list[JSONObject], Field(max_length=MAX_ITEMS)]


class ExtractIn(Body):
    """Messages to store in a session and turn into memories (``POST /v1/memories/extract``)."""

    session_id: Id
    messages: Annotated[list[JSONObject], Field(max_length=MAX_ITEMS)]
    user_id: Id | None = None
    agent_id: Id | None = None
    infer: Bool = Field(
        default=True,
        description="let the server's LLM extract and decide; false stores each message as "
        "said (deduplicated)",
    )
    dry_run: Bool = Field(
        default=False, description="decide without applying (the messages are stored)"
    )


class SessionExtractIn(Body):
    """Extract what a session holds past its high-water mark."""

    user_id: Id | None = None
    agent_id: Id | None = None
    infer: Bool = True
    dry_run: Bool = False


REASON_CHARS = 1000
Reason = Annotated[str, Strict(), Field(max_length=REASON_CHARS), _Unicode]


class ReasonIn(Body):
    """Why (optional; recorded on the memory's event)."""

    reason: Reason | None = None


class TripleIn(Body):
    subject: FactText
    predicate: FactText
    object: FactText
    confidence: Fraction = 1.0
    source: FactText | None = None
    valid_from: DateTime | None = None
    valid_to: DateTime | None = None
    single_valued: Bool = False


class LimitsIn(Body):
    max_memories: Annotated[int, Field(ge=0, le=2**53), BeforeValidator(_json_number)] | None = None
    max_facts: Annotated[int, Field(ge=0, le=2**53), BeforeValidator(_json_number)] | None = None
    recalls_per_day: Annotated[int, Field(ge=0, le=2**53), BeforeValidator(_json_number)] | None = (
        None
    )
    requests_per_second: (
        Annotated[int, Field(ge=1, le=10**6), BeforeValidator(_json_number)] | None
    ) = None


class KeyIn(Body):
    name: KeyName
    purpose: Purpose | None = None
    namespace: Id | None = None
    limits: LimitsIn | None = None


# -- responses ----------------------------------------------------------------------------
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""A time as a record's ``to_dict()`` writes it (RFC 3339, UTC, ``Z``): passed through as is."""
_Out = TypeVar("_Out", bound="FromRecord")


def records_json(model: type[BaseModel], content: dict[str, Any]) -> Response:
    """A 200 answer of ``model``, given as records' ``to_dict()`` shapes (which the
    :class:`FromRecord` models mirror field by field), serialised once by orjson: the JSON
    FastAPI writes for the route's response model, without building, validating and dumping
    a model per record (issue 14: a tenth of a recall's time in the server, beside the
    library call). Content orjson cannot write (an integer beyond 64 bits in metadata) goes
    through the model, as before."""
    try:
        body = orjson.dumps(content)
    except TypeError:
        body = model.model_validate(content).model_dump_json().encode()
    return Response(body, media_type="application/json")


class FromRecord(BaseModel):
    """A response model of a library record: its fields are exactly the keys of the record's
    ``to_dict()`` (tests/server check it), and it is built from that dict, so the record
    shape is written once, in ``types.py``."""

    @classmethod
    def of(cls: type[_Out], record: Any) -> _Out:
        return cls.model_validate(record.to_dict())


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
    occurred_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    invalidated_at: Timestamp | None = Field(
        default=None,
        description="when the memory was invalidated (excluded from recall, kept with its "
        "history, restorable); null while it is live",
    )
    invalidated_reason: str | None = Field(
        default=None, description="why it was invalidated, if a reason was given"
    )


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
        return cls.of(result)


class EventOut(FromRecord):
    """One recorded decision about a memory."""

    id: int
    memory_id: str
    at: Timestamp
    action: str = Field(description="add, update, delete, invalidate, restore, none or merge")
    reason: str | None
    model: str | None = Field(description="the model that decided (null: a person or a rule)")
    prompt_version: str | None
    session_id: str | None = Field(description="the session the decision came from")
    item_seqs: list[int] = Field(description="the session items it came from")
    details: dict[str, Any]


class EventsOut(BaseModel):
    events: list[EventOut]


class CandidateOut(BaseModel):
    """What the model extracted from the conversation."""

    type: str
    content: str
    about: str
    occurred_at: str | None
    source_seqs: list[int]
    importance: float
    session_id: str
    user_id: str | None
    agent_id: str | None


class DecisionOut(BaseModel):
    """What to do with one candidate: add, update, delete (invalidate) or none."""

    action: str
    target_id: str | None = Field(description="the existing memory an update/delete acts on")
    new_content: str | None
    reason: str
    model: str | None
    prompt_version: str
    target_content: str | None
    candidate: CandidateOut


class AppliedOut(BaseModel):
    """One decision as applied, and the memory it produced or touched."""

    action: str
    memory_id: str | None
    reason: str
    model: str | None
    prompt_version: str
    session_id: str
    seqs: list[int]
    content: str | None
    previous_content: str | None
    at: datetime


class ExtractOut(BaseModel):
    session_id: str
    stored: int = Field(description="messages stored in the session by this request")
    dry_run: bool
    decisions: list[DecisionOut]
    applied: list[AppliedOut] = Field(description="empty on a dry run")
    tokens: int = Field(description="LLM tokens this extraction used")


class HitOut(FromRecord):
    memory: MemoryOut
    score: float
    explain: dict[str, Any] | None = None


class RecallOut(BaseModel):
    hits: list[HitOut]


class EntryErrorOut(FromRecord):
    """One batch entry that was not stored (``errors: "skip"``)."""

    index: int = Field(description="its position in the request's list, from 0")
    code: str = Field(description="validation_error, invalid_input or payload_too_large")
    message: str


class MemoriesOut(BaseModel):
    memories: list[RememberedOut | None] = Field(
        description="one per entry, in order; null for an entry that was skipped"
    )
    errors: list[EntryErrorOut] = Field(
        default_factory=list, description='the skipped entries (errors: "skip"), by index'
    )


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
    replaced_at: Timestamp


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
    valid_from: Timestamp
    valid_to: Timestamp | None
    created_at: Timestamp


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
    created_at: Timestamp
    updated_at: Timestamp
    item_count: int


class SessionPageOut(BaseModel):
    sessions: list[SessionOut]
    next_cursor: str | None


class ItemsOut(BaseModel):
    items: list[dict[str, Any]]


class AddedOut(BaseModel):
    added: int


class ReplacedOut(BaseModel):
    """``PUT /v1/sessions/{id}/items``: items removed and items now in the session."""

    removed: int
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
    created_at: Timestamp
    revoked_at: Timestamp | None
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
    """``healthy``, or ``unhealthy`` (HTTP 503) when the store cannot serve requests."""
    version: str
    store: str
    error: ErrorDetail | None = None
    """Why the server is unhealthy (only then)."""
