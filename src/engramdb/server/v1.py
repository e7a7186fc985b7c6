"""REST API v1: sessions, memories, triples, stats, keys."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Body, Query, Request, Response

from ..cursors import CURSOR_PATTERN
from ..errors import InvalidInputError, LLMError, NotFoundError, QuotaExceededError
from ..filters import MAX_METADATA_FILTER_KEYS, MAX_TAG_LENGTH, MAX_TAGS
from ..memory import MAX_FACT_CHARS, MAX_LIMIT, MAX_METADATA_BYTES
from ..sessions import list_sessions
from ..types import EntryError, datetime_from_us, us_from_datetime
from ..validation import MAX_ID_LENGTH, MAX_JSON_DEPTH
from .auth import Principal, child_limits
from .errors import ERROR_RESPONSES, ApiError, llm_failure
from .models import (
    KEY_NAME_CHARS,
    MAX_BATCH,
    MAX_ITEMS,
    NON_BLANK,
    PURPOSE_CHARS,
    AddedOut,
    ClearedOut,
    CursorQuery,
    DateTimeQuery,
    DeletedOut,
    EntryErrorOut,
    ErrorOut,
    EventOut,
    EventsOut,
    ExtractIn,
    ExtractOut,
    FactQuery,
    FactsForgetIn,
    ForgetIn,
    ForgetOut,
    HistoryOut,
    IdQuery,
    ItemsIn,
    ItemsOut,
    KeyIn,
    KeyOut,
    KeysOut,
    LearnOut,
    LimitsOut,
    MemoriesOut,
    MemoryBatchIn,
    MemoryIn,
    MemoryOut,
    MemoryPageOut,
    MemoryPatch,
    NeighborsOut,
    NewKeyOut,
    PoppedOut,
    ReasonIn,
    RecallIn,
    RecallOut,
    RememberedOut,
    ReplacedOut,
    RevokedOut,
    SessionExtractIn,
    SessionOut,
    SessionPageOut,
    StatsOut,
    TagQuery,
    TripleIn,
    TripleOut,
    TriplesOut,
    VersionOut,
    records_json,
)
from .tenant import PrincipalDep, Services, ServicesDep, Tenant, TenantDep, one_hop

if TYPE_CHECKING:
    from ..manager import ExtractionReport

ERRORS = ERROR_RESPONSES
"""Every error status of a route (see :data:`~engramdb.server.errors.ERROR_RESPONSES`)."""

router = APIRouter(prefix="/v1", responses=ERRORS)

LLM_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "``llm_not_configured``: ``infer`` needs a model and this server has "
        "none (nothing was stored); ``lease_held``: the session is being extracted now.",
    },
    502: {
        "model": ErrorOut,
        "description": "``llm_bad_response``: the model answered, but not usably (what was "
        "said stays stored; a later extract retries it).",
    },
    503: {
        "model": ErrorOut,
        "description": "``llm_unavailable``: the model endpoint cannot answer now "
        "(``Retry-After``); what was said stays stored.",
    },
}

PageLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
"""``limit`` of a page: 1 to 10,000, as in the library (``validation.check_limit``)."""
HistoryLimit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT)]
"""``limit`` of a history: 1 to 10,000; omitted: every version."""
ItemLimit = Annotated[int | None, Query(ge=0)]
"""Any count: a limit above the session's length returns it all (the Agents SDK asks for
2**31 - 1)."""


# -- limits ---------------------------------------------------------------------------------
@router.get("/limits", response_model=LimitsOut, tags=["limits"])
async def limits(request: Request) -> LimitsOut:
    """The size limits this server enforces (needs no key: clients size requests before they
    have one). Over a size limit is a 413 naming the limit; over a count or length bound in
    the OpenAPI schema, a 422."""
    settings = request.app.state.settings
    memory = request.app.state.services.memory
    return LimitsOut(
        content_chars=memory.max_content_chars,
        metadata_bytes=MAX_METADATA_BYTES,
        query_chars=memory.max_query_chars,
        body_bytes=settings.max_body_bytes,
        batch_memories=MAX_BATCH,
        session_items_per_request=MAX_ITEMS,
        tags_per_memory=MAX_TAGS,
        tag_chars=MAX_TAG_LENGTH,
        id_chars=MAX_ID_LENGTH,
        fact_chars=MAX_FACT_CHARS,
        json_depth=MAX_JSON_DEPTH,
        page_limit=MAX_LIMIT,
        metadata_filter_keys=MAX_METADATA_FILTER_KEYS,
        key_name_chars=KEY_NAME_CHARS,
        purpose_chars=PURPOSE_CHARS,
        registrations_per_minute=settings.registrations_per_minute,
    )


# -- sessions -------------------------------------------------------------------------------
# Session ids travel percent-encoded in the path (see RawSessionPath); they are decoded here.


def _sid(raw: str) -> str:
    """The session id from its percent-encoded path segment. Escapes that are not UTF-8
    (``%FF``) are refused, not replaced: two such ids would otherwise name one session."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError("the session id is not valid UTF-8 once percent-decoded") from None


