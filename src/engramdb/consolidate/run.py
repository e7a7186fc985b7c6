"""One consolidation run of a scope (phase 1, then phase 2, under cost caps), the scope's
settings, and the status report of a namespace.

This is what ``engramdb consolidate``, ``POST /v1/consolidate`` and the schedule in
``engramdb serve`` call. Plain functions over a :class:`~engramdb.memory.Memory`; everything
a run reads or writes stays inside its ``(namespace, scope)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import BudgetExceededError
from ..llm.base import LLM
from ..memory import Memory
from ..sessions import default_data_dir
from ..types import Job, Quota, ScopeSettings, Spend, format_optional, utc_day
from .budget import Budget, CostCaps
from .scope import JOB_KIND as SCOPE_JOB_KIND
from .scope import ScopeRun, consolidate_scope, list_traces, read_memory_md, strip_marker
from .traces import JOB_KIND as TRACE_JOB_KIND
from .traces import TraceRun, check_scope, summarize_sessions

MEMORY_ROOT_ENV = "ENGRAMDB_MEMORY_ROOT"


def memory_root(memory: Memory) -> Path:
    """Where consolidation writes its files: ``$ENGRAMDB_MEMORY_ROOT``; else ``memories/``
    beside a SQLite database; else ``memories/`` in the default data directory."""
    configured = os.environ.get(MEMORY_ROOT_ENV)
    if configured:
        return Path(configured)
    path = getattr(memory.store, "path", None)
    if isinstance(path, Path):
        return path.parent / "memories"
    return default_data_dir() / "memories"


@dataclass
class ConsolidationRun:
    """What one :func:`consolidate` run of a scope did (or, dry, would do).

    ``stopped`` says why it ended early: the scope is opted out, or a cost cap was reached
    (the rest waits for the next run). ``estimated_input_tokens`` is the dry run's estimate
    of what the calls would send; ``spent`` is what the run really spent."""

    namespace: str
    scope: str
    dry_run: bool
    traces: TraceRun
    memory_md: ScopeRun | None = None
    stopped: str | None = None
    spent: Spend = field(default_factory=Spend)
    estimated_input_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (the CLI's ``--json``, the answer of
        ``POST /v1/consolidate``)."""
        md = self.memory_md
        return {
            "namespace": self.namespace,
            "scope": self.scope,
            "dry_run": self.dry_run,
            "stopped": self.stopped,
            "summarized": self.traces.summarized,
            "skipped": self.traces.skipped,
            "failed": self.traces.failed,
            "planned": self.traces.planned,
            "memory_md": None
            if md is None
            else {
                "status": md.status,
                "version": md.memory_md_version,
                "traces": md.traces,
                "new_traces": md.new_traces,
                "estimated_input_tokens": md.estimated_input_tokens,
                "error": md.error,
            },
            "spent": asdict(self.spent),
            "estimated_input_tokens": self.estimated_input_tokens,
        }


def _when(moment: datetime | None) -> str | None:
    return format_optional(moment)


def job_dict(job: Job) -> dict[str, Any]:
    """A consolidation job as JSON-ready data; ``key`` is the session id of a trace job, the
    scope of a ``MEMORY.md`` job."""
    return {
        "kind": job.kind,
        "key": job.job_key.split("\n", 1)[-1],
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "retry_at": _when(job.retry_at),
        "spent": asdict(job.spend),
    }


def configure_scope(
    memory: Memory,
    scope: str,
    *,
    enabled: bool | None = None,
    session_prefix: str | None = None,
    clear_session_prefix: bool = False,
    namespace: str | None = None,
) -> ScopeSettings:
    """Set ``scope``'s consolidation settings: ``enabled=False`` opts it out (nothing runs
    for it, no model is called), ``session_prefix`` keeps it to the sessions whose id starts
    with it (``clear_session_prefix`` gives it every session of the namespace again). Fields
    not given keep their value."""
    check_scope(scope)
    ns = memory._ns(namespace)
    current = memory.store.scope_get(ns, scope)
    prefix = current.session_prefix if current else None
    if session_prefix is not None:
        prefix = session_prefix
    if clear_session_prefix:
        prefix = None
    on = current.enabled if current and enabled is None else enabled is not False
    return memory.store.scope_put(ns, scope, enabled=on, session_prefix=prefix)


