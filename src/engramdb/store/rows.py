"""Row <-> record conversions shared by every SQL backend (same columns, same order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import orjson

from ..types import (
    MEMORY_EVENT_ACTIONS,
    ApiKey,
    IdempotentResponse,
    Job,
    MemoryEvent,
    MemoryRecord,
    Spend,
    Triple,
    datetime_from_us,
    us_from_datetime,
)
from ..validation import LONG_NUMBER
from .base import NewMemory, NewMemoryEvent

MEMORY_COLUMNS = (
    "m.rowid, m.id, m.namespace, m.content, m.user_id, m.agent_id, m.session_id, m.tags, "
    "m.metadata, m.importance, m.occurred_at, m.created_at, m.updated_at, m.version, "
    "m.content_hash, m.invalidated_at, m.invalidated_reason"
)
TRIPLE_COLUMNS = (
    "id, namespace, subject, predicate, object, confidence, source, valid_from, valid_to, "
    "created_at"
)
KEY_COLUMNS = "id, namespace, name, purpose, prefix, limits, created_at, revoked_at, created_by"
IDEMPOTENCY_COLUMNS = "request_hash, status, body, created_at"
CONTEXT_SPAN = 2
"""Memories on each side, in the same session, whose text is indexed as a memory's context."""


def memory_record(row: Sequence[Any]) -> MemoryRecord:
    """A record from a row of MEMORY_COLUMNS."""
    return MemoryRecord(
        id=row[1],
        namespace=row[2],
        content=row[3],
        user_id=row[4],
        agent_id=row[5],
        session_id=row[6],
        tags=tuple(orjson.loads(row[7])),
        metadata=from_json(row[8]),
        importance=row[9],
        occurred_at=datetime_from_us(row[10]) if row[10] is not None else None,
        created_at=datetime_from_us(row[11]),
        updated_at=datetime_from_us(row[12]),
        version=row[13],
        content_hash=row[14],
        invalidated_at=datetime_from_us(row[15]) if row[15] is not None else None,
        invalidated_reason=row[16],
    )


EVENT_COLUMNS = (
    "seq, namespace, memory_id, at, action, reason, model, prompt_version, session_id, "
    "item_seqs, details"
)
"""Columns of ``memory_events`` in the order :func:`event_record` reads them."""
MAX_EVENT_TEXT = 10_000
"""Longest ``reason`` (characters) an event may carry; ``details`` at most 64 KiB of JSON."""


def event_rows(namespace: str, events: Sequence[NewMemoryEvent], now: int) -> list[tuple[Any, ...]]:
    """Validated insert rows (every column of EVENT_COLUMNS but seq) for ``events``; raises
    InvalidInputError (nothing is written) if any is malformed."""
    from ..errors import InvalidInputError
    from ..validation import check_depth, check_id, check_text

    rows = []
    for event in events:
        if event.action not in MEMORY_EVENT_ACTIONS:
            raise InvalidInputError(
                f"event action must be one of {', '.join(sorted(MEMORY_EVENT_ACTIONS))}, "
                f"got {event.action!r}"
            )
        check_id("memory_id", event.memory_id)
        for name in ("model", "prompt_version", "session_id"):
            value = getattr(event, name)
            if value is not None:
                check_id(name, value)
        if event.reason is not None:
            if not isinstance(event.reason, str) or "\x00" in event.reason:
                raise InvalidInputError("an event's reason must be text without NUL characters")
            check_text("reason", event.reason)
            if len(event.reason) > MAX_EVENT_TEXT:
                raise InvalidInputError(f"an event's reason is at most {MAX_EVENT_TEXT} characters")
        if event.at is not None and (isinstance(event.at, bool) or not isinstance(event.at, int)):
            raise InvalidInputError("an event's time must be integer microseconds")
        seqs = list(event.item_seqs)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in seqs):
            raise InvalidInputError("item_seqs must be non-negative integers")
        if not isinstance(event.details, dict):
            raise InvalidInputError("event details must be a JSON object")
        check_depth("event details", event.details)
        try:
            details = to_json(event.details)
        except (TypeError, ValueError):
            raise InvalidInputError(
                "event details must be JSON (strings, numbers, lists, objects)"
            ) from None
        if len(details) > 65_536:
            raise InvalidInputError("event details are at most 64 KiB of JSON")
        rows.append(
            (
                namespace,
                event.memory_id,
                event.at if event.at is not None else now,
                event.action,
                event.reason,
                event.model,
                event.prompt_version,
                event.session_id,
                to_json(seqs),
                details,
            )
        )
    return rows