SessionCursorQuery = Annotated[str | None, Query(pattern=CURSOR_PATTERN)]
"""A session list cursor (``next_cursor`` of the previous page): opaque, sealed."""


def _session_cursor(t: Tenant, updated_at: datetime, session_id: str) -> str:
    raw = json.dumps([us_from_datetime(updated_at), session_id]).encode()
    return t.memory.seal_cursor("sessions", raw)


def _parse_session_cursor(t: Tenant, cursor: str) -> tuple[datetime, str]:
    raw = t.memory.open_cursor("sessions", cursor)  # only this namespace's cursors open
    try:
        us, sid = json.loads(raw)
        if not isinstance(us, int) or not isinstance(sid, str):
            raise ValueError
        return datetime_from_us(us), sid
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError("invalid cursor") from None


@router.get("/sessions", response_model=SessionPageOut, tags=["sessions"])
@one_hop
def sessions_list(
    t: TenantDep, limit: PageLimit = 50, cursor: SessionCursorQuery = None
) -> SessionPageOut:
    """Sessions of the namespace, most recently updated first."""
    before = _parse_session_cursor(t, cursor) if cursor else None
    found = list_sessions(t.memory.store, namespace=t.namespace, limit=limit, before=before)
    last = found[-1] if len(found) == limit else None
    return SessionPageOut(
        sessions=[SessionOut.of(s) for s in found],
        next_cursor=_session_cursor(t, last.updated_at, last.session_id) if last else None,
    )


@router.get("/sessions/{session_id}/items", response_model=ItemsOut, tags=["sessions"])
@one_hop
def session_items(t: TenantDep, session_id: str, limit: ItemLimit = None) -> ItemsOut:
    """The last ``limit`` items (all if omitted), oldest first; 404 for a session that never
    had items or was deleted (a cleared one answers ``[]``)."""
    session = t.session(_sid(session_id))
    items = session.get_items(limit)
    if not items and session.info() is None:
        raise NotFoundError(f"no session {session.session_id!r}")
    return ItemsOut(items=items)


@router.post(
    "/sessions/{session_id}/items", response_model=AddedOut, status_code=201, tags=["sessions"]
)
@one_hop
def session_add(t: TenantDep, session_id: str, body: ItemsIn) -> AddedOut:
    """Append items (all or nothing)."""
    sid = _sid(session_id)
    t.session(sid).add_items(body.items)
    t.items_stored(sid, body.items)  # the server-run manager, if on (no I/O, never waits)
    return AddedOut(added=len(body.items))


@router.put("/sessions/{session_id}/items", response_model=ReplacedOut, tags=["sessions"])
@one_hop
def session_replace(t: TenantDep, session_id: str, body: ItemsIn) -> ReplacedOut:
    """Replace the whole history with ``items`` in one transaction (all or nothing: the old
    history or the new one, never a cleared session); what a compacting client (the Agents
    SDK's ``OpenAIResponsesCompactionSession``) writes back. Creates the session if needed."""
    removed = t.session(_sid(session_id)).replace_items(body.items)
    return ReplacedOut(removed=removed, added=len(body.items))


