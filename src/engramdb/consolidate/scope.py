"""Phase 2 of trace consolidation: each scope's traces become one ``MEMORY.md``.

:func:`consolidate_scope` claims the scope's lease-locked job (``kind="memory_md"``,
``job_key`` = the scope), reads the scope's trace memories only (tag ``trace``, metadata
``scope`` equal to the scope, in the namespace: nothing of another scope or namespace is
read), keeps the ``max_traces`` most recent, rebuilds ``memory_summary.md`` (a routing map,
one line per trace, newest first) and prunes the trace files of older traces. If the stored
``MEMORY.md`` already covers exactly these traces nothing else runs (no LLM call). Otherwise
near-duplicate lines of the previous ``MEMORY.md`` and the new traces are merged, the LLM is
asked for the merged ``MEMORY.md`` (and optional skills) under a hard size cap, the answer is
redacted and brought within the cap (a second LLM call to compact it, then whole lines
dropped, never a line cut), stored as a memory of the namespace (tag ``memory-md``; later
runs update it, so every version is kept: :func:`memory_md_history`, :func:`memory_md_diff`)
and only then written atomically to ``<root>/<bucket>/MEMORY.md`` and
``skills/<name>/SKILL.md``. The job is completed, failed (retried later) or released on every
path.

Layout of a scope's directory (``<bucket>`` = :func:`~.traces.scope_bucket`)::

    <root>/<bucket>/MEMORY.md
    <root>/<bucket>/memory_summary.md
    <root>/<bucket>/trace_summaries/<session>_<slug>.md
    <root>/<bucket>/skills/<name>/SKILL.md

The stored ``MEMORY.md`` (and each skill) ends with a marker line naming the scope's bucket,
an HTML comment: memories with identical text are stored once per namespace, and the marker
keeps two scopes that happen to produce the same text apart.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import heapq
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import (
    BudgetExceededError,
    ConflictError,
    InvalidInputError,
    LLMResponseError,
    NotFoundError,
)
from ..llm.base import LLM, Completion, Message
from ..manager.transcript import estimate_tokens
from ..memory import Memory
from ..redact import redact
from ..types import MemoryRecord, Quota, Spend, us_from_datetime
from .traces import (
    TRACE_TAG,
    _write_atomic,
    check_scope,
    find_trace,
    load_prompt,
    safe_session_id,
    scope_bucket,
    truncate_middle,
)

PROMPT_VERSION = "memory_md_v1"
"""The consolidation prompt in use (``prompts/memory_md_v1.md``), recorded on MEMORY.md."""
COMPACT_PROMPT_VERSION = "memory_md_compact_v1"
"""The prompt asking the model to shorten a MEMORY.md over the cap."""

JOB_KIND = "memory_md"
MEMORY_MD_TAG = "memory-md"
SKILL_TAG = "skill"
MAX_SKILLS = 8
NEAR_DUPLICATE_RATIO = 0.9
MEMORY_MD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "memory_md": {"type": "string"},
        "skills": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "content": {"type": "string"}},
                "required": ["name", "content"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["memory_md", "skills"],
    "additionalProperties": False,
}
_PAGE = 1000
_FENCE = re.compile(r"^\s*(```|~~~)")


# -- paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopePaths:
    """Where a scope's files live under the consolidation root."""

    directory: Path
    memory_md: Path
    memory_summary: Path
    trace_summaries: Path
    skills: Path

    def skill(self, name: str) -> Path:
        """The ``SKILL.md`` of skill ``name`` (a safe name, see :func:`skill_name`)."""
        return self.skills / name / "SKILL.md"


def scope_paths(root: str | Path, namespace: str, scope: str) -> ScopePaths:
    """The paths of ``scope`` of ``namespace`` under ``root`` (nothing is created)."""
    directory = Path(root) / scope_bucket(namespace, scope)
    return ScopePaths(
        directory=directory,
        memory_md=directory / "MEMORY.md",
        memory_summary=directory / "memory_summary.md",
        trace_summaries=directory / "trace_summaries",
        skills=directory / "skills",
    )


