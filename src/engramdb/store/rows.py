"""Row <-> record conversions shared by every SQL backend (same columns, same order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

from ..types import ApiKey, IdempotentResponse, MemoryRecord, Triple, datetime_from_us
from ..validation import LONG_NUMBER
from .base import NewMemory

MEMORY_COLUMNS = (
    "m.rowid, m.id, m.namespace, m.content, m.user_id, m.agent_id, m.session_id, m.tags, "
    "m.metadata, m.importance, m.occurred_at, m.created_at, m.updated_at, m.version, "
    "m.content_hash"
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