@router.post(
    "/sessions/{session_id}/extract",
    response_model=ExtractOut,
    tags=["sessions"],
    responses=LLM_ERRORS,
)
def session_extract(
    t: TenantDep, session_id: str, body: Annotated[SessionExtractIn | None, Body()] = None
) -> ExtractOut:
    """Turn what the session holds past its high-water mark into memories (as
    ``POST /v1/memories/extract`` does after storing its messages); ``dry_run`` decides
    without applying or moving the mark. 404 for a session that never had items."""
    body = body or SessionExtractIn()
    session = t.session(_sid(session_id))
    if session.info() is None:
        raise NotFoundError(f"no session {session.session_id!r}")
    _check_llm(t, body.infer, stored="nothing was extracted")
    try:
        report = t.memory.extract(
            session.session_id,
            user_id=body.user_id,
            agent_id=body.agent_id,
            infer=body.infer,
            dry_run=body.dry_run,
            quota=t.quota,
        )
    except LLMError as exc:
        raise llm_failure(exc, "the session's items stay stored; extract again later") from None
    return _extracted(report, stored=0)


@router.post("/sessions/{session_id}/pop", response_model=PoppedOut, tags=["sessions"])
@one_hop
def session_pop(t: TenantDep, session_id: str) -> PoppedOut:
    """Remove and return the newest item (``null`` when empty)."""
    return PoppedOut(item=t.session(_sid(session_id)).pop_item())


@router.post("/sessions/{session_id}/clear", response_model=ClearedOut, tags=["sessions"])
@one_hop
def session_clear(t: TenantDep, session_id: str) -> ClearedOut:
    """Remove every item; the session keeps existing."""
    sid = t.session(_sid(session_id)).session_id
    return ClearedOut(removed=t.memory.store.session_clear(t.namespace, sid))


@router.delete("/sessions/{session_id}", response_model=DeletedOut, tags=["sessions"])
@one_hop
def session_delete(t: TenantDep, session_id: str) -> DeletedOut:
    """Remove the session and its items."""
    sid = t.session(_sid(session_id)).session_id
    return DeletedOut(deleted=t.memory.store.session_delete(t.namespace, sid))


@router.get("/sessions/{session_id}", response_model=SessionOut, tags=["sessions"])
@one_hop
def session_info(t: TenantDep, session_id: str) -> SessionOut:
    """When the session started and last changed, and how many items it holds."""
    session = t.session(_sid(session_id))
    info = session.info()
    if info is None:
        raise NotFoundError(f"no session {session.session_id!r}")
    return SessionOut.of(info)


# -- memories -------------------------------------------------------------------------------
def _entry(m: MemoryIn) -> dict[str, Any]:
    return m.model_dump()


@router.post("/memories", response_model=RememberedOut, status_code=201, tags=["memories"])
@one_hop
def remember(t: TenantDep, body: MemoryIn) -> RememberedOut:
    """Store one memory. Identical content in the same scope (namespace, user, agent,
    session) is stored once: the answer is that memory, with the new tags merged into it
    (``status``: created, merged or existing)."""
    return RememberedOut.of_result(t.memory.remember_results([_entry(body)], quota=t.quota)[0])


@router.post("/memories/batch", response_model=MemoriesOut, status_code=201, tags=["memories"])
@one_hop
def remember_batch(t: TenantDep, body: MemoryBatchIn) -> MemoriesOut:
    """Store up to 1,000 memories in one transaction. Each answer says whether it was created
    or deduplicated (tags merged), as for one memory. ``errors: "raise"`` (the default): one
    bad entry rejects them all (422, nothing stored). ``errors: "skip"``: the good entries
    are stored; each bad one is ``null`` in ``memories`` and listed in ``errors`` with its
    index, code and message (a quota reached still refuses the whole batch: 429)."""
    if body.errors == "raise":
        results = t.memory.remember_results([_entry(m) for m in body.memories], quota=t.quota)
        return MemoriesOut(memories=[RememberedOut.of_result(r) for r in results])
    refused = {e.index: e for e in body.skipped}
    positions = [n for n in range(body.count) if n not in refused]
    stored = t.memory.remember_results(
        [_entry(m) for m in body.memories], quota=t.quota, errors="skip"
    )
    memories: list[RememberedOut | None] = [None] * body.count
    for n, result in zip(positions, stored, strict=True):
        if isinstance(result, EntryError):
            refused[n] = EntryError(n, result.code, result.message)
        else:
            memories[n] = RememberedOut.of_result(result)
    errors = [EntryErrorOut.of(refused[n]) for n in sorted(refused)]
    return MemoriesOut(memories=memories, errors=errors)


