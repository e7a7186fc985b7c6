"""The ``engramdb`` command line: a thin layer over the library, mirroring its API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from . import __version__
from .errors import EngramError, InvalidInputError
from .sessions import Session, list_sessions
from .store import Store, open_store
from .types import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from rich.progress import Progress

    from .manager.pipeline import ExtractionReport
    from .memory import ForgetResult, Memory

# Heavy modules (the memory facade with numpy and the search stack, export/import, rich's
# progress bars) are imported by the commands that use them, so `engramdb --help` and the
# session commands start fast.

# rich_markup_mode=None: plain help text. Typer's rich help imports rich's markdown and syntax
# highlighting (hundreds of milliseconds), more than the rest of the command line together.
app = typer.Typer(
    help="engramdb: persistent memory for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
sessions_app = typer.Typer(
    help="Inspect and clear conversation sessions.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(sessions_app, name="sessions")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    str,
    typer.Option(
        "--data-dir",
        "-d",
        "--store",
        envvar="ENGRAMDB_DATA_DIR",
        help="Data directory, or a store URL (sqlite:///file.db, postgresql://...).",
    ),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open_existing(data_dir: str) -> Store:
    return _closing(open_store(data_dir, create=False))


_opened: list[Store] = []


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.call_on_close(_close_opened)


def _close_opened() -> None:
    while _opened:
        _opened.pop().close()


def _closing(store: Store) -> Store:
    """Close the store when the command finishes (pools and connections do not linger)."""
    _opened.append(store)
    return store


def _fail(exc: EngramError) -> typer.Exit:
    # the message may quote user text (ids, content): printed literally, never as markup
    err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the engramdb version."""
    console.print(__version__)


