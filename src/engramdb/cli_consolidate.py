"""The consolidation commands of the ``engramdb`` command line: ``consolidate``, ``traces``,
``memory-md`` and ``memory-summary``, mirroring :mod:`engramdb.consolidate`, on a local store
or (``--url`` / ``ENGRAMDB_URL`` with a key) on a server, through the one adapter of
:mod:`engramdb.cli` (``_target``).

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
    ApiKeyOpt,
    AsJson,
    DataDir,
    EmbedderOpt,
    LLMOpt,
    Namespace,
    Url,
    _fail,
    _folding,
    _llm_spec,
    _local_only,
    _target,
    _transfer_progress,
    _usage,
    app,
    console,
    err_console,
)
from .errors import EngramError, InvalidInputError
from .types import DEFAULT_NAMESPACE, format_datetime

if TYPE_CHECKING:
    from rich.progress import TaskID

    from .client import Client
    from .consolidate import ConsolidationRun
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


class _Consolidation:
    """What the consolidation commands work on: a local store (the library's
    :mod:`engramdb.consolidate` over a ``Memory``), or a server (``Client``). Answers are the
    JSON shapes of the server API, so both print alike."""

    def __init__(
        self,
        data_dir: str,
        namespace: str,
        url: str | None,
        api_key: str | None,
        *,
        embedder: str = "none",
        llm: str | None = None,
        root: Path | None = None,
    ) -> None:
        if url is not None and root is not None:
            raise _usage("--root is where a local store writes its files: leave it out with --url")
        target = _target(data_dir, namespace, embedder, url, api_key, create=False, llm=llm)
        self.client: Client | None = None
        self.mem: Memory | None = None
        if url is not None:
            self.client = target  # type: ignore[assignment]
        else:
            self.mem = target  # type: ignore[assignment]
        self._root_opt = root

    @property
    def root(self) -> Path:
        from .consolidate import memory_root

        assert self.mem is not None
        return self._root_opt if self._root_opt is not None else memory_root(self.mem)

    def status(self, caps: CostCaps | None = None) -> dict[str, Any]:
        if self.client is not None:
            return self.client.consolidation_status()
        from .consolidate import consolidation_status

        assert self.mem is not None
        return consolidation_status(self.mem, caps=caps).to_dict()

    def enabled_scopes(self) -> list[str]:
        if self.client is not None:
            return [s["scope"] for s in self.status()["scopes"] if s["enabled"]]
        assert self.mem is not None
        return [s.scope for s in self.mem.store.scope_list(self.mem.namespace) if s.enabled]

    def traces(self, scope: str) -> list[dict[str, Any]]:
        if self.client is not None:
            return [{**t, "file": None} for t in self.client.traces(scope)]
        from .consolidate import list_traces

        assert self.mem is not None
        return [
            {
                "session_id": r.metadata.get("session_id"),
                "memory_id": r.id,
                "summary": r.metadata.get("summary"),
                "file": r.metadata.get("file"),
                "updated_at": format_datetime(r.updated_at),
            }
            for r in list_traces(self.mem, scope)
        ]

    def trace(self, scope: str, session_id: str) -> str | None:
        if self.client is not None:
            found = self.client.trace(scope, session_id)
            return None if found is None else str(found["content"])
        from .consolidate.traces import find_trace

        assert self.mem is not None
        record = find_trace(self.mem, session_id, scope=scope)
        return None if record is None else record.content

    def delete_trace(self, scope: str, session_id: str) -> bool:
        if self.client is not None:
            return self.client.delete_trace(scope, session_id)
        from .consolidate import delete_trace

        assert self.mem is not None
        return delete_trace(self.mem, root=self.root, scope=scope, session_id=session_id)

    def memory_md(self, scope: str) -> str | None:
        if self.client is not None:
            return self.client.memory_md(scope)
        from .consolidate import read_memory_md, strip_marker

        assert self.mem is not None
        record = read_memory_md(self.mem, scope)
        return None if record is None else strip_marker(record.content)

    def diff(self, scope: str, old: int | None, new: int | None) -> str:
        if self.client is not None:
            return self.client.memory_md_diff(scope, old=old, new=new)
        from .consolidate import memory_md_diff

        assert self.mem is not None
        return memory_md_diff(self.mem, scope, old=old, new=new)

    def history(self, scope: str) -> list[dict[str, Any]]:
        """``version``, ``content``, ``written_at`` (ISO text) of each version, newest first."""
        if self.client is not None:
            return self.client.memory_md_history(scope)
        from .consolidate import memory_md_history

        assert self.mem is not None
        return [
            {
                "version": v.version,
                "content": v.content,
                "written_at": format_datetime(v.written_at),
            }
            for v in memory_md_history(self.mem, scope)
        ]

    def reset(self, scope: str) -> bool:
        if self.client is not None:
            return self.client.reset_memory_md(scope)
        from .consolidate import reset_memory_md

        assert self.mem is not None
        return reset_memory_md(self.mem, root=self.root, scope=scope)

    def configure(self, scope: str, enabled: bool, prefix: str | None) -> dict[str, Any]:
        if self.client is not None:
            return self.client.configure_scope(scope, enabled=enabled, session_prefix=prefix)
        from .consolidate import configure_scope

        assert self.mem is not None
        s = configure_scope(self.mem, scope, enabled=enabled, session_prefix=prefix)
        return {"scope": s.scope, "enabled": s.enabled, "session_prefix": s.session_prefix}

    def summary(self, scope: str, budget_tokens: int) -> str:
        if self.client is not None:
            return self.client.memory_summary(scope, budget_tokens=budget_tokens)
        from .consolidate import memory_summary

        assert self.mem is not None
        return memory_summary(self.mem, scope, budget_tokens=budget_tokens)


def _spend(spend: dict[str, Any]) -> str:
    return (
        f"{spend['sessions']} session(s), {spend['llm_calls']} call(s), "
        f"{spend['input_tokens']:,} input + {spend['output_tokens']:,} output tokens"
    )


def _tokens(spend: dict[str, Any]) -> int:
    return int(spend["input_tokens"]) + int(spend["output_tokens"])


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


def _print_status(status: dict[str, Any]) -> None:
    run, day = status["caps"]["run"], status["caps"]["day"]
    where = f"namespace {status['namespace']!r}, " if "namespace" in status else ""
    console.print(
        Text(
            f"{where}{status['day']} (UTC): spent today "
            f"{_spend(status['spent_today'])}; caps per run {run['max_sessions']} sessions / "
            f"{run['max_input_tokens']} input tokens / {run['max_llm_calls']} calls, "
            f"per day {day['max_sessions']} / {day['max_input_tokens']} / "
            f"{day['max_llm_calls']}"
        )
    )
    # the scope folds onto more lines rather than being cut (a path is copied from here)
    table = Table(
        *_folding("scope", "on", "traces", "MEMORY.md", "last run", "today", "total", "open jobs")
    )
    for s in status["scopes"]:
        md = (
            f"v{s['memory_md_version']}, {s['memory_md_lines']} lines, {s['memory_md_bytes']:,} B"
            if s["memory_md_version"] is not None
            else "-"
        )
        jobs = "; ".join(
            f"{job['kind']} {job['key']}: {job['status']}"
            + (f" ({job['last_error']})" if job["last_error"] else "")
            for job in s["open_jobs"]
        )
        last = s["last_run_at"]
        table.add_row(
            Text(s["scope"]),
            "yes" if s["enabled"] else "no",
            str(s["traces"]),
            md,
            str(last)[:16].replace("T", " ") if last else "-",
            f"{s['spent_today']['llm_calls']} calls, {_tokens(s['spent_today']):,} tok",
            f"{s['spent_total']['llm_calls']} calls, {_tokens(s['spent_total']):,} tok",
            Text(jobs or "-"),
        )
    console.print(table)


def _print_run(run: dict[str, Any]) -> None:
    md = run["memory_md"]
    if run["dry_run"]:
        would = ", ".join(run["planned"]) or "none"
        console.print(
            Text(
                f"{run['scope']}: would summarize {len(run['planned'])} session(s) ({would}); "
                f"MEMORY.md: {md['status'] if md else '-'}; estimated input tokens "
                f"{run['estimated_input_tokens']:,}. Dry run: nothing sent, nothing written."
            )
        )
        return
    console.print(
        Text(
            f"{run['scope']}: {len(run['summarized'])} trace(s) written, "
            f"{len(run['failed'])} failed; MEMORY.md "
            f"{md['status'] if md else 'not run'}"
            + (f" (v{md['version']})" if md and md["version"] else "")
            + f"; spent {_spend(run['spent'])}"
        )
    )
    for sid, error in run["failed"].items():
        err_console.print(Text(f"  trace of {sid!r} failed: {error}"))
    if md is not None and md["error"]:
        err_console.print(Text(f"  MEMORY.md: {md['error']}"))
    if run["stopped"]:
        err_console.print(Text(f"  stopped: {run['stopped']}"))


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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Turn finished sessions into trace memories and each scope's traces into one MEMORY.md,
    under cost caps per run and per day. Prints the estimated cost first, then progress.
    With --url the server runs it, with its own model and caps."""
    from .consolidate import consolidate as run_scope

    cap_values = (
        max_sessions,
        max_input_tokens,
        max_llm_calls,
        day_max_sessions,
        day_max_input_tokens,
        day_max_llm_calls,
    )
    if url is not None:
        local = [name for name, v in (("cap options", any(v is not None for v in cap_values)),
                 ("--llm", llm), ("--current-session", current_session)) if v]  # fmt: skip
        if local:
            raise _usage(
                f"with --url the server's model and caps apply: leave out {', '.join(local)}"
            )
    caps = _caps(*cap_values)
    try:
        spec = None if (status or dry_run or url is not None) else _llm_spec(llm, True)
        work = _Consolidation(data_dir, namespace, url, api_key, llm=spec, root=root)
        if status:
            report = work.status(caps)
            if as_json:
                typer.echo(json.dumps(report, ensure_ascii=False))
            else:
                _print_status(report)
            return
        mem = work.mem
        if not dry_run and mem is not None and mem.llm is None:
            raise InvalidInputError(
                "no model: pass --llm openai:MODEL (or set ENGRAMDB_LLM / ENGRAMDB_LLM_MODEL)"
            )
        while True:
            scopes = scope or work.enabled_scopes()
            if not scopes:
                raise InvalidInputError(
                    "no scope: pass --scope, or enable one with `engramdb memory-md enable`"
                )
            for name in scopes:
                result = _run_scope(
                    work, run_scope, name, caps, idle_seconds, current_session, retry_failed,
                    dry_run=dry_run, as_json=as_json,
                )  # fmt: skip
                if as_json:
                    typer.echo(json.dumps(result, ensure_ascii=False))
                else:
                    _print_run(result)
            if once or dry_run:
                return
            time.sleep(every)
    except EngramError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