@router.post("/memories/recall", response_model=RecallOut, tags=["memories"])
@one_hop
def recall(t: TenantDep, body: RecallIn) -> Response:
    """Memories ranked for a query (any string is a valid query)."""
    t.limiter.count_recall(t.key, t.ancestors)
    with t.recall_turn(body.mode):
        hits = t.memory.recall(
            body.query,
            filters=body.filters.to_filter() if body.filters else None,
            limit=body.limit,
            mode=body.mode,
            explain=body.explain,
            min_score=body.min_score,
            as_of=body.as_of,
        )
    return records_json(RecallOut, {"hits": [h.to_dict() for h in hits]})


@router.post(
    "/memories/extract", response_model=ExtractOut, tags=["memories"], responses=LLM_ERRORS
)
def extract(t: TenantDep, body: ExtractIn) -> ExtractOut:
    """Store ``messages`` in the session, then turn what the session says into memories: with
    ``infer`` (the default) the server's model extracts facts, preferences, events and plans
    from every item past the session's high-water mark and decides add / update / delete /
    none against the most similar memories of the same user and agent, recording each
    decision as an event (``GET /v1/memories/{id}/events``); ``infer: false`` stores each
    message as said (deduplicated). ``dry_run`` decides without applying.

    409 ``llm_not_configured`` when ``infer`` is asked of a server without a model (nothing is
    stored). When the model fails (503 ``llm_unavailable``, 502 ``llm_bad_response``) or a
    quota is reached (429), the messages are stored all the same and extracted by the next
    extract call (or the server-run manager)."""
    sid = body.session_id
    _check_llm(t, body.infer, stored="nothing was stored")
    stored = f"the {len(body.messages)} messages were stored in session {sid!r}"
    try:
        report = t.memory.add_messages(
            body.messages,
            session_id=sid,
            user_id=body.user_id,
            agent_id=body.agent_id,
            infer=body.infer,
            dry_run=body.dry_run,
            quota=t.quota,
        )
    except LLMError as exc:
        t.items_stored(sid, body.messages)  # the server-run manager retries them, if on
        raise llm_failure(exc, f"{stored}; extract again later") from None
    except QuotaExceededError as exc:
        wait = {"Retry-After": str(int(exc.retry_after or 3600))}
        raise ApiError(429, "quota_exceeded", f"{exc} ({stored})", wait) from None
    return _extracted(report, stored=len(body.messages))


def _check_llm(t: Tenant, infer: bool, *, stored: str) -> None:
    if infer and t.memory.llm is None:
        raise ApiError(
            409,
            "llm_not_configured",
            f"this server has no model for extraction (setting llm, ENGRAMDB_LLM); {stored}. "
            "Send infer: false to store messages as said.",
        )


def _extracted(report: ExtractionReport, *, stored: int) -> ExtractOut:
    return ExtractOut.model_validate(
        {
            "session_id": report.session_id,
            "stored": stored,
            "dry_run": report.dry_run,
            "decisions": [d.to_dict() for d in report.decisions],
            "applied": [a.event.to_dict() for a in report.applied],
            "tokens": report.tokens,
        }
    )


