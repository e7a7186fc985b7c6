"""``/v1`` routes of trace consolidation: run it, see its status and spend, configure a
scope, read, diff, reset a scope's ``MEMORY.md``, list, show and delete traces, and the
prompt block of a scope's memory (``/v1/context``).

Every route works in the caller's namespace through the facade and the functions of
:mod:`engramdb.consolidate`; files go under the server's ``memory_root`` setting.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, BeforeValidator, Field, Strict

from ..consolidate import (
    configure_scope,
    consolidate,
    consolidation_status,
    delete_trace,
    list_traces,
    memory_md_diff,
    memory_md_history,
    memory_root,
    memory_summary,
    read_memory_md,
    reset_memory_md,
    strip_marker,
)
from ..consolidate.traces import find_trace
from ..errors import LLMError, NotFoundError
from .errors import ApiError, llm_failure
from .models import SPACE_CHARS, Body, Bool, Id, _json_number, _Unicode
from .settings import ServerSettings
from .tenant import Tenant, TenantDep, one_hop
from .v1 import ERRORS, LLM_ERRORS

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["consolidation"])

MAX_SCOPE_CHARS = 512
_CONTROL = r"\x00-\x1f\x7f"
SCOPE_PATTERN = rf"^[^{_CONTROL}]*[^{_CONTROL}{SPACE_CHARS}][^{_CONTROL}]*$"
"""What :func:`engramdb.consolidate.traces.check_scope` accepts: no control character and
something that is not white space."""
ScopeName = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=MAX_SCOPE_CHARS, pattern=SCOPE_PATTERN),
    _Unicode,
]
"""A scope: a project path or any name, without control characters."""
ScopeQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_SCOPE_CHARS,
        pattern=SCOPE_PATTERN,
        description="The scope (e.g. a project path).",
    ),
]


class SpendOut(BaseModel):
    sessions: int
    llm_calls: int
    input_tokens: int
    output_tokens: int


class ConsolidateIn(Body):
    scope: ScopeName
    dry_run: Bool = False
    idle_seconds: (
        Annotated[float, Strict(), Field(ge=0, le=365 * 86400)]
        | Annotated[int, Strict(), Field(ge=0, le=365 * 86400)]
        | None
    ) = None
    current_session: Id | None = None
    retry_failed: Bool = False


class MemoryMdRunOut(BaseModel):
    status: str
    version: int | None
    traces: list[str]
    new_traces: list[str]
    estimated_input_tokens: int
    error: str | None


class ConsolidateOut(BaseModel):
    scope: str
    dry_run: bool
    stopped: str | None
    summarized: list[str]
    skipped: dict[str, str]
    failed: dict[str, str]
    planned: dict[str, int]
    memory_md: MemoryMdRunOut | None
    spent: SpendOut
    estimated_input_tokens: int


class CapsOut(BaseModel):
    max_sessions: int | None
    max_input_tokens: int | None
    max_llm_calls: int | None


class JobOut(BaseModel):
    kind: str
    key: str
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    retry_at: datetime | None
    spent: SpendOut


class ScopeStatusOut(BaseModel):
    scope: str
    enabled: bool
    session_prefix: str | None
    traces: int
    memory_md_version: int | None
    memory_md_lines: int
    memory_md_bytes: int
    memory_md_updated_at: datetime | None
    open_jobs: list[JobOut]
    spent_today: SpendOut
    spent_total: SpendOut
    last_run_at: datetime | None


class StatusOut(BaseModel):
    day: str
    caps: dict[str, CapsOut]
    spent_today: SpendOut
    scopes: list[ScopeStatusOut]


class ScopeSettingsIn(Body):
    scope: ScopeName
    enabled: Bool | None = None
    session_prefix: Id | None = None
    clear_session_prefix: Bool = False


class ScopeSettingsOut(BaseModel):
    scope: str
    enabled: bool
    session_prefix: str | None
    updated_at: datetime


class ScopesOut(BaseModel):
    scopes: list[ScopeSettingsOut]


class ScopeIn(Body):
    scope: ScopeName


class MemoryMdOut(BaseModel):
    scope: str
    id: str
    version: int
    content: str
    updated_at: datetime


class MemoryMdVersionOut(BaseModel):
    version: int
    content: str
    written_at: datetime


class MemoryMdHistoryOut(BaseModel):
    scope: str
    versions: list[MemoryMdVersionOut]


class DiffOut(BaseModel):
    scope: str
    diff: str


class ResetOut(BaseModel):
    scope: str
    reset: bool


class SummaryOut(BaseModel):
    scope: str
    text: str


class TraceOut(BaseModel):
    session_id: str
    memory_id: str
    summary: str
    updated_at: datetime
    content: str | None = None


class TracesOut(BaseModel):
    scope: str
    traces: list[TraceOut]


class DeletedTraceOut(BaseModel):
    scope: str
    session_id: str
    deleted: bool


class ContextIn(Body):
    query: Annotated[str, Strict(), _Unicode]
    scope: ScopeName | None = None
    user_id: Id | None = None
    agent_id: Id | None = None
    session_id: Id | None = None
    budget_tokens: Annotated[int, Field(ge=0, le=32_000), BeforeValidator(_json_number)] = 800
    limit: Annotated[int, Field(ge=1, le=100), BeforeValidator(_json_number)] = 20


class ContextOut(BaseModel):
    text: str
    ids: list[str]


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def _root(request: Request, t: Tenant) -> Path:
    configured = _settings(request).memory_root
    return Path(configured) if configured else memory_root(t.memory)


@router.post("/consolidate", response_model=ConsolidateOut, responses=LLM_ERRORS)
def run_consolidation(request: Request, t: TenantDep, body: ConsolidateIn) -> ConsolidateOut:
    """Consolidate one scope now: a trace for each idle session whose trace is missing or
    stale, then the scope's ``memory_summary.md`` and ``MEMORY.md``, under the server's cost
    caps (per run and per day of the namespace). ``dry_run`` calls no model and writes
    nothing: the answer lists what would run and the estimated input tokens. ``stopped``
    says why a run ended early (a cap reached, the scope opted out). 409
    ``llm_not_configured`` on a server without a model (unless ``dry_run``)."""
    llm = t.memory.llm
    if llm is None and not body.dry_run:
        raise ApiError(
            409, "llm_not_configured", "this server has no model (setting llm, ENGRAMDB_LLM)"
        )
    settings = _settings(request)
    try:
        run = consolidate(
            t.memory,
            llm,  # type: ignore[arg-type]  # a dry run calls no model
            scope=body.scope,
            root=_root(request, t),
            caps=settings.consolidate_caps,
            idle_seconds=(
                settings.consolidate_idle_seconds
                if body.idle_seconds is None
                else body.idle_seconds
            ),
            current_session=body.current_session,
            dry_run=body.dry_run,
            retry_failed=body.retry_failed,
            quota=t.quota,
        )
    except LLMError as exc:
        raise llm_failure(exc, "what was finished is kept; run again later") from None
    return ConsolidateOut.model_validate(run.to_dict())


@router.get("/consolidate/status", response_model=StatusOut)
@one_hop
def status(
    request: Request,
    t: TenantDep,
    scope: Annotated[
        str | None, Query(min_length=1, max_length=MAX_SCOPE_CHARS, pattern=SCOPE_PATTERN)
    ] = None,
) -> StatusOut:
    """Where consolidation stands: the caps, what the namespace spent today, and for each
    scope its settings, traces, ``MEMORY.md`` size and version, unfinished jobs (with their
    last errors: a job never sits silently pending) and its spend."""
    report = consolidation_status(t.memory, scope=scope, caps=_settings(request).consolidate_caps)
    return StatusOut.model_validate(report.to_dict())


@router.get("/consolidate/scopes", response_model=ScopesOut)
@one_hop
def scopes(t: TenantDep) -> ScopesOut:
    """The configured scopes of the namespace (settings only; see ``/consolidate/status``)."""
    found = t.memory.store.scope_list(t.namespace)
    return ScopesOut(
        scopes=[
            ScopeSettingsOut(
                scope=s.scope,
                enabled=s.enabled,
                session_prefix=s.session_prefix,
                updated_at=s.updated_at,
            )
            for s in found
        ]
    )


@router.put("/consolidate/scopes", response_model=ScopeSettingsOut)
@one_hop
def put_scope(t: TenantDep, body: ScopeSettingsIn) -> ScopeSettingsOut:
    """Configure a scope: ``enabled: false`` opts it out (nothing runs, no model is called),
    ``session_prefix`` keeps it to the sessions whose id starts with it. Fields left out
    keep their value. The background schedule (when on) runs every enabled scope."""
    s = configure_scope(
        t.memory,
        body.scope,
        enabled=body.enabled,
        session_prefix=body.session_prefix,
        clear_session_prefix=body.clear_session_prefix,
    )
    return ScopeSettingsOut(
        scope=s.scope, enabled=s.enabled, session_prefix=s.session_prefix, updated_at=s.updated_at
    )


@router.get("/memory-md", response_model=MemoryMdOut)
@one_hop
def get_memory_md(t: TenantDep, scope: ScopeQuery) -> MemoryMdOut:
    """The scope's consolidated ``MEMORY.md``; 404 until consolidation produced it."""
    record = read_memory_md(t.memory, scope)
    if record is None:
        raise NotFoundError(f"scope {scope!r} has no MEMORY.md yet")
    return MemoryMdOut(
        scope=scope,
        id=record.id,
        version=record.version,
        content=strip_marker(record.content),
        updated_at=record.updated_at,
    )