def skill_name(name: str) -> str:
    """``name`` as a skill directory name: lowercase ``[a-z0-9-]``, at most 64 characters
    (empty if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")[:64].strip("-")


def _marker(namespace: str, scope: str, what: str) -> str:
    return f"<!-- engramdb {what} scope={scope_bucket(namespace, scope)} -->"


def _with_marker(body: str, marker: str) -> str:
    return f"{body}\n{marker}"


def strip_marker(content: str) -> str:
    """A stored MEMORY.md or skill without its trailing scope marker line."""
    lines = content.split("\n")
    if lines and re.fullmatch(r"<!-- engramdb [a-z0-9_=-]+ scope=[0-9a-f]+ -->", lines[-1]):
        lines.pop()
    return "\n".join(lines).rstrip("\n")


# -- reading traces ------------------------------------------------------------------------


def _all(memory: Memory, ns: str, flt: dict[str, Any]) -> list[MemoryRecord]:
    out: list[MemoryRecord] = []
    cursor: str | None = None
    while True:
        page = memory.list(flt, namespace=ns, cursor=cursor, limit=_PAGE)
        out.extend(page.items)
        if page.next_cursor is None or not page.items:
            return out
        cursor = page.next_cursor


def list_traces(memory: Memory, scope: str, namespace: str | None = None) -> list[MemoryRecord]:
    """The trace memories of ``scope`` (and only of it), newest first: by when their session
    was last active, else when the trace was last written."""
    ns = memory._ns(namespace)
    flt = {"tags": [TRACE_TAG], "metadata": {"kind": "trace", "scope": check_scope(scope)}}
    traces = _all(memory, ns, flt)
    traces.sort(key=lambda r: r.id)
    traces.sort(key=_recency, reverse=True)
    return traces


def _recency(trace: MemoryRecord) -> int:
    """When the trace's session was last active (phase 1 records it), else when the trace
    was last written."""
    seen = trace.metadata.get("session_updated_at")
    if isinstance(seen, int) and not isinstance(seen, bool):
        return seen
    return us_from_datetime(trace.updated_at)


def watermark(traces: Sequence[MemoryRecord]) -> str:
    """The input watermark of a set of traces: a digest of their ids and versions."""
    pairs = "\n".join(sorted(f"{t.id}@{t.version}" for t in traces))
    return "v1:" + hashlib.sha256(pairs.encode()).hexdigest()[:32]


def _summary_line(trace: MemoryRecord) -> str:
    summary = " ".join(str(trace.metadata.get("summary") or "").split()) or "(no summary)"
    sid = trace.metadata.get("session_id") or trace.session_id or "?"
    line = f"- {summary} (trace: `{sid}`"
    if trace.metadata.get("file"):
        line += f", file: trace_summaries/{trace.metadata['file']}"
    return line + ")"


_SUMMARY_HEAD = "# Memory Summary\n\n"
_SUMMARY_INTRO = "Map of concise summaries to trace IDs (latest first):\n\n"


def render_memory_summary(traces: Sequence[MemoryRecord]) -> str:
    """The routing map of ``traces`` (newest first): one line per trace."""
    if not traces:
        return _SUMMARY_HEAD + "No memory traces yet.\n"
    return _SUMMARY_HEAD + _SUMMARY_INTRO + "".join(_summary_line(t) + "\n" for t in traces)


def memory_summary(
    memory: Memory,
    scope: str,
    *,
    budget_tokens: int = 500,
    max_traces: int = 32,
    namespace: str | None = None,
) -> str:
    """The routing map of ``scope``'s ``max_traces`` most recent traces (newest first, as
    ``memory_summary.md`` lists them) from the database, trimmed to ``budget_tokens``
    (estimated as characters / 4) at line boundaries, for injection into an agent's
    instructions. Traces that do not fit are counted in a last line."""
    if not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise InvalidInputError("budget_tokens must be an integer >= 1")
    if not isinstance(max_traces, int) or max_traces < 1:
        raise InvalidInputError("max_traces must be an integer >= 1")
    text = render_memory_summary(list_traces(memory, scope, namespace)[:max_traces])
    if estimate_tokens(text) <= budget_tokens:
        return text
    lines = text.splitlines(keepends=True)
    total = sum(1 for line in lines if line.startswith("- "))
    reserve = f"(+{total} older traces not shown)\n"  # the longest the last line can be
    kept: list[str] = []
    for line in lines:
        if estimate_tokens("".join([*kept, line, reserve])) > budget_tokens:
            break
        kept.append(line)
    shown = sum(1 for line in kept if line.startswith("- "))
    more = f"(+{total - shown} older traces not shown)\n"
    if estimate_tokens("".join([*kept, more])) <= budget_tokens:
        kept.append(more)
    return "".join(kept)


# -- near-duplicate lines ------------------------------------------------------------------


def normalize_line(line: str) -> str:
    """A line as compared for duplicates: casefolded, list marker dropped, punctuation and
    whitespace collapsed to single spaces."""
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line.casefold())
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _near(a: str, b: str, threshold: float) -> bool:
    if 2 * min(len(a), len(b)) / (len(a) + len(b)) < threshold:
        return False
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


class _Seen:
    """The lines kept so far, indexed by word: a line is compared in full only with kept lines
    sharing at least half of the words of the shorter of the two."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.exact: set[str] = set()
        self.lines: list[str] = []
        self.words: list[frozenset[str]] = []
        self.index: dict[str, list[int]] = {}

    def duplicate(self, norm: str) -> bool:
        if norm in self.exact:
            return True
        words = frozenset(norm.split())
        shared: dict[int, int] = {}
        for word in words:
            for k in self.index.get(word, ()):
                shared[k] = shared.get(k, 0) + 1
        for k, n in shared.items():
            other = self.words[k]
            if 2 * n < min(len(words), len(other)):
                continue
            if n / len(words | other) >= self.threshold or _near(
                norm, self.lines[k], self.threshold
            ):
                return True
        return False

    def add(self, norm: str) -> None:
        self.exact.add(norm)
        words = frozenset(norm.split())
        for word in words:
            self.index.setdefault(word, []).append(len(self.lines))
        self.lines.append(norm)
        self.words.append(words)


