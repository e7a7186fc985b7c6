"""Trace consolidation: finished sessions become trace memories (:mod:`.traces`)."""

from __future__ import annotations

from .traces import PROMPT_VERSION, TraceRun, load_prompt, scope_bucket, summarize_sessions

__all__ = ["PROMPT_VERSION", "TraceRun", "load_prompt", "scope_bucket", "summarize_sessions"]