@router.post("/memories/forget", response_model=ForgetOut, tags=["memories"])
@one_hop
def forget_scoped(t: TenantDep, body: ForgetIn) -> ForgetOut:
    """Forget every memory matching a scoped filter (``dry_run`` lists them only). A time
    range alone is not a scope: it needs ``"all": true``."""
    result = t.memory.forget(
        filters=body.filters.to_filter() if body.filters is not None else None,
        all=body.all,
        dry_run=body.dry_run,
    )
    return ForgetOut(ids=result.ids, count=result.count, dry_run=result.dry_run)


@router.get("/memories", response_model=MemoryPageOut, tags=["memories"])
@one_hop
def memories_list(
    t: TenantDep,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
    user_id: IdQuery = None,
    agent_id: IdQuery = None,
    session_id: IdQuery = None,
    tag: TagQuery = None,
    since: DateTimeQuery = None,
    until: DateTimeQuery = None,
    include_invalidated: bool = False,
) -> MemoryPageOut:
    """Memories in the order they were stored, a page at a time (``tag`` repeatable: all of
    them; ``since``/``until`` bound when the memory happened). Invalidated memories are left
    out unless ``include_invalidated``."""
    filters: dict[str, Any] = {
        k: v
        for k, v in (
            ("user_id", user_id),
            ("agent_id", agent_id),
            ("session_id", session_id),
            ("since", since),
            ("until", until),
        )
        if v is not None
    }
    if tag:
        filters["tags"] = tag
    page = t.memory.list(
        filters, cursor=cursor, limit=limit, include_invalidated=include_invalidated
    )
    return MemoryPageOut(
        memories=[MemoryOut.of(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get("/memories/{memory_id}", response_model=MemoryOut, tags=["memories"])
@one_hop
def memory_get(t: TenantDep, memory_id: str) -> MemoryOut:
    return MemoryOut.of(t.memory.get(memory_id))


@router.patch("/memories/{memory_id}", response_model=MemoryOut, tags=["memories"])
@one_hop
def memory_update(t: TenantDep, memory_id: str, body: MemoryPatch) -> MemoryOut:
    """Change a memory; the prior version goes to its history."""
    return MemoryOut.of(t.memory.update(memory_id, **body.model_dump(exclude_none=True)))


@router.get("/memories/{memory_id}/history", response_model=HistoryOut, tags=["memories"])
@one_hop
def memory_history(t: TenantDep, memory_id: str, limit: HistoryLimit = None) -> HistoryOut:
    """Prior versions, oldest first: the newest ``limit`` of them (all if omitted)."""
    versions = t.memory.history(memory_id, limit=limit)
    return HistoryOut(versions=[VersionOut.of(v) for v in versions])


@router.get("/memories/{memory_id}/events", response_model=EventsOut, tags=["memories"])
@one_hop
def memory_events(t: TenantDep, memory_id: str) -> EventsOut:
    """Why the memory exists: the decisions recorded about it (added, updated, invalidated,
    restored; by which model and prompt version, from which session items), oldest first."""
    return EventsOut(events=[EventOut.of(e) for e in t.memory.events(memory_id)])


@router.post("/memories/{memory_id}/invalidate", response_model=MemoryOut, tags=["memories"])
@one_hop
def memory_invalidate(
    t: TenantDep, memory_id: str, body: Annotated[ReasonIn | None, Body()] = None
) -> MemoryOut:
    """Invalidate a memory: recall and lists leave it out (``include_invalidated`` shows
    it), its history and events stay, ``restore`` brings it back. An ``invalidate`` event
    records the reason. Invalidating an invalidated memory changes nothing."""
    reason = body.reason if body is not None else None
    return MemoryOut.of(t.memory.invalidate(memory_id, reason=reason))


@router.post("/memories/{memory_id}/restore", response_model=MemoryOut, tags=["memories"])
@one_hop
def memory_restore(
    t: TenantDep, memory_id: str, body: Annotated[ReasonIn | None, Body()] = None
) -> MemoryOut:
    """Undo ``invalidate`` (a ``restore`` event records it); a live memory is returned
    unchanged."""
    reason = body.reason if body is not None else None
    return MemoryOut.of(t.memory.restore(memory_id, reason=reason))


@router.delete("/memories/{memory_id}", response_model=ForgetOut, tags=["memories"])
@one_hop
def memory_forget(t: TenantDep, memory_id: str) -> ForgetOut:
    """Forget one memory: gone from every index and from history."""
    result = t.memory.forget(memory_id)
    return ForgetOut(ids=result.ids, count=result.count, dry_run=False)


# -- triples --------------------------------------------------------------------------------
@router.post("/triples", response_model=LearnOut, status_code=201, tags=["triples"])
@one_hop
def learn(t: TenantDep, body: TripleIn) -> LearnOut:
    """Store a fact; a single-valued fact supersedes the subject's current value."""
    current = {f.id for f in t.memory.facts(body.subject, body.predicate, limit=MAX_LIMIT)}
    triple = t.memory.learn(
        body.subject,
        body.predicate,
        body.object,
        confidence=body.confidence,
        source=body.source,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        single_valued=body.single_valued,
        quota=t.quota,
    )
    superseded = []
    if body.single_valued and current - {triple.id}:
        history = t.memory.facts(
            body.subject, body.predicate, include_history=True, limit=MAX_LIMIT
        )
        superseded = [f for f in history if f.id in current and f.valid_to is not None]
    return LearnOut(
        triple=TripleOut.of(triple),
        superseded=[TripleOut.of(f) for f in superseded],
        created=triple.id not in current,
    )


@router.get("/triples", response_model=TriplesOut, tags=["triples"])
@one_hop
def facts(
    t: TenantDep,
    subject: FactQuery = None,
    predicate: FactQuery = None,
    object: FactQuery = None,
    as_of: DateTimeQuery = None,
    include_history: bool = False,
    limit: PageLimit = 100,
) -> TriplesOut:
    """Facts matching a pattern: current ones, those valid ``as_of``, or every version."""
    found = t.memory.facts(
        subject,
        predicate,
        object,
        as_of=as_of,
        include_history=include_history,
        limit=limit,
    )
    return TriplesOut(triples=[TripleOut.of(f) for f in found])


@router.post("/triples/forget", response_model=ForgetOut, tags=["triples"])
@one_hop
def forget_facts(t: TenantDep, body: FactsForgetIn) -> ForgetOut:
    """Forget every fact matching a pattern, current and superseded, with the memories that
    made them searchable (``dry_run`` lists them only). An empty pattern is refused."""
    result = t.memory.forget_facts(body.subject, body.predicate, body.object, dry_run=body.dry_run)
    return ForgetOut(ids=result.ids, count=result.count, dry_run=result.dry_run)


@router.delete("/triples/{triple_id}", response_model=ForgetOut, tags=["triples"])
@one_hop
def forget_fact(t: TenantDep, triple_id: str) -> ForgetOut:
    """Forget one fact (one version) and the memory that made it searchable."""
    result = t.memory.forget_fact(triple_id)
    return ForgetOut(ids=result.ids, count=result.count, dry_run=False)


@router.get("/triples/neighbors", response_model=NeighborsOut, tags=["triples"])
@one_hop
def neighbors(
    t: TenantDep,
    entity: Annotated[str, Query(min_length=1, max_length=MAX_FACT_CHARS, pattern=NON_BLANK)],
    depth: Annotated[int, Query(ge=1, le=5)] = 1,
) -> NeighborsOut:
    """Facts reachable from an entity within ``depth`` hops."""
    found = t.memory.neighbors(entity, depth=depth)
    names = sorted({x for f in found for x in (f.subject, f.object)} - {entity})
    return NeighborsOut(entity=entity, triples=[TripleOut.of(f) for f in found], entities=names)


# -- stats and keys -------------------------------------------------------------------------
def stats_of(t: Tenant) -> dict[str, Any]:
    stats = t.memory.stats()
    return {
        "namespace": stats.namespace,
        "memories": stats.memories,
        "embedded": stats.embedded,
        "triples": stats.triples,
        "current_triples": stats.current_triples,
        "sessions": stats.sessions,
        "session_items": stats.session_items,
        **t.limiter.usage(t.key),
    }


@router.get("/stats", response_model=StatsOut, tags=["stats"])
@one_hop
def stats(t: TenantDep) -> dict[str, Any]:
    """Counts, usage today, limits and what remains of them."""
    return stats_of(t)


@router.get("/keys", response_model=KeysOut, tags=["keys"])
@one_hop
def keys_list(who: PrincipalDep, svc: ServicesDep, namespace: IdQuery = None) -> KeysOut:
    """Admins: keys of every namespace (or ``?namespace=``). A namespace key: itself and the
    keys created from it (directly or through its children), never its siblings."""
    return list_keys(who, svc, namespace)


def list_keys(who: Principal, svc: Services, namespace: str | None) -> KeysOut:
    """What ``GET /v1/keys`` answers (the web page's keys page too)."""
    if who.key is None:
        return KeysOut(keys=[KeyOut.of(k) for k in svc.keys.store.key_list(namespace)])
    if namespace is not None and namespace != who.key.namespace:
        raise ApiError(403, "forbidden", "a namespace key lists only its own namespace's keys")
    return KeysOut(keys=[KeyOut.of(k) for k in svc.keys.family(who.key)])


@router.post("/keys", response_model=NewKeyOut, status_code=201, tags=["keys"])
@one_hop
def keys_create(who: PrincipalDep, svc: ServicesDep, body: KeyIn) -> NewKeyOut:
    """A new key. A namespace key creates keys for its own namespace, with limits no larger
    than its own (limits it leaves out are inherited). Admins create keys for a *new*
    namespace (a fresh one if ``namespace`` is omitted) with any limits; a namespace that
    already holds keys or data is refused, since its key would read that data."""
    return create_key(who, svc, body)


def create_key(who: Principal, svc: Services, body: KeyIn) -> NewKeyOut:
    """What ``POST /v1/keys`` answers (the web page's keys page too)."""
    requested = body.limits.model_dump(exclude_unset=True) if body.limits else None
    if who.key is None:
        if body.namespace is not None and svc.keys.store.namespace_exists(body.namespace):
            raise ApiError(
                403,
                "forbidden",
                f"namespace {body.namespace!r} already exists; admin keys create keys for new "
                "namespaces only (a key of that namespace can create more keys for it)",
            )
        key, secret = svc.keys.create(body.namespace, body.name, body.purpose, requested)
        return NewKeyOut(api_key=secret, key=KeyOut.of(key))
    if body.namespace is not None and body.namespace != who.key.namespace:
        raise ApiError(403, "forbidden", "a namespace key creates keys for its namespace only")
    limits = child_limits(svc.limiter.limits(who.key), requested)
    key, secret = svc.keys.create(
        who.key.namespace, body.name, body.purpose, limits, created_by=who.key.id
    )
    return NewKeyOut(api_key=secret, key=KeyOut.of(key))


@router.delete("/keys/{key_id}", response_model=RevokedOut, tags=["keys"])
@one_hop
def keys_revoke(who: PrincipalDep, svc: ServicesDep, key_id: str) -> RevokedOut:
    """Revoke a key: it stops working at once, on every replica. Admins revoke any key; a
    namespace key revokes itself or keys created from it (keys it created keep working when
    it is revoked)."""
    return revoke_key(who, svc, key_id)


def revoke_key(who: Principal, svc: Services, key_id: str) -> RevokedOut:
    """What ``DELETE /v1/keys/{key_id}`` answers (the web page's keys page too)."""
    if who.key is None:
        found = svc.keys.find(key_id)
    else:
        same_namespace = {k.id: k for k in svc.keys.store.key_list(who.key.namespace)}
        found = same_namespace.get(key_id)
        if found is not None and key_id not in {k.id for k in svc.keys.family(who.key)}:
            raise ApiError(
                403,
                "forbidden",
                "a namespace key revokes only itself and the keys it created; ask an admin",
            )
    revoked = svc.keys.store.key_revoke(found.namespace, key_id) if found else None
    if revoked is None:
        raise NotFoundError(f"no key {key_id!r}")
    return RevokedOut(key=KeyOut.of(revoked))