def merge_near_duplicates(
    texts: Sequence[str], *, threshold: float = NEAR_DUPLICATE_RATIO
) -> list[str]:
    """``texts`` (newest first) with each line that repeats a line seen before removed: the
    same after :func:`normalize_line`, or nearly (``difflib`` ratio or word-set Jaccard
    ``>= threshold``, among lines sharing at least half their words). The newest copy is
    kept. Headings, code blocks, blank lines and lines of fewer than three words are never
    removed. Deterministic."""
    seen = _Seen(threshold)
    out: list[str] = []
    for text in texts:
        lines: list[str] = []
        fenced = False
        for line in text.split("\n"):
            if _FENCE.match(line):
                fenced = not fenced
                lines.append(line)
                continue
            norm = normalize_line(line)
            if fenced or line.lstrip().startswith("#") or len(norm.split()) < 3:
                lines.append(line)
                continue
            if seen.duplicate(norm):
                continue
            seen.add(norm)
            lines.append(line)
        out.append("\n".join(lines))
    return out


# -- the size cap --------------------------------------------------------------------------


def _size(lines: Sequence[str]) -> tuple[int, int]:
    return len(lines), sum(len(line.encode("utf-8")) + 1 for line in lines)


def fit_lines(text: str, *, max_lines: int, max_bytes: int) -> str:
    """``text`` within ``max_lines`` lines and ``max_bytes`` UTF-8 bytes (each line counted
    with its newline), by dropping whole blocks - a line, or a whole fenced code block - from
    the end of the longest ``#`` section until it fits, a heading only once its section is
    empty. Every line of the result is a whole line of ``text``; no line is ever cut."""
    lines = text.split("\n")
    count, size = _size(lines)
    if count <= max_lines and size <= max_bytes:
        return text
    # sections: [heading lines, blocks]; a block is a list of lines dropped together
    sections: list[tuple[list[str], list[list[str]]]] = [([], [])]
    block: list[str] | None = None
    for line in lines:
        if block is not None:  # inside a fenced code block
            block.append(line)
            if _FENCE.match(line):
                block = None
            continue
        if _FENCE.match(line):
            block = [line]
            sections[-1][1].append(block)
        elif line.startswith("#"):
            sections.append(([line], []))
        else:
            sections[-1][1].append([line])
    weights = [sum(_size(b)[1] for b in blocks) for _, blocks in sections]
    heap = [(-w, -i) for i, w in enumerate(weights) if sections[i][1]]
    heapq.heapify(heap)
    while (count > max_lines or size > max_bytes) and heap:
        weight, i = heapq.heappop(heap)
        i = -i
        if -weight != weights[i] or not sections[i][1]:
            continue  # a stale entry
        head, blocks = sections[i]
        dropped = blocks.pop()
        while blocks and len(blocks[-1]) == 1 and not blocks[-1][0].strip():
            dropped = [*blocks.pop(), *dropped]  # trailing blank lines go with it
        weights[i] -= _size(dropped)[1]
        if blocks:
            heapq.heappush(heap, (-weights[i], -i))
        else:  # an emptied section loses its heading too
            dropped = [*head, *dropped]
            sections[i] = ([], [])
        n, b = _size(dropped)
        count, size = count - n, size - b
    flat = [line for head, blocks in sections for line in head + [x for b in blocks for x in b]]
    while (count > max_lines or size > max_bytes) and flat:  # headings alone are left
        n, b = _size([flat.pop()])
        count, size = count - n, size - b
    return "\n".join(flat).strip("\n")


