"""The consolidation commands of the ``engramdb`` command line: ``consolidate``, ``traces``,
``memory-md`` and ``memory-summary``, mirroring :mod:`engramdb.consolidate`.

Registered on :data:`engramdb.cli.app` when that module loads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from .cli import (
    AsJson,
    DataDir,
    EmbedderOpt,
    LLMOpt,
    Namespace,
    _fail,
    _llm_spec,
    _memory,
    _transfer_progress,
    app,
    console,
    err_console,
)
from .errors import EngramError, InvalidInputError
from .types import DEFAULT_NAMESPACE, Spend, format_datetime

if TYPE_CHECKING:
    from rich.progress import TaskID

    from .consolidate import ConsolidationRun, ConsolidationStatus
    from .consolidate.budget import CostCaps
    from .memory import Memory

traces_app = typer.Typer(
    help="List, show and delete a scope's trace memories.", no_args_is_help=True
)
memory_md_app = typer.Typer(
    help="Show, diff, reset a scope's MEMORY.md; opt a scope in or out.", no_args_is_help=True
)
app.add_typer(traces_app, name="traces")
app.add_typer(memory_md_app, name="memory-md")

ScopeOpt = Annotated[str, typer.Option("--scope", "-s", help="The scope (e.g. a project path).")]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="ENGRAMDB_MEMORY_ROOT",
        help="Where MEMORY.md and trace files go (default: memories/ beside the store).",
    ),
]


def _open(data_dir: str, namespace: str, embedder: str = "none", llm: str | None = None) -> Memory:
    return _memory(data_dir, namespace, embedder, create=False, llm=llm)


def _root(memory: Memory, root: Path | None) -> Path:
    from .consolidate import memory_root

    return root if root is not None else memory_root(memory)


def _spend(spend: Spend) -> str:
    return (
        f"{spend.sessions} session(s), {spend.llm_calls} call(s), "
        f"{spend.input_tokens:,} input + {spend.output_tokens:,} output tokens"
    )


def _caps(
    max_sessions: int | None,
    max_input_tokens: int | None,
    max_llm_calls: int | None,
    day_max_sessions: int | None,
    day_max_input_tokens: int | None,
    day_max_llm_calls: int | None,
) -> CostCaps:
    from .consolidate.budget import Caps, CostCaps

    default = CostCaps()

    def pick(value: int | None, fallback: int | None) -> int | None:
        return fallback if value is None else value

    return CostCaps(
        run=Caps(
            pick(max_sessions, default.run.max_sessions),
            pick(max_input_tokens, default.run.max_input_tokens),
            pick(max_llm_calls, default.run.max_llm_calls),
        ),
        day=Caps(
            pick(day_max_sessions, default.day.max_sessions),
            pick(day_max_input_tokens, default.day.max_input_tokens),
            pick(day_max_llm_calls, default.day.max_llm_calls),
        ),
    )


def _print_status(status: ConsolidationStatus) -> None:
    caps = status.caps
    console.print(
        Text(
            f"namespace {status.namespace!r}, {status.day} (UTC): spent today "
            f"{_spend(status.spent_today)}; caps per run {caps.run.max_sessions} sessions / "
            f"{caps.run.max_input_tokens} input tokens / {caps.run.max_llm_calls} calls, "
            f"per day {caps.day.max_sessions} / {caps.day.max_input_tokens} / "
            f"{caps.day.max_llm_calls}"
        )
    )
    table = Table("scope", "on", "traces", "MEMORY.md", "last run", "today", "total", "open jobs")
    for s in status.scopes:
        md = (
            f"v{s.memory_md_version}, {s.memory_md_lines} lines, {s.memory_md_bytes:,} B"
            if s.memory_md_version is not None
            else "-"
        )
        jobs = "; ".join(
            f"{job.kind} {job.job_key.split(chr(10), 1)[-1]}: {job.status}"
            + (f" ({job.last_error})" if job.last_error else "")
            for job in s.open_jobs
        )
        table.add_row(
            Text(s.scope),
            "yes" if s.enabled else "no",
            str(s.traces),
            md,
            s.last_run_at.strftime("%Y-%m-%d %H:%M") if s.last_run_at else "-",
            f"{s.spent_today.llm_calls} calls, {s.spent_today.tokens:,} tok",
            f"{s.spent_total.llm_calls} calls, {s.spent_total.tokens:,} tok",
            Text(jobs or "-"),
        )
    console.print(table)


def _print_run(run: ConsolidationRun) -> None:
    if run.dry_run:
        would = ", ".join(run.traces.planned) or "none"
        md = run.memory_md
        console.print(
            Text(
                f"{run.scope}: would summarize {len(run.traces.planned)} session(s) ({would}); "
                f"MEMORY.md: {md.status if md else '-'}; estimated input tokens "
                f"{run.estimated_input_tokens:,}. Dry run: nothing sent, nothing written."
            )
        )
        return
    md = run.memory_md
    console.print(
        Text(
            f"{run.scope}: {len(run.traces.summarized)} trace(s) written, "
            f"{len(run.traces.failed)} failed; MEMORY.md "
            f"{md.status if md else 'not run'}"
            + (f" (v{md.memory_md_version})" if md and md.memory_md_version else "")
            + f"; spent {_spend(run.spent)}"
        )
    )
    for sid, error in run.traces.failed.items():
        err_console.print(Text(f"  trace of {sid!r} failed: {error}"))
    if md is not None and md.error:
        err_console.print(Text(f"  MEMORY.md: {md.error}"))
    if run.stopped:
        err_console.print(Text(f"  stopped: {run.stopped}"))


@app.command()
def consolidate(
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", "-s", help="A scope to consolidate (repeatable; default: every enabled one)."
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run once and exit (default: every --every seconds).")
    ] = False,
    every: Annotated[float, typer.Option("--every", min=1, help="Seconds between runs.")] = 600,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would run and its cost; send nothing.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show each scope's state and spend; run nothing.")
    ] = False,
    idle_seconds: Annotated[
        float, typer.Option(min=0, help="A session is finished after this long without items.")
    ] = 3600,
    current_session: Annotated[
        str | None, typer.Option("--current-session", help="A session never to summarize.")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Give failed jobs a fresh retry budget.")
    ] = False,
    max_sessions: Annotated[int | None, typer.Option(min=0, help="Run cap: sessions.")] = None,
    max_input_tokens: Annotated[
        int | None, typer.Option(min=0, help="Run cap: input tokens.")
    ] = None,
    max_llm_calls: Annotated[int | None, typer.Option(min=0, help="Run cap: model calls.")] = None,
    day_max_sessions: Annotated[int | None, typer.Option(min=0, help="Day cap: sessions.")] = None,
    day_max_input_tokens: Annotated[
        int | None, typer.Option(min=0, help="Day cap: input tokens.")
    ] = None,
    day_max_llm_calls: Annotated[
        int | None, typer.Option(min=0, help="Day cap: model calls.")
    ] = None,
    root: RootOpt = None,
    llm: LLMOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """Turn finished sessions into trace memories and each scope's traces into one MEMORY.md,
    under cost caps per run and per day. Prints the estimated cost first, then progress."""
    from .consolidate import consolidate as run_scope
    from .consolidate import consolidation_status

    caps = _caps(
        max_sessions,
        max_input_tokens,
        max_llm_calls,
        day_max_sessions,
        day_max_input_tokens,
        day_max_llm_calls,
    )
    try:
        spec = None if (status or dry_run) else _llm_spec(llm, True)
        mem = _open(data_dir, namespace, llm=spec)
        if status:
            report = consolidation_status(mem, caps=caps)
            if as_json:
                typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
            else:
                _print_status(report)
            return
        if not dry_run and mem.llm is None:
            raise InvalidInputError(
                "no model: pass --llm openai:MODEL (or set ENGRAMDB_LLM / ENGRAMDB_LLM_MODEL)"
            )
        while True:
            scopes = scope or [s.scope for s in mem.store.scope_list(mem.namespace) if s.enabled]
            if not scopes:
                raise InvalidInputError(
                    "no scope: pass --scope, or enable one with `engramdb memory-md enable`"
                )
            for name in scopes:
                kw: dict[str, Any] = {
                    "scope": name,
                    "root": _root(mem, root),
                    "caps": caps,
                    "idle_seconds": idle_seconds,
                    "current_session": current_session,
                }
                if retry_failed:
                    kw["retry_failed"] = True
                estimate = run_scope(mem, mem.llm, dry_run=True, **kw)  # type: ignore[arg-type]
                if dry_run or as_json:
                    result = estimate if dry_run else run_scope(mem, mem.llm, **kw)  # type: ignore[arg-type]
                    if as_json:
                        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
                    else:
                        _print_run(result)
                    continue
                err_console.print(
                    Text(
                        f"{name}: {len(estimate.traces.planned)} session(s) to summarize, "
                        f"~{estimate.estimated_input_tokens:,} input tokens"
                    )
                )
                result = _run_with_progress(run_scope, mem, kw)
                _print_run(result)
            if once or dry_run:
                return
            time.sleep(every)
    except EngramError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


def _run_with_progress(
    run_scope: Callable[..., ConsolidationRun], mem: Memory, kw: dict[str, Any]
) -> ConsolidationRun:
    """One scope's run with a progress bar per step (rate and time left)."""
    with _transfer_progress("sessions") as progress:
        tasks: dict[str, TaskID] = {}

        def show(step: str, done: int, total: int) -> None:
            if step not in tasks:
                label = "traces" if step == "traces" else "MEMORY.md"
                tasks[step] = progress.add_task(label, total=total)
            progress.update(tasks[step], completed=done, total=total)

        return run_scope(mem, mem.llm, progress=show, **kw)