def _run_scope(
    work: _Consolidation,
    run_scope: Callable[..., ConsolidationRun],
    scope: str,
    caps: CostCaps,
    idle_seconds: float,
    current_session: str | None,
    retry_failed: bool,
    *,
    dry_run: bool,
    as_json: bool,
) -> dict[str, Any]:
    """One scope's run (or its estimate), as the JSON of ``POST /v1/consolidate``: the estimate
    on stderr first, then a progress bar per step (a local run; a server runs it in one
    request)."""
    if work.client is not None:
        if not dry_run and not as_json:
            estimate = work.client.consolidate(
                scope, dry_run=True, idle_seconds=idle_seconds, retry_failed=retry_failed
            )
            _print_estimate(scope, estimate)
        return work.client.consolidate(
            scope, dry_run=dry_run, idle_seconds=idle_seconds, retry_failed=retry_failed
        )
    mem = work.mem
    assert mem is not None
    kw: dict[str, Any] = {
        "scope": scope,
        "root": work.root,
        "caps": caps,
        "idle_seconds": idle_seconds,
        "current_session": current_session,
    }
    if retry_failed:
        kw["retry_failed"] = True
    if dry_run:
        return run_scope(mem, mem.llm, dry_run=True, **kw).to_dict()
    if as_json:
        return run_scope(mem, mem.llm, **kw).to_dict()
    _print_estimate(scope, run_scope(mem, mem.llm, dry_run=True, **kw).to_dict())
    return _run_with_progress(run_scope, mem, kw).to_dict()


