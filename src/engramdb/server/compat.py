"""The compatibility API (DESIGN.md §2): clients of hosted memory services work unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ..memory import MAX_LIMIT
from ..types import MemoryRecord, format_datetime
from .errors import ApiError
from .models import (
    Body,
    Content,
    CursorQuery,
    FactText,
    Fraction,
    JSONObject,
    KeyName,
    Limit,
    Purpose,
    Str,
    Tags,
    TagsText,
)
from .tenant import ServicesDep, TenantDep, one_hop, principal
from .v1 import ERRORS, stats_of

router = APIRouter(responses=ERRORS, tags=["compatibility"])


class RegisterIn(Body):
    agent_name: KeyName
    purpose: Purpose | None = None


class StoreIn(Body):
    content: Content
    tags: Tags | TagsText | None = None
    importance: Fraction | None = None
    metadata: JSONObject | None = None


class CompatRecallIn(Body):
    query: Str = ""
    tags: Tags | TagsText | None = None
    """Exact tags, all of which a memory must carry (a list or a comma-separated string)."""
    limit: Limit = 10


class LearnIn(Body):
    subject: FactText
    predicate: FactText
    object: FactText
    confidence: Fraction | None = None
    source: FactText | None = None


def _memory(record: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    out = {
        "id": record.id,
        "content": record.content,
        "tags": list(record.tags),
        "importance": record.importance,
        "metadata": record.metadata,
        "created_at": format_datetime(record.created_at),
        "updated_at": format_datetime(record.updated_at),
    }
    if score is not None:
        out["score"] = score
    return out


@router.post("/api/keys/register")
@one_hop
def register(request: Request, svc: ServicesDep, body: RegisterIn) -> dict[str, Any]:
    """A new API key bound to a new namespace of its own. Open registration is rate-limited
    per client address (``registrations_per_minute``)."""
    settings = request.app.state.settings
    mode = settings.registration
    if mode == "closed":
        raise ApiError(403, "forbidden", "key registration is disabled on this server")
    if mode == "admin" and not principal(request).admin:
        raise ApiError(403, "forbidden", "key registration needs an admin key on this server")
    if not body.agent_name.strip():
        raise ApiError(422, "validation_error", "agent_name: 1 to 200 characters")
    rate = settings.registrations_per_minute
    if mode == "open" and rate is not None:
        address = request.client.host if request.client else "unknown"
        wait = request.app.state.registrations.take(address, rate / 60.0, float(rate))
        if wait is not None:
            raise ApiError(
                429,
                "rate_limited",
                f"at most {rate} registrations a minute from one address; retry in {wait}s",
                {"Retry-After": str(wait)},
            )
    key, secret = svc.keys.create(None, body.agent_name, body.purpose)
    return {
        "api_key": secret,
        "key_id": key.id,
        "namespace": key.namespace,
        "agent_name": key.name,
    }


def _tags(tags: list[str] | str | None) -> list[str]:
    """Tags given as a list or as one comma-separated string."""
    if isinstance(tags, str):
        return [part.strip() for part in tags.split(",") if part.strip()]
    return list(tags or ())


@router.post("/api/memory/store")
@one_hop
def store(t: TenantDep, body: StoreIn) -> dict[str, Any]:
    """Store one memory (identical content is stored once; new tags merge into it)."""
    result = t.memory.remember_results(
        [
            {
                "content": body.content,
                "tags": _tags(body.tags),
                "metadata": body.metadata,
                "importance": 0.5 if body.importance is None else body.importance,
            }
        ],
        quota=t.quota,
    )[0]
    record = result.memory
    return {
        "success": True,
        "memory_id": record.id,
        "id": record.id,
        "memory": _memory(record),
        # identical content is stored once per namespace: its new tags are merged into it
        "status": result.status,
        "deduplicated": not result.created,
        "merged_tags": list(result.merged_tags),
    }


@router.post("/api/memory/recall")
@one_hop
def recall(t: TenantDep, body: CompatRecallIn) -> dict[str, Any]:
    """Memories for a query, searched over content and tags.

    ``tags`` keeps only memories carrying every one of them (exact). A query made only of
    ``key:value`` tags, or an empty query with ``tags``, is a pure tag lookup: exactly the
    memories with those tags, newest first, no fuzzy or vector hits."""
    t.limiter.count_recall(t.key, t.ancestors)
    tags = _tags(body.tags)
    with t.recall_turn("hybrid"):
        hits = t.memory.recall(body.query, tags=tags or None, limit=body.limit)
    return {
        "memories": [_memory(h.memory, h.score) for h in hits],
        "count": len(hits),
        "query": body.query,
    }


@router.post("/api/memory/learn")
@one_hop
def learn(t: TenantDep, body: LearnIn) -> dict[str, Any]:
    """Store a knowledge triple."""
    triple = t.memory.learn(
        body.subject,
        body.predicate,
        body.object,
        confidence=1.0 if body.confidence is None else body.confidence,
        source=body.source,
        quota=t.quota,
    )
    return {"success": True, "id": triple.id, "triple": triple.to_dict()}


@router.get("/api/memory/list")
@one_hop
def list_memories(
    t: TenantDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Memories in the order they were stored: ``limit`` + ``offset``, or ``cursor``."""
    items: list[MemoryRecord] = []
    next_cursor = cursor
    skip = offset if cursor is None else 0
    while True:  # walk pages past the offset; cursors keep each step an index range
        page = t.memory.list(cursor=next_cursor, limit=min(MAX_LIMIT, skip + limit))
        take = page.items[skip:]
        skip = max(0, skip - len(page.items))
        items += take[: limit - len(items)]
        next_cursor = page.next_cursor
        if len(items) >= limit or next_cursor is None:
            break
    total = t.memory.stats().memories
    return {
        "memories": [_memory(r) for r in items],
        "count": len(items),
        "total": total,
        "next_cursor": next_cursor if len(items) == limit else None,
    }


@router.get("/api/memory/stats")
@one_hop
def stats(t: TenantDep) -> dict[str, Any]:
    """Usage: counts, today's recalls, limits and quota left."""
    out = stats_of(t)
    out["recalls_today"] = out["usage"]["recalls_today"]
    out["quota_remaining"] = out["remaining"]
    return out