@sessions_app.command("list")
def sessions_list(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    limit: Annotated[int, typer.Option(help="At most this many sessions.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List sessions, most recently updated first."""
    try:
        infos = list_sessions(_open_existing(data_dir), namespace=namespace, limit=limit)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [
            {
                "session_id": i.session_id,
                "item_count": i.item_count,
                "created_at": i.created_at.isoformat(),
                "updated_at": i.updated_at.isoformat(),
            }
            for i in infos
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("session_id", "items", "created", "updated", title=f"sessions in {namespace!r}")
    for i in infos:
        table.add_row(
            i.session_id,
            str(i.item_count),
            i.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            i.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: str,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    limit: Annotated[int | None, typer.Option(help="Only the last N items.")] = None,
    as_json: AsJson = False,
) -> None:
    """Show a session's items, oldest first."""
    try:
        items = Session(session_id, _open_existing(data_dir), namespace=namespace).get_items(limit)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(items, ensure_ascii=False))
        return
    table = Table("#", "type/role", "content", title=f"session {session_id!r}")
    for n, item in enumerate(items, 1):
        table.add_row(str(n), _kind(item), _preview(item))
    console.print(table)


@sessions_app.command("clear")
def sessions_clear(
    session_id: str,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every item of a session."""
    try:
        session = Session(session_id, _open_existing(data_dir), namespace=namespace)
        info = session.info()
        if info is None:
            err_console.print(f"[bold red]error:[/] no session {session_id!r} in {namespace!r}")
            raise typer.Exit(code=1)
        if not yes:
            typer.confirm(f"Remove {info.item_count} items from {session_id!r}?", abort=True)
        session.clear_session()
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(f"cleared {info.item_count} items from {session_id!r}")


EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        envvar="ENGRAMDB_EMBEDDER",
        help="auto, local, none, hashing[:DIM], openai:MODEL or st:MODEL.",
    ),
]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="user_id scope.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="agent_id scope.")]
SessionOpt = Annotated[str | None, typer.Option("--session", help="session_id scope.")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag (repeatable).")]


def _memory(data_dir: str, namespace: str, embedder: str, *, create: bool = True) -> Memory:
    from .memory import Memory

    store = _closing(open_store(data_dir, create=create))
    return Memory(store, namespace=namespace, embedder=embedder)


def _filters(
    user: str | None, agent: str | None, session: str | None, tags: list[str] | None
) -> dict[str, Any]:
    flt: dict[str, Any] = {"user_id": user, "agent_id": agent, "session_id": session}
    if tags:
        flt["tags"] = tags
    return {k: v for k, v in flt.items() if v is not None}


@app.command()
def remember(
    content: Annotated[str, typer.Argument(help="The text to remember.")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    tag: TagOpt = None,
    importance: Annotated[float, typer.Option(help="0 to 1.")] = 0.5,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
) -> None:
    """Store a memory."""
    try:
        record = _memory(data_dir, namespace, embedder).remember(
            content,
            user_id=user,
            agent_id=agent,
            session_id=session,
            tags=tag or (),
            importance=importance,
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(record.to_dict(), ensure_ascii=False))
    else:
        console.print(f"remembered [bold]{record.id}[/]")


@app.command()
def recall(
    query: Annotated[str, typer.Argument(help="What to look for (any text).")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    tag: TagOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-k", help="How many hits.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, text or vector.")] = "hybrid",
    explain: Annotated[bool, typer.Option(help="Show each lane's rank.")] = False,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
) -> None:
    """Search memories (full text + vectors, fused)."""
    try:
        hits = _memory(data_dir, namespace, embedder, create=False).recall(
            query,
            filters=_filters(user, agent, session, tag),
            limit=limit,
            mode=mode,  # type: ignore[arg-type]
            explain=explain,
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [
            {**h.memory.to_dict(), "score": h.score, **({"explain": h.explain} if explain else {})}
            for h in hits
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("#", "score", "content", "tags", "id", title=f"recall {query!r}")
    for n, h in enumerate(hits, 1):
        table.add_row(
            str(n), f"{h.score:.4f}", h.memory.content, ", ".join(h.memory.tags), h.memory.id
        )
        if explain and h.explain:
            lanes = "  ".join(f"{name}#{v['rank']}" for name, v in h.explain["lanes"].items())
            table.add_row("", "", f"[dim]{lanes}[/]", "", "")
    console.print(table)


Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List, do not remove.")]


def _confirm_then(
    preview: ForgetResult, what: str, yes: bool, run: Callable[[], ForgetResult]
) -> ForgetResult:
    """Show how many a scoped forget would remove and remove them once confirmed (``--yes``
    confirms in advance). Nothing matching: nothing to ask."""
    if preview.count == 0:
        from .memory import ForgetResult

        return ForgetResult([], False)
    if not yes:
        console.print(f"would remove {preview.count} {what}")
        typer.confirm(f"Remove these {preview.count} {what}?", abort=True)
    return run()


def _print_forget(result: ForgetResult, what: str) -> None:
    verb = "would remove" if result.dry_run else "removed"
    console.print(f"{verb} {result.count} {what}")
    for item_id in result.ids:
        console.print(f"  {item_id}")


@app.command()
def forget(
    memory_id: Annotated[str | None, typer.Argument(help="A memory id.")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    tag: TagOpt = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601: happened at or after.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601: happened before.")] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="The whole namespace (within --since/--until) on purpose."),
    ] = False,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Remove a memory by id, or every memory in a scope (--user/--agent/--session/--tag;
    --since/--until only narrow a scope, or --all). A scoped forget shows how many memories
    would go and asks first (--yes skips the question)."""
    flt: dict[str, Any] = _filters(user, agent, session, tag)
    flt.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
    try:
        mem = _memory(data_dir, namespace, "none", create=False)
        if memory_id is not None:
            if flt or all_:
                raise InvalidInputError("pass either a memory id or a scope, not both")
            result = mem.forget(memory_id, dry_run=dry_run)
        else:
            preview = mem.forget(filters=flt, all=all_, dry_run=True)
            result = (
                preview
                if dry_run
                else _confirm_then(
                    preview, "memories", yes, lambda: mem.forget(filters=flt, all=all_)
                )
            )
    except EngramError as exc:
        raise _fail(exc) from None
    _print_forget(result, "memories")


@app.command("forget-fact")
def forget_fact(
    fact_id: Annotated[str | None, typer.Argument(help="A fact id.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", "-s")] = None,
    predicate: Annotated[str | None, typer.Option("--predicate", "-p")] = None,
    object: Annotated[str | None, typer.Option("--object", "-o")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Remove a fact by id, or every fact (current and superseded) matching a pattern
    (-s/-p/-o), with the memories that made them searchable. A pattern shows how many facts
    would go and asks first (--yes skips the question)."""
    pattern = (subject, predicate, object)
    try:
        mem = _memory(data_dir, namespace, "none", create=False)
        if fact_id is not None:
            if any(part is not None for part in pattern) or dry_run:
                raise InvalidInputError(
                    "pass either a fact id or a pattern (--dry-run needs a pattern)"
                )
            result = mem.forget_fact(fact_id)
        else:
            preview = mem.forget_facts(*pattern, dry_run=True)
            result = (
                preview
                if dry_run
                else _confirm_then(preview, "facts", yes, lambda: mem.forget_facts(*pattern))
            )
    except EngramError as exc:
        raise _fail(exc) from None
    _print_forget(result, "facts")


@app.command()
def learn(
    subject: str,
    predicate: str,
    object: str,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    confidence: Annotated[float, typer.Option(help="0 to 1.")] = 1.0,
    source: Annotated[str | None, typer.Option(help="Where the fact came from.")] = None,
    single: Annotated[
        bool, typer.Option("--single", help="Single-valued: supersede the current object.")
    ] = False,
    embedder: EmbedderOpt = "auto",
) -> None:
    """Store a knowledge triple."""
    try:
        fact = _memory(data_dir, namespace, embedder).learn(
            subject, predicate, object, confidence=confidence, source=source, single_valued=single
        )
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(f"learned {fact.id}: {fact.subject} {fact.predicate} {fact.object}")


@app.command()
def facts(
    subject: Annotated[str | None, typer.Option("--subject", "-s")] = None,
    predicate: Annotated[str | None, typer.Option("--predicate", "-p")] = None,
    object: Annotated[str | None, typer.Option("--object", "-o")] = None,
    as_of: Annotated[str | None, typer.Option(help="ISO 8601 date/time.")] = None,
    history: Annotated[bool, typer.Option(help="Include superseded facts.")] = False,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """Query knowledge triples."""
    try:
        found = _memory(data_dir, namespace, "none", create=False).facts(
            subject, predicate, object, as_of=as_of, include_history=history
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in found], ensure_ascii=False))
        return
    table = Table("subject", "predicate", "object", "confidence", "valid from", "valid to")
    for f in found:
        table.add_row(
            f.subject,
            f.predicate,
            f.object,
            f"{f.confidence:g}",
            f.valid_from.isoformat(timespec="seconds"),
            f.valid_to.isoformat(timespec="seconds") if f.valid_to else "",
        )
    console.print(table)


@app.command()
def stats(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """Counts for a namespace."""
    try:
        s = _memory(data_dir, namespace, "none", create=False).stats()
    except EngramError as exc:
        raise _fail(exc) from None
    values = {
        "memories": s.memories,
        "embedded": s.embedded,
        "triples": s.triples,
        "current_triples": s.current_triples,
        "sessions": s.sessions,
        "session_items": s.session_items,
    }
    if as_json:
        typer.echo(json.dumps(values))
        return
    table = Table("what", "count", title=f"namespace {namespace!r}")
    for name, value in values.items():
        table.add_row(name, f"{value:,}")
    console.print(table)


# -- the memory manager: extract a session, explain a memory ---------------------------------
LLMOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        envvar="ENGRAMDB_LLM",
        help="openai:MODEL (any OpenAI-compatible endpoint: ENGRAMDB_LLM_BASE_URL, "
        "ENGRAMDB_LLM_API_KEY). Default: openai with ENGRAMDB_LLM_MODEL when that is set.",
    ),
]


def _llm_spec(llm: str | None, infer: bool) -> str | None:
    """The model ``engramdb extract`` uses: ``--llm`` / ``$ENGRAMDB_LLM``, else the
    OpenAI-compatible provider when ``$ENGRAMDB_LLM_MODEL`` names a model; none without
    ``infer`` (``Memory.extract`` then says what is missing)."""
    if not infer:
        return None
    if llm:
        return llm
    return "openai" if os.environ.get("ENGRAMDB_LLM_MODEL") else None


def _seqs(seqs: Sequence[int]) -> str:
    return ", ".join(f"#{seq}" for seq in seqs)


def _report_dict(report: ExtractionReport) -> dict[str, Any]:
    """An extraction report as JSON: per window its items, model, tokens, candidates (with the
    decision each got and the memory it produced) and rejected candidates."""
    windows = []
    for window in report.windows:
        applied = {id(a.decision): a.memory_id for a in window.applied}
        usage = window.extraction.usage
        windows.append(
            {
                "seqs": list(window.extraction.seqs),
                "model": window.extraction.model,
                "prompt_version": window.extraction.prompt_version,
                "tokens": {
                    "prompt": usage.prompt_tokens,
                    "completion": usage.completion_tokens,
                    "total": usage.total_tokens,
                },
                "decisions": [
                    {**d.to_dict(), "memory_id": applied.get(id(d))} for d in window.decisions
                ],
                "rejected": [
                    {"reason": r.reason, "content": r.content} for r in window.extraction.rejected
                ],
            }
        )
    return {
        "session_id": report.session_id,
        "dry_run": report.dry_run,
        "tokens": report.tokens,
        "windows": windows,
    }


@app.command()
def extract(
    session_id: Annotated[str, typer.Option("--session", help="The session to extract from.")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    user: UserOpt = None,
    agent: AgentOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show candidates and decisions; write nothing."),
    ] = False,
    infer: Annotated[
        bool,
        typer.Option("--infer/--no-infer", help="--no-infer stores each message as said."),
    ] = True,
    llm: LLMOpt = None,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
) -> None:
    """Turn a session's new items (past its high-water mark) into memories: each candidate
    the model extracts, with the decision it got (add / update / delete / none) and why."""
    from .memory import Memory

    try:
        store = _closing(open_store(data_dir, create=False))
        mem = Memory(store, namespace=namespace, embedder=embedder, llm=_llm_spec(llm, infer))
        report = mem.extract(session_id, user_id=user, agent_id=agent, infer=infer, dry_run=dry_run)
    except EngramError as exc:
        raise _fail(exc) from None
    data = _report_dict(report)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    table = Table(
        *_folding(
            "type", "candidate", "when", "items", "action", "memory", "new content", "reason"
        ),
        title=Text(f"extract {session_id!r}" + (" (dry run)" if dry_run else "")),
    )
    counts: dict[str, int] = {}
    for window in data["windows"]:
        for d in window["decisions"]:
            counts[d["action"]] = counts.get(d["action"], 0) + 1
            candidate = d["candidate"]
            table.add_row(
                Text(candidate["type"]),
                Text(candidate["content"]),
                Text(candidate["occurred_at"] or ""),
                Text(_seqs(candidate["source_seqs"])),
                Text(d["action"], style=_ACTION_STYLE.get(d["action"], "")),
                Text(d["memory_id"] or d["target_id"] or ""),
                Text(d["new_content"] or ""),
                Text(d["reason"]),
            )
        for rejected in window["rejected"]:
            table.add_row(
                Text("?"),
                Text(rejected["content"]),
                Text(""),
                Text(""),
                Text("rejected", style="dim"),
                Text(""),
                Text(""),
                Text(rejected["reason"]),
            )
    console.print(table)
    actions = ", ".join(f"{action} {n}" for action, n in sorted(counts.items())) or "nothing"
    items = sum(len(w["seqs"]) for w in data["windows"])
    summary = (
        f"{len(data['windows'])} window(s), {items} item(s), {sum(counts.values())} "
        f"decision(s): {actions}; {report.tokens:,} tokens"
    )
    if dry_run:
        summary += "; dry run: nothing written"
    console.print(Text(summary))


def _folding(*headers: str) -> list[Column]:
    """Columns that fold what does not fit onto more lines: content and ids (what `history`
    takes) are shown whole in a narrow terminal, never cut with an ellipsis."""
    return [Column(header, overflow="fold") for header in headers]


_ACTION_STYLE = {"add": "green", "update": "yellow", "delete": "red", "none": "dim"}


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


@app.command()
def history(
    memory_id: Annotated[str, typer.Argument(help="A memory id.")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
) -> None:
    """Why a memory exists: its prior versions and every decision recorded about it (what,
    when, by which model and prompt, from which session items, and why)."""
    try:
        mem = _memory(data_dir, namespace, "none", create=False)
        record = mem.get(memory_id)
        versions = mem.history(memory_id)
        events = mem.events(memory_id)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        payload = {
            "memory": record.to_dict(),
            "versions": [
                {"version": v.version, "content": v.content, "replaced_at": _when(v.replaced_at)}
                for v in versions
            ],
            "events": [e.to_dict() for e in events],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    status = (
        f"invalidated {_when(record.invalidated_at)}"
        + (f" ({record.invalidated_reason})" if record.invalidated_reason else "")
        if record.invalidated
        else "live"
    )
    console.print(Text.assemble((record.id, "bold"), f" v{record.version}, {status}"))
    console.print(Text(record.content))
    table = Table(*_folding("version", "content", "replaced at"), title="versions")
    for v in versions:
        table.add_row(str(v.version), Text(v.content), _when(v.replaced_at))
    table.add_row(Text(f"{record.version} (current)"), Text(record.content), "")
    console.print(table)
    table = Table(
        *_folding("time", "action", "model", "prompt", "source", "reason"), title="events"
    )
    for e in events:
        source = e.session_id or ""
        if e.item_seqs:
            source += f" {_seqs(e.item_seqs)}"
        table.add_row(
            _when(e.at),
            Text(e.action, style=_ACTION_STYLE.get(e.action, "")),
            Text(e.model or ""),
            Text(e.prompt_version or ""),
            Text(source.strip()),
            Text(e.reason or ""),
        )
    console.print(table)


@app.command("export")
def export_cmd(
    output: Annotated[Path | None, typer.Argument(help="JSONL file (default: stdout).")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", help="Every namespace (a full backup).")
    ] = False,
    with_vectors: Annotated[
        bool,
        typer.Option(
            "--with-vectors", help="Include the embeddings (larger; no re-embedding on import)."
        ),
    ] = False,
) -> None:
    """Write everything of a namespace (memories with their history, facts, sessions with
    their items) as a versioned JSON Lines file; see docs/export-format.md."""
    from .transfer import write_export

    try:
        mem = _memory(data_dir, namespace, "none", create=False)
        records = mem.export(all_namespaces=all_namespaces, with_vectors=with_vectors)
        if output is None:
            write_export(records, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        namespaces = mem.store.export_namespaces() if all_namespaces else [namespace]
        total = 0
        for ns in namespaces:
            s = mem.stats(namespace=ns)
            total += s.memories + s.triples + s.sessions + s.session_items
        with output.open("wb") as out, _transfer_progress("records") as progress:
            task = progress.add_task("exporting", total=total)
            counts = write_export(
                records,
                out,
                progress=lambda kind: progress.advance(task) if kind in _COUNTED else None,
            )
    except EngramError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(InvalidInputError(f"cannot write {output}: {exc.strerror}")) from None
    table = Table("records", "exported", title=f"exported to {output}")
    for kind, label in _COUNTED.items():
        table.add_row(label, f"{counts.get(kind, 0):,}")
    err_console.print(table)


_COUNTED = {
    "memory": "memories",
    "triple": "triples",
    "session": "sessions",
    "session_item": "session items",
}


@app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="JSONL file from `engramdb export`.")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", help="Restore each namespace of the file into its own."),
    ] = False,
    embedder: EmbedderOpt = "auto",
) -> None:
    """Import an export file: idempotent (ids are kept, what is already there is skipped, so
    importing the same file twice changes nothing). The whole file is checked first: a bad
    line imports nothing and is named. Older files (one memory per line) import too."""
    if not source.is_file():
        err_console.print(f"[bold red]error:[/] {source} is not a file")
        raise typer.Exit(code=1)
    from .transfer import KINDS, import_records, read_lines

    size = source.stat().st_size
    options: dict[str, Any] = {
        "namespace": namespace,
        "all_namespaces": all_namespaces,
        "where": source.name,
    }
    try:
        mem = _memory(data_dir, namespace, embedder)
        with _transfer_progress("bytes") as progress:
            check = progress.add_task("checking", total=size)
            import_records(
                mem,
                read_lines(source, progress=lambda n: progress.advance(check, n)),
                write=False,
                **options,
            )
            task = progress.add_task("importing", total=size)
            report = import_records(
                mem, read_lines(source, progress=lambda n: progress.advance(task, n)), **options
            )
    except EngramError as exc:
        raise _fail(exc) from None
    table = Table("records", "imported", "already there", title=f"imported {source.name}")
    for kind in KINDS:
        table.add_row(
            kind.replace("_", " "), f"{report.created[kind]:,}", f"{report.skipped[kind]:,}"
        )
    console.print(table)
    into = ", ".join(repr(ns) for ns in report.namespaces) or repr(namespace)
    console.print(f"imported {report.created['memories']:,} memories into {into}")


def _transfer_progress(unit: str) -> Progress:
    """A progress bar with rate and time left (``unit``: "bytes", or what is counted:
    "records", "sessions")."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    class _RateColumn(ProgressColumn):
        """``unit`` per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            rate = f"{speed:,.1f}" if speed else "-"
            return Text(f"{rate} {unit}/s", style="progress.data.speed")

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn(), _RateColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err_console)


@app.command()
def reembed(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    embedder: EmbedderOpt = "auto",
) -> None:
    """Compute embeddings for every memory that lacks one from the current embedder."""
    try:
        mem = _memory(data_dir, namespace, embedder, create=False)
        if mem.embedder is None:
            raise InvalidInputError("no embedder: pass --embedder (or install engramdb[local])")
        with _progress() as progress:
            task = progress.add_task(f"embedding with {mem.embedder.model}", total=None)
            done = mem.reembed(progress=lambda n: progress.advance(task, n))
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(f"embedded {done:,} memories")


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


@app.command()
def serve(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "--data-dir",
            "-d",
            help="Data directory (SQLite) or postgresql:// URL. [default: ./.engramdb]",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to bind. [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on. [default: 8765]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes. [default: 1]")] = None,
    embedder: Annotated[
        str | None, typer.Option(help="auto, local, none, hashing, openai:<model>, st:<model>.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file (env: ENGRAMDB_CONFIG).")
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            help="Model for extraction: openai:<model> (endpoint from ENGRAMDB_LLM_BASE_URL "
            "or OPENAI_BASE_URL). [default: none]",
            show_default=False,
        ),
    ] = None,
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate",
            help="SQLite: start a new empty database although the data directory held one "
            "whose file is now missing (or accept the file that replaced it).",
        ),
    ] = False,
) -> None:
    """Run the memory server: REST API /v1, the compatibility API, OpenAPI docs at /docs.

    Settings come from options, ENGRAMDB_* environment variables, a TOML config file, then
    defaults (see docs/server.md)."""
    import os

    import uvicorn

    from .server.app import SETTINGS_ENV, log_config
    from .server.settings import load_settings

    try:
        settings = load_settings(
            config,
            store=store,
            host=host,
            port=port,
            workers=workers,
            embedder=embedder,
            llm=llm,
        )
        # open once here: a bad store fails fast with one line, and migrations run once
        open_store(settings.store, recreate=recreate).close()
    except EngramError as exc:
        raise _fail(exc) from None
    base = f"http://{settings.host}:{settings.port}"
    err_console.print(
        f"engramdb {__version__} serving {_without_password(settings.store)} at [bold]{base}[/]"
        f" ({settings.workers} worker{'s' if settings.workers > 1 else ''})"
    )
    err_console.print(f"  web page: {base}/ui/ (sign in with an API key)")
    err_console.print(f"  API docs: {base}/docs   health: {base}/health")
    if settings.registration == "open" and settings.host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            "[bold yellow]warning:[/] anyone who can reach this address can register a key; "
            "set ENGRAMDB_REGISTRATION=admin (and ENGRAMDB_ADMIN_KEYS) to restrict it"
        )
    if settings.registration == "open":
        err_console.print(
            f"  get a key: curl -X POST {base}/api/keys/register "
            "-H 'Content-Type: application/json' -d '{\"agent_name\": \"my-agent\"}'"
        )
    else:
        err_console.print(f"  keys: POST {base}/v1/keys with an admin key (X-API-Key)")
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "engramdb.server.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings),
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        server_header=False,
    )


@app.command("mcp")
def mcp_cmd(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "--data-dir",
            "-d",
            envvar="ENGRAMDB_STORE",
            help="Data directory (SQLite) or postgresql:// URL. [default: ./.engramdb]",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", envvar="ENGRAMDB_NAMESPACE", help="Namespace."),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            envvar="ENGRAMDB_EMBEDDER",
            help="auto, local, none, hashing, openai:<model>, st:<model>.",
        ),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            envvar="ENGRAMDB_LLM",
            help="Model for add_messages' extraction: openai:<model>. [default: none]",
            show_default=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="ENGRAMDB_URL",
            help="Serve a remote engramdb server instead of a local store.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="ENGRAMDB_API_KEY", help="The API key for --url."),
    ] = None,
) -> None:
    """Run an MCP server over stdio (for Claude Desktop, Cursor, Codex...): the tools remember,
    recall, forget, learn, facts, get_context and add_messages, over a local store or, with
    --url, an engramdb server. See docs/integrations/mcp.md."""
    from .integrations.mcp import require_mcp, run_stdio, stdio_target

    try:
        require_mcp()
        target = stdio_target(
            store, namespace=namespace, embedder=embedder, llm=llm, url=url, api_key=api_key
        )
    except EngramError as exc:
        raise _fail(exc) from None
    run_stdio(target)


@app.command("migrate")
def migrate_cmd(
    source: Annotated[
        str, typer.Option("--from", help="Source: a data directory or sqlite:///file.db URL.")
    ],
    target: Annotated[
        str, typer.Option("--to", help="Target: postgresql://user:password@host:port/dbname")
    ],
    batch_size: Annotated[int, typer.Option(help="Records per transaction.")] = 500,
) -> None:
    """Copy everything from a SQLite store to PostgreSQL: sessions, memories (with embeddings
    and history) and facts. Resumable (what is already there is skipped); verified by counts
    and checksums at the end."""
    from .store.transfer import KINDS, source_totals, transfer

    try:
        src = open_store(source, create=False)
        dst = open_store(target)
        totals = source_totals(src)
        with _progress() as progress:
            tasks = {
                kind: progress.add_task(kind.replace("_", " "), total=totals[kind])
                for kind in KINDS
            }
            report = transfer(
                src,
                dst,
                batch_size=batch_size,
                progress=lambda kind, n: progress.advance(tasks[kind], n),
            )
        src.close()
        dst.close()
    except EngramError as exc:
        raise _fail(exc) from None
    table = Table("records", "copied", "already there", "source", "target", "checksum")
    for kind in ("sessions", *KINDS, "embeddings"):
        same = report.source_checksums.get(kind) == report.target_checksums.get(kind)
        table.add_row(
            kind,
            f"{report.copied[kind]:,}" if kind in report.copied else "",
            f"{report.skipped[kind]:,}" if kind in report.skipped else "",
            f"{report.source_counts.get(kind, 0):,}",
            f"{report.target_counts.get(kind, 0):,}",
            ("match" if same else "[red]differs[/]") if kind in report.source_checksums else "",
        )
    console.print(table)
    if not report.ok:
        err_console.print(
            f"[bold red]error:[/] source and target differ in {', '.join(report.mismatches)}; "
            "run the migration again to resume, or migrate into an empty target"
        )
        raise typer.Exit(code=1)
    console.print(f"migrated {len(report.namespaces)} namespace(s); counts and checksums match")


def _without_password(target: str) -> str:
    """A store location safe to print: a URL's password is masked."""
    if "://" not in target:
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _kind(item: dict[str, Any]) -> str:
    return str(item.get("role") or item.get("type") or "?")


def _preview(item: dict[str, Any], width: int = 100) -> str:
    content = item.get("content", item)
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    """Console-script entry point."""
    app()


from . import cli_consolidate  # noqa: E402, F401  (registers the consolidation commands)