@router.get("/memory-md/history", response_model=MemoryMdHistoryOut)
@one_hop
def memory_md_versions(t: TenantDep, scope: ScopeQuery) -> MemoryMdHistoryOut:
    """Every version of the scope's ``MEMORY.md``, newest first."""
    return MemoryMdHistoryOut(
        scope=scope,
        versions=[
            MemoryMdVersionOut(version=v.version, content=v.content, written_at=v.written_at)
            for v in memory_md_history(t.memory, scope)
        ],
    )


@router.get("/memory-md/diff", response_model=DiffOut)
@one_hop
def memory_md_changes(
    t: TenantDep,
    scope: ScopeQuery,
    old: Annotated[int | None, Query(ge=1, le=2**31)] = None,
    new: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> DiffOut:
    """A unified diff of the scope's ``MEMORY.md`` between versions ``old`` and ``new``
    (default: the previous and the current one)."""
    return DiffOut(scope=scope, diff=memory_md_diff(t.memory, scope, old=old, new=new))


@router.post("/memory-md/reset", response_model=ResetOut)
@one_hop
def reset(request: Request, t: TenantDep, body: ScopeIn) -> ResetOut:
    """Forget this scope's ``MEMORY.md`` and skills (their memories, history and files);
    its traces stay and other scopes are untouched. The next run starts afresh."""
    done = reset_memory_md(t.memory, root=_root(request, t), scope=body.scope)
    return ResetOut(scope=body.scope, reset=done)


@router.get("/memory-summary", response_model=SummaryOut)
@one_hop
def summary(
    t: TenantDep,
    scope: ScopeQuery,
    budget_tokens: Annotated[int, Query(ge=1, le=32_000)] = 500,
) -> SummaryOut:
    """The scope's routing map (one line per trace, newest first), trimmed to
    ``budget_tokens`` for an agent's instructions."""
    return SummaryOut(
        scope=scope, text=memory_summary(t.memory, scope, budget_tokens=budget_tokens)
    )


def _trace_out(record: Any, *, content: bool) -> TraceOut:
    return TraceOut(
        session_id=str(record.metadata.get("session_id", "")),
        memory_id=record.id,
        summary=str(record.metadata.get("summary", "")),
        updated_at=record.updated_at,
        content=record.content if content else None,
    )


@router.get("/traces", response_model=TracesOut)
@one_hop
def traces(t: TenantDep, scope: ScopeQuery) -> TracesOut:
    """The scope's traces, newest first (one per summarized session)."""
    found = list_traces(t.memory, scope)
    return TracesOut(scope=scope, traces=[_trace_out(r, content=False) for r in found])


@router.get("/traces/{session_id}", response_model=TraceOut)
@one_hop
def trace(t: TenantDep, session_id: str, scope: ScopeQuery) -> TraceOut:
    """One session's trace in the scope, with its text; 404 if it has none."""
    record = find_trace(t.memory, session_id, scope=scope)
    if record is None:
        raise NotFoundError(f"session {session_id!r} has no trace in scope {scope!r}")
    return _trace_out(record, content=True)


@router.delete("/traces/{session_id}", response_model=DeletedTraceOut)
@one_hop
def remove_trace(
    request: Request, t: TenantDep, session_id: str, scope: ScopeQuery
) -> DeletedTraceOut:
    """Forget one session's trace (memory, history and file); the scope's
    ``memory_summary.md`` is rebuilt without it."""
    done = delete_trace(t.memory, root=_root(request, t), scope=scope, session_id=session_id)
    return DeletedTraceOut(scope=scope, session_id=session_id, deleted=done)


@router.post("/context", response_model=ContextOut, tags=["memories"])
@one_hop
def context(t: TenantDep, body: ContextIn) -> ContextOut:
    """The prompt block for ``query``: with ``scope``, the scope's ``MEMORY.md`` first (at
    most two thirds of ``budget_tokens``), then the recalled memories, most relevant first,
    each dated. The block is fenced and marked as data, not instructions."""
    t.limiter.count_recall(t.key, t.ancestors)  # a context is a recall
    block = t.memory.context(
        body.query,
        user_id=body.user_id,
        agent_id=body.agent_id,
        session_id=body.session_id,
        budget_tokens=body.budget_tokens,
        limit=body.limit,
        scope=body.scope,
    )
    return ContextOut(text=block.text, ids=list(block.ids))
