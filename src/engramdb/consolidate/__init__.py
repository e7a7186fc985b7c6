"""Trace consolidation: finished sessions become trace memories (:mod:`.traces`), each
scope's traces become one ``MEMORY.md`` (:mod:`.scope`), under cost caps (:mod:`.budget`);
:func:`consolidate` runs both for a scope and :func:`consolidation_status` reports
(:mod:`.run`)."""

from __future__ import annotations

from .budget import Budget, Caps, CostCaps
from .run import (
    MEMORY_ROOT_ENV,
    ConsolidationRun,
    ConsolidationStatus,
    ScopeStatus,
    configure_scope,
    consolidate,
    consolidation_status,
    memory_root,
)
from .scope import (
    MemoryMdVersion,
    ScopePaths,
    ScopeRun,
    consolidate_scope,
    delete_trace,
    list_traces,
    memory_md_diff,
    memory_md_history,
    memory_summary,
    read_memory_md,
    reset_memory_md,
    scope_paths,
    strip_marker,
)
from .traces import PROMPT_VERSION, TraceRun, load_prompt, scope_bucket, summarize_sessions

__all__ = [
    "MEMORY_ROOT_ENV",
    "PROMPT_VERSION",
    "Budget",
    "Caps",
    "ConsolidationRun",
    "ConsolidationStatus",
    "CostCaps",
    "MemoryMdVersion",
    "ScopePaths",
    "ScopeRun",
    "ScopeStatus",
    "TraceRun",
    "configure_scope",
    "consolidate",
    "consolidate_scope",
    "consolidation_status",
    "delete_trace",
    "list_traces",
    "load_prompt",
    "memory_md_diff",
    "memory_md_history",
    "memory_root",
    "memory_summary",
    "read_memory_md",
    "reset_memory_md",
    "scope_bucket",
    "scope_paths",
    "strip_marker",
    "summarize_sessions",
]