# -- the run -------------------------------------------------------------------------------


@dataclass
class ScopeRun:
    """What one :func:`consolidate_scope` run did.

    ``status``: ``"consolidated"`` (the LLM merged new traces into MEMORY.md),
    ``"unchanged"`` (MEMORY.md already covers the scope's traces; no LLM call, missing files
    restored), ``"skipped"`` (the job is leased to another run, waiting for a retry, failed,
    or a cost cap refused the call: see ``error``), ``"failed"`` (``error`` is also the job's
    ``last_error``; retried later) or ``"dry-run"``. ``traces`` are the session ids of the
    traces kept (newest first), ``new_traces`` those sent to the LLM;
    ``estimated_input_tokens`` is the size of the first prompt (bytes / 4).
    """

    scope: str
    namespace: str
    status: str = "unchanged"
    files: list[Path] = field(default_factory=list)
    memory_md_id: str | None = None
    memory_md_version: int | None = None
    traces: list[str] = field(default_factory=list)
    new_traces: list[str] = field(default_factory=list)
    watermark: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    estimated_input_tokens: int = 0
    error: str | None = None
    stopped: str | None = None
    """Set when a cost cap refused the run's model call (the job was given back)."""

    @property
    def spend(self) -> Spend:
        """What the run spent, as recorded on its job."""
        return Spend(0, self.llm_calls, self.prompt_tokens, self.completion_tokens)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of every call of the run."""
        return self.prompt_tokens + self.completion_tokens


def _memory_md_filter(scope: str) -> dict[str, Any]:
    return {"tags": [MEMORY_MD_TAG], "metadata": {"kind": "memory_md", "scope": scope}}


def read_memory_md(memory: Memory, scope: str, namespace: str | None = None) -> MemoryRecord | None:
    """The stored MEMORY.md of ``scope`` (its content ends with the scope marker line, see
    :func:`strip_marker`), or ``None`` if the scope has none (yet, or since a reset)."""
    ns = memory._ns(namespace)
    items = memory.list(_memory_md_filter(check_scope(scope)), namespace=ns, limit=1).items
    return items[0] if items else None


def _skills(memory: Memory, ns: str, scope: str) -> list[MemoryRecord]:
    flt = {"tags": [SKILL_TAG], "metadata": {"kind": "skill", "scope": scope}}
    return _all(memory, ns, flt)


@dataclass(frozen=True)
class MemoryMdVersion:
    """One version of a scope's MEMORY.md: its number, text (marker line removed), when it
    was written and its metadata (watermark, traces, prompt version)."""

    version: int
    content: str
    written_at: datetime
    metadata: dict[str, Any]


def memory_md_history(
    memory: Memory, scope: str, namespace: str | None = None
) -> list[MemoryMdVersion]:
    """Every version of ``scope``'s MEMORY.md, newest first (empty if it has none)."""
    ns = memory._ns(namespace)
    record = read_memory_md(memory, scope, ns)
    if record is None:
        return []
    prior = sorted(memory.history(record.id, namespace=ns), key=lambda v: v.version)
    out: list[MemoryMdVersion] = []
    written = record.created_at
    for version in prior:
        out.append(
            MemoryMdVersion(
                version.version, strip_marker(version.content), written, dict(version.metadata)
            )
        )
        written = version.replaced_at
    out.append(
        MemoryMdVersion(
            record.version, strip_marker(record.content), record.updated_at, dict(record.metadata)
        )
    )
    return out[::-1]


def memory_md_diff(
    memory: Memory,
    scope: str,
    *,
    old: int | None = None,
    new: int | None = None,
    namespace: str | None = None,
) -> str:
    """A unified diff of ``scope``'s MEMORY.md between versions ``old`` and ``new`` (by
    default the previous and the current one; with a single version, from nothing).
    :class:`NotFoundError` if the scope has no MEMORY.md or a version does not exist."""
    versions = {v.version: v for v in memory_md_history(memory, scope, namespace)}
    if not versions:
        raise NotFoundError(f"scope {scope!r} has no MEMORY.md")
    new_v = max(versions) if new is None else new
    old_v = new_v - 1 if old is None else old
    if new_v not in versions or (old is not None and old_v not in versions):
        missing = new_v if new_v not in versions else old_v
        raise NotFoundError(f"scope {scope!r} has no MEMORY.md version {missing}")
    before = versions[old_v].content if old_v in versions else ""
    after = versions[new_v].content
    return "".join(
        difflib.unified_diff(
            (before + "\n").splitlines(keepends=True) if before else [],
            (after + "\n").splitlines(keepends=True),
            fromfile=f"MEMORY.md@{old_v}" if old_v in versions else "/dev/null",
            tofile=f"MEMORY.md@{new_v}",
        )
    )


