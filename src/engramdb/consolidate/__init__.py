"""Trace consolidation: finished sessions become trace memories (:mod:`.traces`), each
scope's traces become one ``MEMORY.md`` (:mod:`.scope`)."""

from __future__ import annotations

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
)
from .traces import PROMPT_VERSION, TraceRun, load_prompt, scope_bucket, summarize_sessions

__all__ = [
    "PROMPT_VERSION",
    "MemoryMdVersion",
    "ScopePaths",
    "ScopeRun",
    "TraceRun",
    "consolidate_scope",
    "delete_trace",
    "list_traces",
    "load_prompt",
    "memory_md_diff",
    "memory_md_history",
    "memory_summary",
    "read_memory_md",
    "reset_memory_md",
    "scope_bucket",
    "scope_paths",
    "summarize_sessions",
]