def consolidate(
    memory: Memory,
    llm: LLM,
    *,
    scope: str,
    root: str | Path | None = None,
    namespace: str | None = None,
    caps: CostCaps | None = None,
    idle_seconds: float = 3600,
    current_session: str | None = None,
    dry_run: bool = False,
    max_traces: int = 32,
    max_lines: int = 200,
    max_bytes: int = 16_384,
    lease_seconds: float = 300.0,
    retry_failed: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    quota: Quota | None = None,
) -> ConsolidationRun:
    """Run consolidation for ``scope`` once: phase 1 (a trace per idle session whose trace is
    missing or stale) and phase 2 (the scope's ``memory_summary.md`` and ``MEMORY.md``), both
    under ``caps`` (default :class:`CostCaps`). Nothing is sent to the model when the scope
    has no new sessions or is opted out. ``progress`` is called with (step, done, total) as the
    run goes: step ``"traces"`` counts sessions, step ``"memory_md"`` is 0 of 1 then 1 of 1.
    ``retry_failed`` gives the scope's jobs that ran out of retries a fresh budget first;
    ``quota`` (a server key's) bounds the memories the run adds."""
    check_scope(scope)
    ns = memory._ns(namespace)
    base = Path(root) if root is not None else memory_root(memory)
    settings = memory.store.scope_get(ns, scope)
    caps = caps or CostCaps()
    if settings is not None and not settings.enabled:
        return ConsolidationRun(ns, scope, dry_run, TraceRun(), stopped="scope is opted out")
    if retry_failed and not dry_run:
        for job in memory.store.job_list(ns, status="failed"):
            if _of_scope(job, scope):
                memory.store.job_reset(ns, job.kind, job.job_key)
    budget = Budget(memory.store, ns, scope, caps)
    say = progress or (lambda _step, _done, _total: None)
    traces = summarize_sessions(
        memory,
        llm,
        root=base,
        scope=scope,
        namespace=ns,
        idle_seconds=idle_seconds,
        current_session=current_session,
        max_sessions=caps.run.max_sessions or 1_000,
        lease_seconds=lease_seconds,
        session_prefix=settings.session_prefix if settings else None,
        budget=budget,
        dry_run=dry_run,
        progress=lambda done, total: say("traces", done, total),
        quota=quota,
    )
    run = ConsolidationRun(ns, scope, dry_run, traces, stopped=traces.stopped)
    if dry_run:
        run.memory_md = consolidate_scope(
            memory, llm, root=base, scope=scope, namespace=ns, max_traces=max_traces,
            max_lines=max_lines, max_bytes=max_bytes, dry_run=True,
        )  # fmt: skip
        run.estimated_input_tokens = sum(traces.planned.values()) + _estimate(run.memory_md)
        return run
    say("memory_md", 0, 1)
    try:
        run.memory_md = consolidate_scope(
            memory, budget.llm(llm), root=base, scope=scope, namespace=ns,
            max_traces=max_traces, max_lines=max_lines, max_bytes=max_bytes,
            lease_seconds=lease_seconds, quota=quota,
        )  # fmt: skip
    except BudgetExceededError as exc:
        run.stopped = run.stopped or str(exc)
    if run.memory_md is not None and run.memory_md.stopped:
        run.stopped = run.stopped or run.memory_md.stopped
    run.spent = budget.spent
    say("memory_md", 1, 1)
    return run


def _of_scope(job: Job, scope: str) -> bool:
    """Whether ``job`` is one of ``scope``'s: its MEMORY.md job or a trace job."""
    if job.kind == SCOPE_JOB_KIND:
        return job.job_key == scope
    return job.kind == TRACE_JOB_KIND and job.job_key.startswith(scope + "\n")


def _estimate(scope_run: ScopeRun | None) -> int:
    return scope_run.estimated_input_tokens if scope_run is not None else 0