def reset_memory_md(
    memory: Memory, *, root: str | Path, scope: str, namespace: str | None = None
) -> bool:
    """Forget ``scope``'s MEMORY.md and skills (memories and history) and remove their files;
    the scope's traces and ``memory_summary.md`` are kept, other scopes are untouched. The
    next :func:`consolidate_scope` starts afresh from the traces. Returns whether anything
    was removed."""
    ns = memory._ns(namespace)
    scope = check_scope(scope)
    paths = scope_paths(root, ns, scope)
    removed = False
    records = [r for r in [read_memory_md(memory, scope, ns)] if r is not None]
    for record in records + _skills(memory, ns, scope):
        with contextlib.suppress(NotFoundError):
            memory.forget(record.id, namespace=ns)
            removed = True
    if paths.memory_md.exists():
        paths.memory_md.unlink()
        removed = True
    if paths.skills.exists():
        shutil.rmtree(paths.skills)
        removed = True
    # a failed consolidation job would keep the scope from ever running again
    memory.store.job_reset(ns, JOB_KIND, scope)
    return removed


def delete_trace(
    memory: Memory,
    *,
    root: str | Path,
    scope: str,
    session_id: str,
    namespace: str | None = None,
) -> bool:
    """Forget the trace of ``session_id`` in ``scope`` and remove its file(s); the scope's
    ``memory_summary.md`` is rebuilt without it. Returns whether anything was removed."""
    ns = memory._ns(namespace)
    scope = check_scope(scope)
    paths = scope_paths(root, ns, scope)
    removed = False
    trace = find_trace(memory, session_id, scope=scope, namespace=ns)
    if trace is not None:
        memory.forget(trace.id, namespace=ns)
        removed = True
    safe = safe_session_id(session_id)
    if paths.trace_summaries.is_dir():
        for path in paths.trace_summaries.glob(f"{safe}_*.md"):
            if path.name.split("_", 1)[0] == safe:
                path.unlink(missing_ok=True)
                removed = True
    if removed and paths.directory.is_dir():
        _write_if_changed(
            paths.memory_summary, render_memory_summary(list_traces(memory, scope, ns))
        )
    return removed


def _write_if_changed(path: Path, text: str) -> bool:
    with contextlib.suppress(OSError):
        if path.read_text("utf-8") == text:
            return False
    _write_atomic(path, text)
    return True


def _prune_trace_files(directory: Path, plan: _Plan, started: float) -> None:
    """Remove trace files of traces no longer kept: those of dropped (older) traces, and files
    of no known trace that predate the run (a newer one may be a trace written meanwhile)."""
    if not directory.is_dir():
        return
    for path in directory.glob("*.md"):
        if path.name.startswith("."):
            continue
        safe = path.name.split("_", 1)[0]
        if safe in plan.keep_ids:
            continue
        try:
            stale = safe in plan.dropped_ids or (
                safe not in plan.known_ids and path.stat().st_mtime < started
            )
            if stale:
                path.unlink()
        except FileNotFoundError:
            pass


def _trace_block(trace: MemoryRecord, text: str) -> str:
    sid = trace.metadata.get("session_id") or trace.session_id or "?"
    where = (
        f", file: trace_summaries/{trace.metadata['file']}" if trace.metadata.get("file") else ""
    )
    stamp = trace.updated_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"### Trace `{sid}` (updated {stamp}{where})\n\n{text.strip()}\n"


def _fill(template: str, max_lines: int, max_bytes: int) -> str:
    return template.replace("{max_lines}", str(max_lines)).replace("{max_bytes}", str(max_bytes))


def _clean(text: str) -> str:
    """Redacted, trailing spaces and the scope marker removed, blank edges stripped."""
    lines = [line.rstrip() for line in redact(text).replace("\r\n", "\n").split("\n")]
    return strip_marker("\n".join(lines)).strip("\n")


def _memory_md_of(completion: Completion) -> str:
    body = completion.data.get("memory_md")
    if not isinstance(body, str) or not body.strip():
        raise LLMResponseError("the model returned an empty memory_md")
    return _clean(body)


def _skills_of(completion: Completion) -> dict[str, str]:
    out: dict[str, str] = {}
    raw = completion.data.get("skills")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or len(out) >= MAX_SKILLS:
            continue
        name, content = item.get("name"), item.get("content")
        if not isinstance(name, str) or not isinstance(content, str) or not content.strip():
            continue
        safe = skill_name(redact(name))
        if safe and safe not in out:
            out[safe] = _clean(content)
    return out