def event_key(event: MemoryEvent | NewMemoryEvent) -> tuple[Any, ...]:
    """What makes two events the same (the store-assigned id aside): how imports and
    ``migrate`` avoid recording an event twice."""
    at = event.at
    if isinstance(at, datetime):
        at = us_from_datetime(at)
    return (
        event.memory_id,
        at,
        event.action,
        event.reason,
        event.model,
        event.prompt_version,
        event.session_id,
        tuple(event.item_seqs),
        orjson.dumps(event.details, option=orjson.OPT_SORT_KEYS),
    )


def new_event(event: MemoryEvent) -> NewMemoryEvent:
    """A stored event as one to record again (in another store), its time kept."""
    return NewMemoryEvent(
        memory_id=event.memory_id,
        action=event.action,
        reason=event.reason,
        model=event.model,
        prompt_version=event.prompt_version,
        session_id=event.session_id,
        item_seqs=event.item_seqs,
        details=event.details,
        at=us_from_datetime(event.at),
    )


def event_record(row: Sequence[Any]) -> MemoryEvent:
    """A memory event from a row of EVENT_COLUMNS."""
    return MemoryEvent(
        id=int(row[0]),
        namespace=row[1],
        memory_id=row[2],
        at=datetime_from_us(row[3]),
        action=row[4],
        reason=row[5],
        model=row[6],
        prompt_version=row[7],
        session_id=row[8],
        item_seqs=tuple(orjson.loads(row[9])),
        details=from_json(row[10]),
    )


def new_record(namespace: str, m: NewMemory, now: int) -> MemoryRecord:
    """The record a just-inserted memory has (no need to read it back)."""
    return MemoryRecord(
        id=m.id,
        namespace=namespace,
        content=m.content,
        user_id=m.user_id,
        agent_id=m.agent_id,
        session_id=m.session_id,
        tags=m.tags,
        metadata=m.metadata,
        importance=m.importance,
        occurred_at=datetime_from_us(m.occurred_at) if m.occurred_at is not None else None,
        created_at=datetime_from_us(m.created_at or now),
        updated_at=datetime_from_us(now),
        version=1,
        content_hash=m.content_hash,
    )


def triple_record(row: Sequence[Any]) -> Triple:
    """A triple from a row of TRIPLE_COLUMNS."""
    return Triple(
        id=row[0],
        namespace=row[1],
        subject=row[2],
        predicate=row[3],
        object=row[4],
        confidence=row[5],
        source=row[6],
        valid_from=datetime_from_us(row[7]),
        valid_to=datetime_from_us(row[8]) if row[8] is not None else None,
        created_at=datetime_from_us(row[9]),
    )


def key_record(row: Sequence[Any]) -> ApiKey:
    """An API key from a row of KEY_COLUMNS."""
    return ApiKey(
        id=row[0],
        namespace=row[1],
        name=row[2],
        purpose=row[3],
        prefix=row[4],
        limits=orjson.loads(row[5]),
        created_at=datetime_from_us(row[6]),
        revoked_at=datetime_from_us(row[7]) if row[7] is not None else None,
        created_by=row[8],
    )


def idempotent_record(row: Sequence[Any]) -> IdempotentResponse:
    """A stored idempotent request from a row of IDEMPOTENCY_COLUMNS."""
    return IdempotentResponse(
        request_hash=row[0],
        status=row[1],
        body=bytes(row[2]) if row[2] is not None else None,
        created_at=datetime_from_us(row[3]),
    )


