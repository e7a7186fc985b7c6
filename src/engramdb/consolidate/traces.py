"""Phase 1 of trace consolidation: each finished session becomes one trace memory.

:func:`summarize_sessions` picks the sessions of a namespace that have been idle long enough
and whose trace is missing or older than their last item, newest first; for each it claims a
lease-locked job (``kind="trace"``, ``job_key`` = the session id), renders the items
(redacted), keeps the head and tail of the transcript within a byte budget, asks the LLM for
``{"trace_memory", "summary"}``, redacts and normalises the answer, stores it as a memory of
the namespace (tags ``trace`` and ``trace-session:<id>``; an existing trace is updated, so its
history is kept) and then writes ``<root>/<bucket>/trace_summaries/<session>_<slug>.md``
atomically. The file is written only after the database write succeeded, so a failed write
never leaves an orphan file; a failed file write fails the job (it is retried later).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import BudgetExceededError, ConflictError, InvalidInputError, LLMResponseError
from ..filters import MAX_TAG_LENGTH
from ..llm.base import LLM, Message
from ..manager.transcript import ToolRule, render_transcript
from ..memory import Memory
from ..redact import redact
from ..sessions import items_after
from ..types import MemoryRecord, Quota, SessionInfo, Spend, us_from_datetime
from .budget import Budget, Caps, CostCaps, estimate_input_tokens

PROMPT_VERSION = "trace_v1"
"""The prompt file in use (``prompts/trace_v1.md``), recorded on every trace."""

JOB_KIND = "trace"
TRACE_TAG = "trace"
MAX_TRACE_BYTES = 16_384
MAX_SUMMARY_CHARS = 500
SECTIONS = ("## Task", "## Outcome", "## Learnings")
TRACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "trace_memory": {"type": "string"},
        "summary": {"type": "string"},
    },
    "required": ["trace_memory", "summary"],
    "additionalProperties": False,
}
_PAGE = 10_000


@cache
def load_prompt(version: str = PROMPT_VERSION) -> str:
    """The text of the trace prompt ``version`` (``"trace_v1"``)."""
    return files(__package__).joinpath("prompts", f"{version}.md").read_text("utf-8").strip()


@dataclass
class TraceRun:
    """What one :func:`summarize_sessions` run did: the sessions summarized (with their trace
    files), skipped (with why) and failed (with the error, also kept as the job's
    ``last_error``), the tokens the LLM reported, and why the run stopped early (a cost cap)
    if it did. A dry run fills ``planned`` instead: each session it would summarize, with the
    estimated input tokens of its call."""

    summarized: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    planned: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of every call of the run."""
        return self.prompt_tokens + self.completion_tokens


def scope_bucket(namespace: str, scope: str) -> str:
    """The on-disk directory name of a scope: a hash, so odd characters cannot collide."""
    return hashlib.sha256(f"{namespace}\0{scope}".encode()).hexdigest()[:16]


def safe_session_id(session_id: str) -> str:
    """``session_id`` usable as a file name part; a hash suffix is added if it was altered."""
    safe = re.sub(r"[^A-Za-z0-9-]", "-", session_id)[:80].strip("-") or "session"
    if safe != session_id:
        safe += "-" + hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return safe


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return slug or "trace"


def trace_job_key(scope: str, session_id: str) -> str:
    """The job key of ``session_id``'s trace in ``scope`` (a scope cannot contain a newline,
    so the key is unambiguous, and two scopes sharing a session never share a lease)."""
    return f"{scope}\n{session_id}"


def check_scope(scope: object) -> str:
    """``scope`` if it is a usable scope name (1-512 characters, no control characters),
    else InvalidInputError."""
    if (
        not isinstance(scope, str)
        or not scope.strip()
        or len(scope) > 512
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in scope)
    ):
        raise InvalidInputError(
            "scope must be a non-empty string of at most 512 characters without control "
            f"characters: {scope!r:.80}"
        )
    return scope


def _session_tag(session_id: str) -> str:
    tag = f"trace-session:{session_id}"
    if len(tag) > MAX_TAG_LENGTH:
        tag = "trace-session:#" + hashlib.sha256(session_id.encode()).hexdigest()
    return tag