# -- traces ----------------------------------------------------------------------------------
@traces_app.command("list")
def traces_list(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """The scope's traces, newest first."""
    from .consolidate import list_traces

    try:
        found = list_traces(_open(data_dir, namespace), scope)
    except EngramError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "session_id": r.metadata.get("session_id"),
            "memory_id": r.id,
            "summary": r.metadata.get("summary"),
            "file": r.metadata.get("file"),
            "updated_at": format_datetime(r.updated_at),
        }
        for r in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("session", "updated", "summary", "file", title=Text(f"traces of {scope!r}"))
    for row in rows:
        table.add_row(
            Text(str(row["session_id"])),
            str(row["updated_at"])[:16],
            Text(str(row["summary"] or "")),
            Text(str(row["file"] or "")),
        )
    console.print(table)


@traces_app.command("show")
def traces_show(
    session_id: Annotated[str, typer.Argument(help="The session whose trace to show.")],
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Print one session's trace."""
    from .consolidate.traces import find_trace

    try:
        record = find_trace(_open(data_dir, namespace), session_id, scope=scope)
        if record is None:
            raise InvalidInputError(f"session {session_id!r} has no trace in scope {scope!r}")
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(record.content)


@traces_app.command("delete")
def traces_delete(
    session_id: Annotated[str, typer.Argument(help="The session whose trace to delete.")],
    scope: ScopeOpt,
    root: RootOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Forget one session's trace: its memory, history and file."""
    from .consolidate import delete_trace

    try:
        mem = _open(data_dir, namespace)
        done = delete_trace(mem, root=_root(mem, root), scope=scope, session_id=session_id)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(Text(f"deleted the trace of {session_id!r}" if done else "no such trace"))


# -- MEMORY.md -------------------------------------------------------------------------------
@memory_md_app.command("show")
def memory_md_show(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Print the scope's MEMORY.md."""
    from .consolidate import read_memory_md, strip_marker

    try:
        record = read_memory_md(_open(data_dir, namespace), scope)
    except EngramError as exc:
        raise _fail(exc) from None
    if record is None:
        err_console.print(Text(f"scope {scope!r} has no MEMORY.md yet (engramdb consolidate)"))
        raise typer.Exit(code=1)
    typer.echo(strip_marker(record.content))


@memory_md_app.command("diff")
def memory_md_diff_cmd(
    scope: ScopeOpt,
    old: Annotated[int | None, typer.Option(min=1, help="From this version.")] = None,
    new: Annotated[int | None, typer.Option(min=1, help="To this version.")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """A unified diff of the scope's MEMORY.md (default: the last change)."""
    from .consolidate import memory_md_diff

    try:
        text = memory_md_diff(_open(data_dir, namespace), scope, old=old, new=new)
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(text, nl=False)


@memory_md_app.command("history")
def memory_md_history_cmd(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """Every version of the scope's MEMORY.md, newest first."""
    from .consolidate import memory_md_history

    try:
        versions = memory_md_history(_open(data_dir, namespace), scope)
    except EngramError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "version": v.version,
            "written_at": format_datetime(v.written_at),
            "lines": len(v.content.splitlines()),
            "bytes": len(v.content.encode("utf-8")),
        }
        for v in versions
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("version", "written", "lines", "bytes", title=Text(f"MEMORY.md of {scope!r}"))
    for row in rows:
        table.add_row(
            str(row["version"]),
            str(row["written_at"])[:19],
            str(row["lines"]),
            f"{row['bytes']:,}",
        )
    console.print(table)


@memory_md_app.command("reset")
def memory_md_reset(
    scope: ScopeOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    root: RootOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Forget this scope's MEMORY.md and skills (memories, history, files). Its traces and
    every other scope stay."""
    from .consolidate import reset_memory_md

    if not yes:
        typer.confirm(f"Forget the MEMORY.md of {scope!r} and its history?", abort=True)
    try:
        mem = _open(data_dir, namespace)
        done = reset_memory_md(mem, root=_root(mem, root), scope=scope)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(Text(f"reset {scope!r}" if done else f"{scope!r} had no MEMORY.md"))


@memory_md_app.command("path")
def memory_md_path(
    scope: ScopeOpt,
    root: RootOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Print the path of the scope's MEMORY.md file, for agents that read AGENTS.md-style
    files (link it into the project, or point the agent at it)."""
    from .consolidate import scope_paths

    try:
        mem = _open(data_dir, namespace)
        path = scope_paths(_root(mem, root), mem.namespace, scope).memory_md
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(str(path.resolve()))


def _set_enabled(scope: str, data_dir: str, namespace: str, on: bool, prefix: str | None) -> None:
    from .consolidate import configure_scope

    try:
        settings = configure_scope(
            _open(data_dir, namespace), scope, enabled=on, session_prefix=prefix
        )
    except EngramError as exc:
        raise _fail(exc) from None
    where = (
        f", sessions starting with {settings.session_prefix!r}" if settings.session_prefix else ""
    )
    console.print(Text(f"{scope!r}: consolidation {'on' if settings.enabled else 'off'}{where}"))


PrefixOpt = Annotated[
    str | None,
    typer.Option("--session-prefix", help="Only sessions whose id starts with this."),
]


@memory_md_app.command("enable")
def memory_md_enable(
    scope: ScopeOpt,
    session_prefix: PrefixOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Opt the scope in: `engramdb consolidate` (and the server's schedule) run it."""
    _set_enabled(scope, data_dir, namespace, True, session_prefix)


@memory_md_app.command("disable")
def memory_md_disable(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Opt the scope out: nothing runs for it and no model is called, until enabled again."""
    _set_enabled(scope, data_dir, namespace, False, None)


@app.command("memory-summary")
def memory_summary_cmd(
    scope: ScopeOpt,
    budget_tokens: Annotated[int, typer.Option(min=1, help="Size limit, in tokens.")] = 500,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    embedder: EmbedderOpt = "none",
) -> None:
    """Print the scope's routing map (one line per trace, newest first) trimmed to
    --budget-tokens, to put into an agent's instructions."""
    from .consolidate import memory_summary

    try:
        text = memory_summary(
            _open(data_dir, namespace, embedder), scope, budget_tokens=budget_tokens
        )
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(text)