def _print_estimate(scope: str, estimate: dict[str, Any]) -> None:
    err_console.print(
        Text(
            f"{scope}: {len(estimate['planned'])} session(s) to summarize, "
            f"~{estimate['estimated_input_tokens']:,} input tokens"
        )
    )


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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """The scope's traces, newest first."""
    try:
        rows = _Consolidation(data_dir, namespace, url, api_key).traces(scope)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(
        *_folding("session"), "updated", *_folding("summary", "file"),
        title=Text(f"traces of {scope!r}"),
    )  # fmt: skip
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Print one session's trace (exit code 1 if it has none)."""
    try:
        content = _Consolidation(data_dir, namespace, url, api_key).trace(scope, session_id)
        if content is None:
            raise InvalidInputError(f"session {session_id!r} has no trace in scope {scope!r}")
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(content)


@traces_app.command("delete")
def traces_delete(
    session_id: Annotated[str, typer.Argument(help="The session whose trace to delete.")],
    scope: ScopeOpt,
    root: RootOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Forget one session's trace: its memory, history and file."""
    try:
        work = _Consolidation(data_dir, namespace, url, api_key, root=root)
        done = work.delete_trace(scope, session_id)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(Text(f"deleted the trace of {session_id!r}" if done else "no such trace"))


# -- MEMORY.md -------------------------------------------------------------------------------
@memory_md_app.command("show")
def memory_md_show(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Print the scope's MEMORY.md (exit code 1 until consolidation produced it)."""
    try:
        content = _Consolidation(data_dir, namespace, url, api_key).memory_md(scope)
    except EngramError as exc:
        raise _fail(exc) from None
    if content is None:
        err_console.print(Text(f"scope {scope!r} has no MEMORY.md yet (engramdb consolidate)"))
        raise typer.Exit(code=1)
    typer.echo(content)


@memory_md_app.command("diff")
def memory_md_diff_cmd(
    scope: ScopeOpt,
    old: Annotated[int | None, typer.Option(min=1, help="From this version.")] = None,
    new: Annotated[int | None, typer.Option(min=1, help="To this version.")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """A unified diff of the scope's MEMORY.md (default: the last change)."""
    try:
        text = _Consolidation(data_dir, namespace, url, api_key).diff(scope, old, new)
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(text, nl=False)


@memory_md_app.command("history")
def memory_md_history_cmd(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Every version of the scope's MEMORY.md, newest first."""
    try:
        versions = _Consolidation(data_dir, namespace, url, api_key).history(scope)
    except EngramError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "version": v["version"],
            "written_at": v["written_at"],
            "lines": len(v["content"].splitlines()),
            "bytes": len(v["content"].encode("utf-8")),
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Forget this scope's MEMORY.md and skills (memories, history, files). Its traces and
    every other scope stay."""
    if not yes:
        typer.confirm(f"Forget the MEMORY.md of {scope!r} and its history?", abort=True)
    try:
        done = _Consolidation(data_dir, namespace, url, api_key, root=root).reset(scope)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(Text(f"reset {scope!r}" if done else f"{scope!r} had no MEMORY.md"))


@memory_md_app.command("path")
def memory_md_path(
    scope: ScopeOpt,
    root: RootOpt = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Print the path of the scope's MEMORY.md file, for agents that read AGENTS.md-style
    files (link it into the project, or point the agent at it). A local store only: a
    server's files are on the server (`memory-md show` prints the text from anywhere)."""
    _local_only(url, "memory-md path")
    from .consolidate import scope_paths

    try:
        work = _Consolidation(data_dir, namespace, None, None, root=root)
        assert work.mem is not None
        path = scope_paths(work.root, work.mem.namespace, scope).memory_md
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(str(path.resolve()))


def _set_enabled(
    scope: str,
    data_dir: str,
    namespace: str,
    on: bool,
    prefix: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    try:
        settings = _Consolidation(data_dir, namespace, url, api_key).configure(scope, on, prefix)
    except EngramError as exc:
        raise _fail(exc) from None
    where = (
        f", sessions starting with {settings['session_prefix']!r}"
        if settings["session_prefix"]
        else ""
    )
    console.print(Text(f"{scope!r}: consolidation {'on' if settings['enabled'] else 'off'}{where}"))


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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Opt the scope in: `engramdb consolidate` (and the server's schedule) run it."""
    _set_enabled(scope, data_dir, namespace, True, session_prefix, url, api_key)


@memory_md_app.command("disable")
def memory_md_disable(
    scope: ScopeOpt,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Opt the scope out: nothing runs for it and no model is called, until enabled again."""
    _set_enabled(scope, data_dir, namespace, False, None, url, api_key)


@app.command("memory-summary")
def memory_summary_cmd(
    scope: ScopeOpt,
    budget_tokens: Annotated[int, typer.Option(min=1, help="Size limit, in tokens.")] = 500,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    embedder: EmbedderOpt = "none",
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Print the scope's routing map (one line per trace, newest first) trimmed to
    --budget-tokens, to put into an agent's instructions."""
    try:
        work = _Consolidation(data_dir, namespace, url, api_key, embedder=embedder)
        text = work.summary(scope, budget_tokens)
    except EngramError as exc:
        raise _fail(exc) from None
    typer.echo(text)