def truncate_middle(text: str, budget: int) -> str:
    """``text`` within ``budget`` UTF-8 bytes: its head and tail kept around a line
    ``[... N bytes omitted ...]``."""
    data = text.encode("utf-8")
    if len(data) <= budget:
        return text
    keep = max(budget - 64, 0)
    head, tail = data[: keep // 2], data[len(data) - (keep - keep // 2) :]
    omitted = len(data) - len(head) - len(tail)
    return (
        head.decode("utf-8", "ignore")
        + f"\n[... {omitted} bytes omitted ...]\n"
        + tail.decode("utf-8", "ignore")
    )


def cut_lines(text: str, limit: int, *, unit: str = "bytes") -> str:
    """``text`` within ``limit`` (UTF-8 bytes, or characters with ``unit="chars"``), cut at a
    line boundary, with a marker line saying it was cut."""

    def size(value: str) -> int:
        return len(value.encode("utf-8")) if unit == "bytes" else len(value)

    if size(text) <= limit:
        return text
    marker = "[... cut to fit the size limit ...]"
    kept: list[str] = []
    used = size(marker) + 1
    for line in text.splitlines():
        if used + size(line) + 1 > limit:
            break
        kept.append(line)
        used += size(line) + 1
    if not kept:  # one long first line: cut inside it, on a character
        room = max(limit - size(marker) - 1, 0)
        first = text.encode("utf-8")[:room].decode("utf-8", "ignore") if unit == "bytes" else ""
        kept = [first if unit == "bytes" else text[:room]]
    return "\n".join([*kept, marker])


def normalize_trace(text: str) -> str:
    """The trace with the expected ``## `` sections: one lacking any is wrapped in the
    default skeleton (its text kept under ``## Learnings``)."""
    text = text.strip()
    if all(re.search(rf"^{re.escape(s)}\s*$", text, re.M) for s in SECTIONS):
        return text
    return "## Task\n(not stated)\n\n## Outcome\n(not stated)\n\n## Learnings\n" + text


def _session_items(memory: Memory, namespace: str, session_id: str) -> list[Any]:
    out: list[Any] = []
    after = -1
    while True:
        page = items_after(memory.store, namespace, session_id, after, _PAGE)
        out.extend(page)
        if len(page) < _PAGE:
            return out
        after = page[-1][0]


def _all_sessions(memory: Memory, namespace: str) -> list[SessionInfo]:
    out: list[SessionInfo] = []
    before: tuple[int, str] | None = None
    while True:
        page = memory.store.session_list(namespace, limit=1000, before=before)
        out.extend(page)
        if len(page) < 1000:
            return out
        before = (us_from_datetime(page[-1].updated_at), page[-1].session_id)


def find_trace(
    memory: Memory, session_id: str, *, scope: str, namespace: str | None = None
) -> MemoryRecord | None:
    """The stored trace memory of ``session_id`` in ``scope``, or ``None``."""
    flt = {
        "tags": [TRACE_TAG, _session_tag(session_id)],
        "metadata": {"kind": "trace", "scope": scope, "session_id": session_id},
    }
    items = memory.list(flt, namespace=namespace, limit=1).items
    return items[0] if items else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_older_files(directory: Path, safe_id: str, *, keep: str) -> None:
    """Remove the session's other trace files (an older slug, or one a failed run left).
    A safe session id never contains ``_``, so the part before the first ``_`` names the
    session unambiguously."""
    for path in directory.glob(f"{safe_id}_*.md"):
        if path.name != keep and path.name.split("_", 1)[0] == safe_id:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def summarize_sessions(
    memory: Memory,
    llm: LLM,
    *,
    root: str | Path,
    scope: str,
    namespace: str | None = None,
    idle_seconds: float = 3600,
    current_session: str | None = None,
    max_sessions: int = 10,
    byte_budget: int = 60_000,
    tools: ToolRule = "summarize",
    now: datetime | None = None,
    lease_seconds: float = 300.0,
    retry_in: float = 60.0,
    session_prefix: str | None = None,
    budget: Budget | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    quota: Quota | None = None,
) -> TraceRun:
    """Turn the idle sessions of ``namespace`` whose trace is missing or stale into trace
    memories and files under ``root`` (see the module docstring). ``tools`` is the transcript
    rule for tool items (``"drop"``, ``"summarize"``, ``"keep"``); ``session_prefix`` limits
    the scope to sessions whose id starts with it. Failures are recorded per session (in the
    result and as the job's ``last_error``), never raised. ``budget`` caps and records the
    spend (without one the spend is recorded, uncapped); a cap reached stops the run
    (``TraceRun.stopped``) and gives the session's job back untouched. ``dry_run`` calls no
    model and writes nothing: ``TraceRun.planned`` says what would run. ``progress`` is called
    with (sessions done, sessions to do) as the run goes. ``quota`` (a server key's) bounds
    the memories the traces add, as every other write of the key."""
    check_scope(scope)
    if max_sessions < 1 or byte_budget < 1024 or idle_seconds < 0:
        raise InvalidInputError(
            "max_sessions must be >= 1, byte_budget >= 1024 and idle_seconds >= 0"
        )
    ns = memory._ns(namespace)
    moment = now or datetime.now(UTC)
    bucket_dir = Path(root) / scope_bucket(ns, scope) / "trace_summaries"
    run = TraceRun()
    candidates: list[tuple[SessionInfo, MemoryRecord | None]] = []
    for info in _all_sessions(memory, ns):
        if len(candidates) >= max_sessions:
            break
        sid = info.session_id
        if session_prefix is not None and not sid.startswith(session_prefix):
            continue
        if sid == current_session:
            run.skipped[sid] = "current session"
            continue
        if (moment - info.updated_at).total_seconds() < idle_seconds:
            run.skipped[sid] = "not idle yet"
            continue
        if info.item_count == 0:
            run.skipped[sid] = "no items"
            continue
        trace = find_trace(memory, sid, scope=scope, namespace=ns)
        job = memory.store.job_get(ns, JOB_KIND, trace_job_key(scope, sid))
        retry = job is not None and job.status == "pending"
        if (
            trace is None
            and job is not None
            and job.status == "done"
            and job.updated_at >= info.updated_at
        ):
            # summarized, then its trace was deleted (or forgotten): it stays deleted until
            # the session changes
            run.skipped[sid] = "trace deleted"
            continue
        seen = trace.metadata.get("session_updated_at") if trace is not None else None
        stale = not isinstance(seen, int) or seen < us_from_datetime(info.updated_at)
        if stale or retry:
            candidates.append((info, trace))
    if dry_run:
        for info, _trace in candidates:
            prepared = _prepare(memory, ns, info.session_id, tools, byte_budget)
            if prepared is not None:
                run.planned[info.session_id] = estimate_input_tokens(prepared[1])
        return run
    budget = budget or Budget(memory.store, ns, scope, CostCaps(run=Caps(), day=Caps()))
    budgeted = budget.llm(llm)
    owner = "traces-" + secrets.token_hex(4)
    for done, (info, trace) in enumerate(candidates):
        if progress is not None:
            progress(done, len(candidates))
        try:
            _one(memory, budgeted, budget, ns, scope, info, trace, bucket_dir, run, owner,
                 tools, byte_budget, lease_seconds, retry_in, quota)  # fmt: skip
        except BudgetExceededError as exc:
            run.stopped = str(exc)
            break
    if progress is not None:
        progress(len(candidates), len(candidates))
    return run


def _prepare(
    memory: Memory, ns: str, sid: str, tools: ToolRule, byte_budget: int
) -> tuple[int, list[Message]] | None:
    """The last item's seq and the messages of ``sid``'s trace call; ``None`` if the session
    has nothing to summarize."""
    items = _session_items(memory, ns, sid)
    transcript = render_transcript(items, tools=tools, redact=redact)
    if not items or not transcript.text.strip():
        return None
    text = truncate_middle(transcript.text, byte_budget)
    messages = [
        Message("system", load_prompt()),
        Message("user", f"Session transcript:\n\n{text}"),
    ]
    return int(items[-1][0]), messages


def _one(
    memory: Memory,
    llm: LLM,
    budget: Budget,
    ns: str,
    scope: str,
    info: SessionInfo,
    trace: MemoryRecord | None,
    bucket_dir: Path,
    run: TraceRun,
    owner: str,
    tools: ToolRule,
    byte_budget: int,
    lease_seconds: float,
    retry_in: float,
    quota: Quota | None,
) -> None:
    sid = info.session_id
    store = memory.store
    key = trace_job_key(scope, sid)
    job = store.job_claim(ns, JOB_KIND, key, owner, lease_seconds)
    if job is None or job.token is None:
        run.skipped[sid] = "job busy or failed"
        return
    token = job.token
    before = budget.spent

    def spent() -> Spend:  # this session's share of the run's spend
        now = budget.spent
        return Spend(
            now.sessions - before.sessions,
            now.llm_calls - before.llm_calls,
            now.input_tokens - before.input_tokens,
            now.output_tokens - before.output_tokens,
        )

    try:
        prepared = _prepare(memory, ns, sid, tools, byte_budget)
        if prepared is None:
            store.job_complete(ns, JOB_KIND, key, token, input_watermark=None, spend=spent())
            run.skipped[sid] = "no items"
            return
        last_seq, messages = prepared
        budget.check_call(messages)  # refuse before counting the session
        budget.take_session()
        try:
            answer = llm.complete_json(messages, TRACE_SCHEMA, name="trace_memory")
        finally:
            run.llm_calls = budget.spent.llm_calls
        run.prompt_tokens += answer.usage.prompt_tokens
        run.completion_tokens += answer.usage.completion_tokens
        if not store.job_heartbeat(ns, JOB_KIND, key, token, lease_seconds):
            # the lease expired during the call and another run took the job over: its
            # owner writes the result, this run writes nothing
            run.skipped[sid] = "lease lost"
            return
        body = answer.data.get("trace_memory")
        summary = answer.data.get("summary")
        if not isinstance(body, str) or not body.strip():
            raise LLMResponseError("the model returned an empty trace_memory")
        if not isinstance(summary, str) or not summary.strip():
            raise LLMResponseError("the model returned an empty summary")
        content = cut_lines(normalize_trace(redact(body)), MAX_TRACE_BYTES)
        summary = cut_lines(" ".join(redact(summary).split()), MAX_SUMMARY_CHARS, unit="chars")
        name = f"{safe_session_id(sid)}_{_slug(summary)}.md"
        metadata = {
            "kind": "trace",
            "scope": scope,
            "session_id": sid,
            "last_seq": last_seq,
            "session_updated_at": us_from_datetime(info.updated_at),
            "summary": summary,
            "prompt_version": PROMPT_VERSION,
            "file": name,
        }
        tags = [TRACE_TAG, _session_tag(sid)]
        if trace is None:
            # session_id in the memory's scope: identical text of two sessions stays two traces
            stored = memory.remember(
                content, namespace=ns, session_id=sid, tags=tags, metadata=metadata, quota=quota
            )
            if stored.metadata.get("scope") != scope:  # merged into another scope's trace
                raise ConflictError(
                    f"session {sid!r} already has the same trace text in another scope"
                )
        else:
            memory.update(trace.id, content=content, tags=tags, metadata=metadata, namespace=ns)
        # only now, with the database written, does the file appear
        path = bucket_dir / name
        _write_atomic(path, content + "\n")
        _remove_older_files(bucket_dir, safe_session_id(sid), keep=name)
        store.job_complete(ns, JOB_KIND, key, token, input_watermark=str(last_seq), spend=spent())
        run.summarized.append(sid)
        run.files[sid] = path
    except BudgetExceededError:
        # a cap, not a fault of this session: give the job back without using an attempt
        store.job_release(ns, JOB_KIND, key, token, spend=spent())
        raise
    except Exception as exc:  # recorded on the job, retried later
        error = f"{type(exc).__name__}: {exc}"
        store.job_fail(ns, JOB_KIND, key, token, error, retry_in=retry_in, spend=spent())
        run.failed[sid] = error


__all__ = [
    "JOB_KIND",
    "MAX_SUMMARY_CHARS",
    "MAX_TRACE_BYTES",
    "PROMPT_VERSION",
    "TRACE_SCHEMA",
    "TraceRun",
    "check_scope",
    "cut_lines",
    "find_trace",
    "load_prompt",
    "normalize_trace",
    "safe_session_id",
    "scope_bucket",
    "summarize_sessions",
    "trace_job_key",
    "truncate_middle",
]