def check_mark_move(from_seq: int, to_seq: int) -> None:
    """Raise InvalidInputError unless an extraction mark may move from ``from_seq`` to
    ``to_seq`` (integers from -1, "nothing processed", never backwards)."""
    from ..errors import InvalidInputError

    for name, value in (("from_seq", from_seq), ("to_seq", to_seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise InvalidInputError(f"{name} must be an integer >= -1, got {value!r}")
    if to_seq < from_seq:
        raise InvalidInputError(
            f"an extraction mark never moves backwards (from {from_seq} to {to_seq})"
        )


def to_json(value: Any) -> str:
    """Compact JSON text for a stored column (an integer beyond 64 bits is written exactly)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson stops at 64-bit integers; the json module does not
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> Any:
    """A stored JSON column, read back exactly (orjson would turn integers beyond 64 bits
    into floats: such texts go to the json module)."""
    if LONG_NUMBER.search(text):
        return json.loads(text)
    return orjson.loads(text)


# -- jobs ------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "namespace, kind, job_key, status, owner, lease_expires_at, heartbeat_at, "
    "input_watermark, attempts, max_attempts, retry_at, last_error, created_at, updated_at, "
    "sessions, llm_calls, input_tokens, output_tokens"
)
JOB_EXPIRED_ERROR = "the lease expired during the last attempt (the owner stopped renewing it)"


def job_record(row: Sequence[Any], token: str | None = None) -> Job:
    """A ``jobs`` row (``JOB_COLUMNS`` order) as a record; ``token`` only for the claimer."""

    def at(value: Any) -> datetime | None:
        return None if value is None else datetime_from_us(int(value))

    return Job(
        namespace=row[0],
        kind=row[1],
        job_key=row[2],
        status=row[3],
        owner=row[4],
        token=token,
        lease_expires_at=at(row[5]),
        heartbeat_at=at(row[6]),
        input_watermark=row[7],
        attempts=int(row[8]),
        max_attempts=int(row[9]),
        retry_at=at(row[10]),
        last_error=row[11],
        created_at=datetime_from_us(int(row[12])),
        updated_at=datetime_from_us(int(row[13])),
        spend=Spend(int(row[14]), int(row[15]), int(row[16]), int(row[17])),
    )


def check_job_args(
    *, ttl: float | None = None, max_attempts: int | None = None, retry_in: float | None = None
) -> None:
    """InvalidInputError for a lease time, retry budget or retry delay that makes no sense."""
    from ..errors import InvalidInputError

    if ttl is not None and not ttl > 0:
        raise InvalidInputError(f"a job lease's ttl must be a positive number of seconds: {ttl}")
    if max_attempts is not None and max_attempts < 1:
        raise InvalidInputError(f"max_attempts must be at least 1: {max_attempts}")
    if retry_in is not None and not retry_in >= 0:
        raise InvalidInputError(f"retry_in must be zero or more seconds: {retry_in}")


def check_day(day: str) -> None:
    """InvalidInputError unless ``day`` is a ``YYYY-MM-DD`` date."""
    from ..errors import InvalidInputError

    try:
        parsed = date.fromisoformat(day)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise InvalidInputError(f"a day must be a YYYY-MM-DD date: {day!r}")


def job_claim_plan(
    status: str,
    lease_expires_at: int | None,
    attempts: int,
    max_attempts: int,
    retry_at: int | None,
    now: int,
) -> tuple[str, int]:
    """What a claim does to a job row it holds locked: ``("claim", attempts after)``,
    ``("busy", 0)`` (leased to a live owner, waiting for ``retry_at``, or failed), or
    ``("exhaust", 0)``: its lease expired during the last allowed attempt, so instead of being
    taken over it becomes ``failed`` (never left running or pending forever)."""
    if status == "failed":
        return "busy", 0
    if status == "running" and lease_expires_at is not None and lease_expires_at > now:
        return "busy", 0
    if status == "done":  # a completed job runs again (new input): a fresh retry budget
        return "claim", 1
    if retry_at is not None and retry_at > now:
        return "busy", 0
    if attempts >= max_attempts:
        return "exhaust", 0
    return "claim", attempts + 1