@dataclass
class ScopeStatus:
    """Where one scope stands: its settings, how many traces it has, its ``MEMORY.md``
    (version, lines, bytes, when), its jobs that are not done (with their last errors) and
    what it spent today and over all its jobs."""

    scope: str
    enabled: bool
    session_prefix: str | None
    traces: int
    memory_md_version: int | None
    memory_md_lines: int
    memory_md_bytes: int
    memory_md_updated_at: datetime | None
    open_jobs: list[Job]
    spent_today: Spend
    spent_total: Spend
    last_run_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The scope's status as JSON-ready data."""
        return {
            "scope": self.scope,
            "enabled": self.enabled,
            "session_prefix": self.session_prefix,
            "traces": self.traces,
            "memory_md_version": self.memory_md_version,
            "memory_md_lines": self.memory_md_lines,
            "memory_md_bytes": self.memory_md_bytes,
            "memory_md_updated_at": _when(self.memory_md_updated_at),
            "open_jobs": [job_dict(job) for job in self.open_jobs],
            "spent_today": asdict(self.spent_today),
            "spent_total": asdict(self.spent_total),
            "last_run_at": _when(self.last_run_at),
        }


@dataclass
class ConsolidationStatus:
    """The consolidation status of a namespace: its caps, what the namespace spent today
    (every scope), and each scope's :class:`ScopeStatus`."""

    namespace: str
    day: str
    caps: CostCaps
    spent_today: Spend
    scopes: list[ScopeStatus]

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data (``--status --json``, ``GET /v1/consolidate/status``)."""
        return {
            "namespace": self.namespace,
            "day": self.day,
            "caps": {"run": asdict(self.caps.run), "day": asdict(self.caps.day)},
            "spent_today": asdict(self.spent_today),
            "scopes": [scope.to_dict() for scope in self.scopes],
        }


def consolidation_status(
    memory: Memory,
    *,
    scope: str | None = None,
    namespace: str | None = None,
    caps: CostCaps | None = None,
) -> ConsolidationStatus:
    """The status of every scope of ``namespace`` that is configured, has traces or has been
    consolidated (or of ``scope`` alone)."""
    ns = memory._ns(namespace)
    store = memory.store
    day = utc_day()
    settings = {s.scope: s for s in store.scope_list(ns)}
    jobs = store.job_list(ns)
    scope_jobs = {job.job_key: job for job in jobs if job.kind == SCOPE_JOB_KIND}
    trace_jobs: dict[str, list[Job]] = {}
    for job in jobs:
        if job.kind == TRACE_JOB_KIND and "\n" in job.job_key:
            trace_jobs.setdefault(job.job_key.split("\n", 1)[0], []).append(job)
    today = {row.scope: row.spend for row in store.spend_list(ns, since=day) if row.day == day}
    names = set(settings) | set(scope_jobs) | set(trace_jobs) | set(today)
    if scope is not None:
        check_scope(scope)
        names = {scope}
    out: list[ScopeStatus] = []
    for name in sorted(names):
        conf = settings.get(name)
        md = read_memory_md(memory, name, namespace=ns)
        text = strip_marker(md.content) if md else ""
        own = [*trace_jobs.get(name, []), *([scope_jobs[name]] if name in scope_jobs else [])]
        total = Spend()
        for job in own:
            total = total + job.spend
        finished = [job.updated_at for job in own if job.status == "done"]
        out.append(
            ScopeStatus(
                scope=name,
                enabled=conf.enabled if conf else True,
                session_prefix=conf.session_prefix if conf else None,
                traces=len(list_traces(memory, name, namespace=ns)),
                memory_md_version=md.version if md else None,
                memory_md_lines=len(text.splitlines()),
                memory_md_bytes=len(text.encode("utf-8")),
                memory_md_updated_at=md.updated_at if md else None,
                open_jobs=[job for job in own if job.status != "done"],
                spent_today=today.get(name, Spend()),
                spent_total=total,
                last_run_at=max(finished) if finished else None,
            )
        )
    spent_today = Spend()
    for spend in today.values():
        spent_today = spent_today + spend
    return ConsolidationStatus(ns, day, caps or CostCaps(), spent_today, out)


__all__ = [
    "MEMORY_ROOT_ENV",
    "ConsolidationRun",
    "ConsolidationStatus",
    "ScopeStatus",
    "configure_scope",
    "consolidate",
    "consolidation_status",
    "memory_root",
]