def consolidate_scope(
    memory: Memory,
    llm: LLM,
    *,
    root: str | Path,
    scope: str,
    namespace: str | None = None,
    max_traces: int = 32,
    max_lines: int = 200,
    max_bytes: int = 16_384,
    trace_budget: int = 96_000,
    lease_seconds: float = 300.0,
    retry_in: float = 60.0,
    now: datetime | None = None,
    dry_run: bool = False,
    quota: Quota | None = None,
) -> ScopeRun:
    """Consolidate ``scope``'s traces into its MEMORY.md (see the module docstring).

    ``max_traces``: the most recent traces kept (older ones leave the routing map and their
    files are pruned; their memories stay). ``max_lines`` / ``max_bytes``: the hard cap of
    the MEMORY.md file (and of each skill). ``trace_budget``: UTF-8 bytes of trace text sent
    to the LLM in all (each new trace gets an equal share, at least 1 KB, its head and tail
    kept). ``now``: the run's clock (trace files of no known trace older than it are
    pruned). ``dry_run``: no LLM call, no job claimed, nothing written; the result says what
    would be sent.

    Cost caps: pass the model wrapped in a budget (``Budget.llm``). A
    :class:`~engramdb.errors.BudgetExceededError` from the first call releases the job (not
    an attempt: it runs again once the budget allows) and the run is ``"skipped"`` with the
    error; refused at the compaction call, the first answer is cut to the cap instead.

    ``quota`` (a server key's) bounds the memories the run adds, as every other write of the
    key. Failures are recorded on the job (``last_error``) and in the result, never raised;
    bad arguments raise :class:`~engramdb.errors.InvalidInputError`.
    """
    scope = check_scope(scope)
    if max_traces < 1 or max_lines < 10 or max_bytes < 1024 or trace_budget < 1024:
        raise InvalidInputError(
            "max_traces must be >= 1, max_lines >= 10, max_bytes >= 1024 and trace_budget >= 1024"
        )
    ns = memory._ns(namespace)
    paths = scope_paths(root, ns, scope)
    started = (now or datetime.now(UTC)).timestamp()
    run = ScopeRun(scope=scope, namespace=ns)
    if dry_run:
        _plan(memory, run, paths, max_traces, max_lines, max_bytes, trace_budget)
        run.status = "dry-run"
        return run
    store = memory.store
    owner = "memory-md-" + secrets.token_hex(4)
    job = store.job_claim(ns, JOB_KIND, scope, owner, lease_seconds)
    if job is None or job.token is None:
        current = store.job_get(ns, JOB_KIND, scope)
        run.status = "skipped"
        run.error = "job busy"
        if current is not None and current.status == "failed":
            run.error = f"job failed: {current.last_error}"
        elif current is not None and current.status == "pending":
            run.error = f"job waiting for its retry: {current.last_error}"
        return run
    token = job.token
    settled = False
    try:
        plan = _plan(memory, run, paths, max_traces, max_lines, max_bytes, trace_budget)
        if _write_if_changed(paths.memory_summary, render_memory_summary(plan.kept)):
            run.files.append(paths.memory_summary)
        _prune_trace_files(paths.trace_summaries, plan, started)
        if plan.messages is None:  # nothing new: restore the files from the database
            if plan.previous is not None:
                _restore_files(memory, ns, scope, paths, plan.previous, run)
            store.job_complete(
                ns, JOB_KIND, scope, token, input_watermark=run.watermark, spend=run.spend
            )
            settled = True
            run.status = "unchanged"
            return run
        try:
            answer = _call(llm, run, plan.messages)
        except BudgetExceededError as exc:
            run.status, run.error = "skipped", f"{type(exc).__name__}: {exc}"
            run.stopped = str(exc)
            return run  # the finally releases the job: a cap is not an attempt
        body = _memory_md_of(answer)
        skills = _skills_of(answer)
        cap_lines, cap_bytes = _body_cap(ns, scope, max_lines, max_bytes)
        if _over(body, cap_lines, cap_bytes):
            body = _compact(llm, run, body, cap_lines, cap_bytes)
        if not store.job_heartbeat(ns, JOB_KIND, scope, token, lease_seconds):
            # the lease expired during the call and another run took the job over
            run.status, run.error = "skipped", "lease lost"
            settled = True
            return run
        record = _store_memory_md(memory, ns, scope, body, plan, run, quota)
        skill_records = _store_skills(memory, ns, scope, skills, max_lines, max_bytes, quota)
        # only now, with the database written, do the files change
        if _write_if_changed(paths.memory_md, record.content + "\n"):
            run.files.append(paths.memory_md)
        for name, skill in skill_records.items():
            if _write_if_changed(paths.skill(name), skill.content + "\n"):
                run.files.append(paths.skill(name))
        store.job_complete(
            ns, JOB_KIND, scope, token, input_watermark=run.watermark, spend=run.spend
        )
        settled = True
        run.status = "consolidated"
        return run
    except Exception as exc:  # recorded on the job, retried later
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        store.job_fail(ns, JOB_KIND, scope, token, run.error, retry_in=retry_in, spend=run.spend)
        settled = True
        return run
    finally:
        if not settled:  # refused by the budget, or interrupted: give the job back
            with contextlib.suppress(Exception):
                store.job_release(ns, JOB_KIND, scope, token, spend=run.spend)


@dataclass
class _Plan:
    kept: list[MemoryRecord]
    previous: MemoryRecord | None
    keep_ids: set[str]
    dropped_ids: set[str]
    known_ids: set[str]
    versions: dict[str, int]
    messages: list[Message] | None


def _sid(trace: MemoryRecord) -> str:
    return str(trace.metadata.get("session_id") or trace.session_id or trace.id)


def _plan(
    memory: Memory,
    run: ScopeRun,
    paths: ScopePaths,
    max_traces: int,
    max_lines: int,
    max_bytes: int,
    trace_budget: int,
) -> _Plan:
    """Read the scope's traces and previous MEMORY.md; build the prompt if there is new input."""
    ns, scope = run.namespace, run.scope
    traces = list_traces(memory, scope, ns)
    kept, dropped = traces[:max_traces], traces[max_traces:]
    previous = read_memory_md(memory, scope, ns)
    run.traces = [_sid(t) for t in kept]
    run.watermark = watermark(kept)
    versions = {t.id: t.version for t in kept}
    seen: dict[str, Any] = previous.metadata.get("trace_versions", {}) if previous else {}
    if not isinstance(seen, dict):
        seen = {}
    new = [t for t in kept if previous is None or seen.get(t.id) != t.version]
    plan = _Plan(
        kept=kept,
        previous=previous,
        keep_ids={safe_session_id(_sid(t)) for t in kept},
        dropped_ids={safe_session_id(_sid(t)) for t in dropped},
        known_ids={safe_session_id(_sid(t)) for t in traces},
        versions=versions,
        messages=None,
    )
    if not new:
        return plan
    run.new_traces = [_sid(t) for t in new]
    share = max(trace_budget // len(new), 1024)
    old_text = strip_marker(previous.content) if previous is not None else ""
    trace_texts = [redact(truncate_middle(t.content, share)) for t in new]
    *merged_traces, merged_old = merge_near_duplicates([*trace_texts, old_text])
    skills = sorted(str(s.metadata.get("name")) for s in _skills(memory, ns, scope))
    cap_lines, cap_bytes = _body_cap(ns, scope, max_lines, max_bytes)
    user = "\n".join(
        [
            f"Scope: {scope}",
            "",
            "## Previous MEMORY.md",
            "",
            merged_old.strip() or "(none)",
            "",
            "## memory_summary.md",
            "",
            render_memory_summary(kept).strip(),
            "",
            "## Existing skills",
            "",
            ", ".join(skills) or "(none)",
            "",
            "## New or changed traces (newest first)",
            "",
            *(_trace_block(t, text) for t, text in zip(new, merged_traces, strict=True)),
        ]
    )
    plan.messages = [
        Message("system", _fill(load_prompt(PROMPT_VERSION), cap_lines, cap_bytes)),
        Message("user", user),
    ]
    run.estimated_input_tokens = sum(len(m.content.encode("utf-8")) for m in plan.messages) // 4
    return plan


def _body_cap(ns: str, scope: str, max_lines: int, max_bytes: int) -> tuple[int, int]:
    """The cap of the text the LLM writes: the file's cap less the marker line."""
    marker = _marker(ns, scope, "memory_md")
    return max_lines - 1, max_bytes - len(marker.encode()) - 2


def _over(body: str, max_lines: int, max_bytes: int) -> bool:
    lines, size = _size(body.split("\n"))
    return lines > max_lines or size > max_bytes


def _call(llm: LLM, run: ScopeRun, messages: list[Message]) -> Completion:
    run.llm_calls += 1
    answer = llm.complete_json(messages, MEMORY_MD_SCHEMA, name="memory_md")
    run.prompt_tokens += answer.usage.prompt_tokens
    run.completion_tokens += answer.usage.completion_tokens
    return answer


def _compact(
    llm: LLM,
    run: ScopeRun,
    body: str,
    max_lines: int,
    max_bytes: int,
) -> str:
    """``body`` brought within the cap: the LLM asked once to shorten it, then whole blocks
    dropped (:func:`fit_lines`). A failed or refused compaction call falls back to the
    deterministic cut of the first answer."""
    messages = [
        Message("system", _fill(load_prompt(COMPACT_PROMPT_VERSION), max_lines, max_bytes)),
        Message("user", f"MEMORY.md to shorten:\n\n{body}"),
    ]
    try:
        shorter = _memory_md_of(_call(llm, run, messages))
    except Exception:  # a failed or refused call: the deterministic cut below
        shorter = body
    fitted = fit_lines(shorter, max_lines=max_lines, max_bytes=max_bytes).strip("\n")
    if not fitted.strip():
        raise LLMResponseError("MEMORY.md could not be brought within the size cap")
    return fitted


def _store_memory_md(
    memory: Memory,
    ns: str,
    scope: str,
    body: str,
    plan: _Plan,
    run: ScopeRun,
    quota: Quota | None,
) -> MemoryRecord:
    content = _with_marker(body, _marker(ns, scope, "memory_md"))
    metadata = {
        "kind": "memory_md",
        "scope": scope,
        "watermark": run.watermark,
        "traces": run.traces,
        "trace_versions": plan.versions,
        "prompt_version": PROMPT_VERSION,
    }
    previous = plan.previous
    if previous is None:
        record = memory.remember(
            content,
            namespace=ns,
            session_id=None,
            tags=[MEMORY_MD_TAG],
            metadata=metadata,
            quota=quota,
        )
        if record.metadata.get("kind") != "memory_md" or record.metadata.get("scope") != scope:
            raise ConflictError(f"another memory has the same text as scope {scope!r}'s MEMORY.md")
    else:
        record = memory.update(
            previous.id, content=content, tags=[MEMORY_MD_TAG], metadata=metadata, namespace=ns
        )
    run.memory_md_id, run.memory_md_version = record.id, record.version
    return record


def _store_skills(
    memory: Memory,
    ns: str,
    scope: str,
    skills: dict[str, str],
    max_lines: int,
    max_bytes: int,
    quota: Quota | None,
) -> dict[str, MemoryRecord]:
    if not skills:
        return {}
    existing = {str(r.metadata.get("name")): r for r in _skills(memory, ns, scope)}
    out: dict[str, MemoryRecord] = {}
    for name, text in skills.items():
        marker = _marker(ns, scope, f"skill={name}")
        body = fit_lines(text, max_lines=max_lines - 1, max_bytes=max_bytes - len(marker) - 2)
        if not body.strip():
            continue
        content = _with_marker(body, marker)
        metadata = {"kind": "skill", "scope": scope, "name": name}
        old = existing.get(name)
        if old is None:
            record = memory.remember(
                content, namespace=ns, tags=[SKILL_TAG], metadata=metadata, quota=quota
            )
            if record.metadata != metadata:
                raise ConflictError(f"another memory has the same text as skill {name!r}")
        elif old.content != content:
            record = memory.update(old.id, content=content, namespace=ns)
        else:
            record = old
        out[name] = record
    return out


def _restore_files(
    memory: Memory, ns: str, scope: str, paths: ScopePaths, record: MemoryRecord, run: ScopeRun
) -> None:
    """Make the files match the database (after a failed file write, or a deleted file)."""
    run.memory_md_id, run.memory_md_version = record.id, record.version
    if _write_if_changed(paths.memory_md, record.content + "\n"):
        run.files.append(paths.memory_md)
    for skill in _skills(memory, ns, scope):
        name = skill_name(str(skill.metadata.get("name") or ""))
        if name and _write_if_changed(paths.skill(name), skill.content + "\n"):
            run.files.append(paths.skill(name))


__all__ = [
    "COMPACT_PROMPT_VERSION",
    "JOB_KIND",
    "MEMORY_MD_SCHEMA",
    "MEMORY_MD_TAG",
    "PROMPT_VERSION",
    "SKILL_TAG",
    "MemoryMdVersion",
    "ScopePaths",
    "ScopeRun",
    "consolidate_scope",
    "delete_trace",
    "fit_lines",
    "list_traces",
    "memory_md_diff",
    "memory_md_history",
    "memory_summary",
    "merge_near_duplicates",
    "normalize_line",
    "read_memory_md",
    "render_memory_summary",
    "reset_memory_md",
    "scope_paths",
    "skill_name",
    "strip_marker",
    "watermark",
]
