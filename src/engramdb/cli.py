"""The ``engramdb`` command line: a thin layer over the library, mirroring its API."""

from __future__ import annotations

import builtins
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from . import __version__
from .errors import EngramError, InvalidInputError, NotFoundError
from .sessions import Session, list_sessions
from .store import Store, open_store
from .types import DEFAULT_NAMESPACE, MemoryRecord, SessionInfo, format_datetime, format_optional

if TYPE_CHECKING:
    from rich.progress import Progress

    from .client import Client, ExtractResult
    from .embed import Embedder
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

# markup=False: user text (content, ids, hints such as "engramdb[postgres]") is printed
# literally, whatever brackets it holds; styling goes through rich.text.Text only.
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)

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


Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="ENGRAMDB_URL",
        help="An engramdb server (http://host:8765): run the command there, with --api-key.",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ENGRAMDB_API_KEY", help="The API key for --url."),
]


def _open_existing(data_dir: str) -> Store:
    return _closing(open_store(data_dir, create=False))


class _Closable(Protocol):
    def close(self) -> None: ...


_opened: list[_Closable] = []


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    ctx.call_on_close(_close_opened)


def _close_opened() -> None:
    while _opened:
        _opened.pop().close()


_C = TypeVar("_C", bound=_Closable)


def _closing(store: _C) -> _C:
    """Close the store (or client) when the command finishes (pools and connections do not
    linger)."""
    _opened.append(store)
    return store


def _usage(message: str) -> typer.Exit:
    """A usage error: the message, exit code 2 (as for a bad option)."""
    err_console.print(Text.assemble(("error:", "bold red"), f" {message}"))
    return typer.Exit(code=2)


def _client(url: str, api_key: str | None, namespace: str) -> Client:
    """The remote target of ``--url``: the key chooses the namespace."""
    from .client import Client

    if not api_key:
        raise _usage("--url needs --api-key (or ENGRAMDB_API_KEY)")
    if namespace != DEFAULT_NAMESPACE:
        raise _usage("with --url the API key chooses the namespace: leave out --namespace")
    return _closing(Client(url, api_key))


def _local_only(url: str | None, command: str) -> None:
    """Commands with no server API (reembed, migrate) refuse ``--url``."""
    if url is not None:
        raise _usage(
            f"`engramdb {command}` works on a local store (--data-dir / --store); "
            "the server has no API for it"
        )


def _fail(exc: EngramError) -> typer.Exit:
    # the message may quote user text (ids, content): printed literally, never as markup
    err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the engramdb version."""
    console.print(__version__)


class _Sessions:
    """What the session commands work on: a local store, or a server with ``--url``."""

    def __init__(self, data_dir: str, namespace: str, url: str | None, api_key: str | None):
        self.namespace = namespace
        self.client = _client(url, api_key, namespace) if url is not None else None
        self.store = None if url is not None else _open_existing(data_dir)

    def _session(self, session_id: str) -> Session:
        assert self.store is not None
        return Session(session_id, self.store, namespace=self.namespace)

    def list(self, limit: int) -> builtins.list[SessionInfo]:
        if self.client is None:
            assert self.store is not None
            return list_sessions(self.store, namespace=self.namespace, limit=limit)
        infos: builtins.list[SessionInfo] = []
        cursor = None
        while len(infos) < limit:
            page = self.client.list_sessions(limit=min(limit - len(infos), 100), cursor=cursor)
            infos += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        return infos

    def info(self, session_id: str) -> SessionInfo:
        """The session's metadata; :class:`NotFoundError` for an unknown session."""
        if self.client is None:
            info = self._session(session_id).info()
        else:
            info = self.client.session_info(session_id)
        if info is None:
            where = "on the server" if self.client is not None else f"in {self.namespace!r}"
            raise NotFoundError(f"no session {session_id!r} {where}")
        return info

    def items(self, session_id: str, limit: int | None) -> builtins.list[dict[str, Any]]:
        self.info(session_id)
        if self.client is None:
            return self._session(session_id).get_items(limit)
        return self.client.get_items(session_id, limit)

    def pop(self, session_id: str) -> dict[str, Any] | None:
        self.info(session_id)
        if self.client is None:
            return self._session(session_id).pop_item()
        return self.client.pop_item(session_id)

    def clear(self, session_id: str) -> None:
        if self.client is None:
            self._session(session_id).clear_session()
        else:
            self.client.clear_session(session_id)


def _when_json(moment: datetime | None) -> str | None:
    return format_optional(moment)


@sessions_app.command("list")
def sessions_list(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    limit: Annotated[int, typer.Option(help="At most this many sessions.")] = 100,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """List sessions, most recently updated first."""
    try:
        infos = _Sessions(data_dir, namespace, url, api_key).list(limit)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [
            {
                "session_id": i.session_id,
                "item_count": i.item_count,
                "created_at": format_datetime(i.created_at),
                "updated_at": format_datetime(i.updated_at),
            }
            for i in infos
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(
        _id_column("session_id"),
        "items",
        "created",
        "updated",
        title=Text(f"sessions ({len(infos)})"),
    )
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Show a session's items, oldest first (exit code 1 for an unknown session)."""
    try:
        items = _Sessions(data_dir, namespace, url, api_key).items(session_id, limit)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(items, ensure_ascii=False))
        return
    table = Table("#", "type/role", "content", title=Text(f"session {session_id!r}"))
    for n, item in enumerate(items, 1):
        table.add_row(str(n), _kind(item), _preview(item))
    console.print(table)


@sessions_app.command("pop")
def sessions_pop(
    session_id: str,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Remove and print a session's last item (exit code 1 if the session is unknown or
    empty)."""
    try:
        item = _Sessions(data_dir, namespace, url, api_key).pop(session_id)
        if item is None:
            raise NotFoundError(f"session {session_id!r} is empty")
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(item, ensure_ascii=False))
    else:
        console.print(f"popped {_kind(item)}: {_preview(item)}")


@sessions_app.command("clear")
def sessions_clear(
    session_id: str,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Remove every item of a session (asks first; --yes skips the question)."""
    if as_json and not yes:
        raise _usage("--json needs --yes: it cannot ask")
    try:
        sessions = _Sessions(data_dir, namespace, url, api_key)
        info = sessions.info(session_id)
        if not yes:
            typer.confirm(f"Remove {info.item_count} items from {session_id!r}?", abort=True)
        sessions.clear(session_id)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"session_id": session_id, "cleared": info.item_count}))
    else:
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


def _memory(
    data_dir: str, namespace: str, embedder: str, *, create: bool = True, llm: str | None = None
) -> Memory:
    from .memory import Memory

    store = _closing(open_store(data_dir, create=create))
    return Memory(store, namespace=namespace, embedder=embedder, llm=llm)


def _target(
    data_dir: str,
    namespace: str,
    embedder: str,
    url: str | None,
    api_key: str | None,
    *,
    create: bool = True,
    llm: str | None = None,
) -> Memory | Client:
    """What a memory command works on: the embedded store (``Memory``), or with ``--url`` an
    engramdb server (``Client``, the same method names). The one place that chooses.
    (``llm``: the local model; a server uses its own.)"""
    if url is not None:
        return _client(url, api_key, namespace)
    return _memory(data_dir, namespace, embedder, create=create, llm=llm)


# Memory ids are "mem_" + 32 hex digits: an id column never shrinks below that, so a whole id
# is on one line (copyable) in an 80-column terminal; content columns fold instead.
ID_WIDTH = 36


def _id_column(header: str = "id") -> Column:
    return Column(header, no_wrap=True, min_width=ID_WIDTH, overflow="fold")


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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Store a memory."""
    try:
        record = _target(data_dir, namespace, embedder, url, api_key).remember(
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
        console.print(Text.assemble("remembered ", (record.id, "bold")))


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
    explain: Annotated[
        bool, typer.Option(help="Each lane's rank and score (in --json; the table has why).")
    ] = False,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Search memories (full text + vectors, fused): a table of hits with their score and
    why (each lane that found the hit, with its rank there)."""
    try:
        hits = _recall_target(data_dir, namespace, embedder, mode, url, api_key).recall(
            query,
            filters=_filters(user, agent, session, tag),
            limit=limit,
            mode=mode,  # type: ignore[arg-type]
            explain=explain or not as_json,
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
    # why goes under the content (dim), leaving the width to the content and the whole id
    table = Table(
        "#", "score", *_folding("content / why"), _id_column(), title=Text(f"recall {query!r}")
    )
    for n, h in enumerate(hits, 1):
        why = _why(h.explain)
        cell = Text.assemble(h.memory.content, *(("\n", (why, "dim")) if why else ()))
        table.add_row(str(n), f"{h.score:.3f}", cell, h.memory.id)
    console.print(table)


def _recall_target(
    data_dir: str,
    namespace: str,
    embedder: str,
    mode: str,
    url: str | None,
    api_key: str | None,
) -> Memory | Client:
    """:func:`_target` for a recall, loading no embedding model that the recall would not use:
    none for ``--mode text``, and none for the default ``auto`` when the namespace holds no
    vectors (a text-only database) — loading a model takes longer than the recall."""
    if url is not None:
        return _client(url, api_key, namespace)
    mem = _memory(data_dir, namespace, "none", create=False)
    if mode == "text" or (embedder == "auto" and mode == "hybrid" and not mem.stats().embedded):
        return mem
    from .memory import Memory

    return Memory(mem.store, namespace=namespace, embedder=_one_query_embedder(embedder))


def _one_query_embedder(spec: str) -> Embedder | str:
    """The embedder for a process that embeds one query: the local model loaded without
    graph optimizations (about 4x faster to load, the same vectors), else ``spec`` as given
    (``resolve_embedder`` then reports a missing extra as it always does)."""
    from .embed import check_embedder
    from .errors import MissingExtraError

    effective = os.environ.get("ENGRAMDB_EMBEDDER", "auto") if spec == "auto" else spec
    if effective not in ("auto", "local"):
        return spec
    try:
        check_embedder("local")
    except MissingExtraError:
        return spec
    from .embed.local import LocalEmbedder

    return LocalEmbedder(optimize=False)


def _why(explain: dict[str, Any] | None) -> str:
    """A hit's explain view in a few words: each lane with the hit's rank in it, then the
    boosts (``text#1 vector#3 +recency``)."""
    if not explain:
        return ""
    parts = [f"{name}#{int(v['rank'])}" for name, v in (explain.get("lanes") or {}).items()]
    parts += [f"+{name}" for name, value in (explain.get("boosts") or {}).items() if value]
    return " ".join(parts)


Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List, do not remove.")]


def _confirm_then(
    preview: ForgetResult,
    what: str,
    yes: bool,
    run: Callable[[], ForgetResult],
    as_json: bool = False,
) -> ForgetResult:
    """Show how many a scoped forget would remove and remove them once confirmed (``--yes``
    confirms in advance). Nothing matching: nothing to ask."""
    if preview.count == 0:
        from .memory import ForgetResult

        return ForgetResult([], False)
    if not yes and as_json:
        raise _usage("--json with a scoped forget needs --yes (or --dry-run): it cannot ask")
    if not yes:
        console.print(f"would remove {preview.count} {what}")
        typer.confirm(f"Remove these {preview.count} {what}?", abort=True)
    return run()


def _print_forget(result: ForgetResult, what: str, as_json: bool = False) -> None:
    if as_json:
        payload = {"dry_run": result.dry_run, "count": result.count, "ids": result.ids}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
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
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Remove a memory by id, or every memory in a scope (--user/--agent/--session/--tag;
    --since/--until only narrow a scope, or --all). A scoped forget shows how many memories
    would go and asks first (--yes skips the question)."""
    flt: dict[str, Any] = _filters(user, agent, session, tag)
    flt.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
    try:
        mem = _target(data_dir, namespace, "none", url, api_key, create=False)
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
                    preview, "memories", yes, lambda: mem.forget(filters=flt, all=all_), as_json
                )
            )
    except EngramError as exc:
        raise _fail(exc) from None
    _print_forget(result, "memories", as_json)


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
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Remove a fact by id, or every fact (current and superseded) matching a pattern
    (-s/-p/-o), with the memories that made them searchable. A pattern shows how many facts
    would go and asks first (--yes skips the question)."""
    pattern = (subject, predicate, object)
    try:
        mem = _target(data_dir, namespace, "none", url, api_key, create=False)
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
                else _confirm_then(
                    preview, "facts", yes, lambda: mem.forget_facts(*pattern), as_json
                )
            )
    except EngramError as exc:
        raise _fail(exc) from None
    _print_forget(result, "facts", as_json)


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
    valid_from: Annotated[
        str | None,
        typer.Option(help="ISO 8601: true from this time on (default: now)."),
    ] = None,
    valid_to: Annotated[
        str | None,
        typer.Option(help="ISO 8601: true until this time (a closed interval; not --single)."),
    ] = None,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Store a knowledge triple (a fact is valid until a --single fact supersedes it, or
    until --valid-to)."""
    try:
        fact = _target(data_dir, namespace, embedder, url, api_key).learn(
            subject,
            predicate,
            object,
            confidence=confidence,
            source=source,
            valid_from=valid_from,
            valid_to=valid_to,
            single_valued=single,
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(fact.to_dict(), ensure_ascii=False))
    else:
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Query knowledge triples."""
    try:
        found = _target(data_dir, namespace, "none", url, api_key, create=False).facts(
            subject, predicate, object, as_of=as_of, include_history=history
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in found], ensure_ascii=False))
        return
    table = Table(
        *_folding("subject", "predicate", "object"),
        "confidence",
        "valid from",
        "valid to",
        _id_column(),
    )
    for f in found:
        table.add_row(
            f.subject,
            f.predicate,
            f.object,
            f"{f.confidence:g}",
            f.valid_from.isoformat(timespec="seconds"),
            f.valid_to.isoformat(timespec="seconds") if f.valid_to else "",
            f.id,
        )
    console.print(table)


@app.command()
def stats(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Counts for a namespace (against a server: also its usage and limits)."""
    try:
        found = _target(data_dir, namespace, "none", url, api_key, create=False).stats()
    except EngramError as exc:
        raise _fail(exc) from None
    values: dict[str, Any]
    if isinstance(found, dict):
        values = found
    else:
        values = {
            "memories": found.memories,
            "embedded": found.embedded,
            "triples": found.triples,
            "current_triples": found.current_triples,
            "sessions": found.sessions,
            "session_items": found.session_items,
        }
    if as_json:
        typer.echo(json.dumps(values, ensure_ascii=False))
        return
    table = Table("what", "value", title=Text(f"namespace {values.get('namespace', namespace)!r}"))
    for name, value in _flat(values):
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def _flat(values: dict[str, Any], prefix: str = "") -> builtins.list[tuple[str, Any]]:
    """Nested statistics as ``("usage.recalls_today", 3)`` rows."""
    rows: builtins.list[tuple[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{name}.")
        elif name != "namespace":
            rows.append((f"{prefix}{name}", "" if value is None else value))
    return rows


def _record_table(record: MemoryRecord) -> Table:
    """One memory as a two-column table (every field, ids whole)."""
    table = Table("field", Column("value", overflow="fold"), title=Text(record.id))
    for name, value in record.to_dict().items():
        if value is None or value == [] or value == {}:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(name, shown)
    return table


@app.command()
def get(
    memory_id: Annotated[str, typer.Argument(help="A memory id.")],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Show one memory (exit code 1 if there is no such memory)."""
    try:
        record = _target(data_dir, namespace, "none", url, api_key, create=False).get(memory_id)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(record.to_dict(), ensure_ascii=False))
    else:
        console.print(_record_table(record))


@app.command("list")
def list_cmd(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    tag: TagOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-k", help="Memories per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The next_cursor printed by the previous page.")
    ] = None,
    invalidated: Annotated[
        bool, typer.Option("--invalidated", help="Include invalidated memories.")
    ] = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """List memories in the order stored, a page at a time (--cursor for the next page)."""
    try:
        page = _target(data_dir, namespace, "none", url, api_key, create=False).list(
            _filters(user, agent, session, tag) or None,
            cursor=cursor,
            limit=limit,
            include_invalidated=invalidated,
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [r.to_dict() for r in page.items]
        typer.echo(json.dumps({"items": rows, "next_cursor": page.next_cursor}))
        return
    # tags go under the content (dim), leaving the width to the content and the whole id
    table = Table(_id_column(), *_folding("content / tags"), "created", title=Text("memories"))
    for r in page.items:
        tags = ", ".join(r.tags)
        cell = Text.assemble(r.content, *(("\n", (tags, "dim")) if tags else ()))
        table.add_row(r.id, cell, r.created_at.strftime("%Y-%m-%d"))
    console.print(table)
    if page.next_cursor is not None:
        err_console.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def update(
    memory_id: Annotated[str, typer.Argument(help="A memory id.")],
    content: Annotated[str | None, typer.Option(help="The new text.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="The new tags (repeatable).")
    ] = None,
    metadata: Annotated[str | None, typer.Option(help="The new metadata, a JSON object.")] = None,
    importance: Annotated[float | None, typer.Option(help="0 to 1.")] = None,
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    embedder: EmbedderOpt = "auto",
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Change a memory; the prior version is kept (see `engramdb history`)."""
    meta: Any = None
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except ValueError:
            raise _usage('--metadata must be a JSON object, e.g. \'{"source": "chat"}\'') from None
    try:
        record = _target(data_dir, namespace, embedder, url, api_key, create=False).update(
            memory_id, content=content, tags=tag, metadata=meta, importance=importance
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(record.to_dict(), ensure_ascii=False))
    else:
        console.print(Text.assemble("updated ", (record.id, "bold"), f" to v{record.version}"))


@app.command()
def namespaces(
    data_dir: DataDir = ".engramdb",
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """The namespaces: of the local store, or with --url those the key sees (an admin key:
    every namespace with a key; a namespace key: its own)."""
    try:
        if url is None:
            names = _open_existing(data_dir).export_namespaces()
        else:
            keys = _client(url, api_key, DEFAULT_NAMESPACE).list_keys()
            names = sorted({k.namespace for k in keys})
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(names, ensure_ascii=False))
        return
    for name in names:
        console.print(name)


keys_app = typer.Typer(
    help="API keys of a server (--url and --api-key): list, create, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")


def _keys_client(url: str | None, api_key: str | None) -> Client:
    if url is None:
        raise _usage("API keys are a server feature: pass --url and --api-key (or ENGRAMDB_URL)")
    return _client(url, api_key, DEFAULT_NAMESPACE)


@keys_app.command("list")
def keys_list(
    key_namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Admin keys: only this namespace's keys."),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Keys of the key's namespace (an admin key: of every namespace, or of --namespace)."""
    try:
        keys = _keys_client(url, api_key).list_keys(key_namespace)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([k.to_dict() for k in keys], ensure_ascii=False))
        return
    table = Table(_id_column(), *_folding("namespace", "name"), "prefix", "created", "revoked")
    for k in keys:
        table.add_row(k.id, k.namespace, k.name, k.prefix, _when(k.created_at), _when(k.revoked_at))
    console.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for (e.g. an agent's name).")],
    purpose: Annotated[str | None, typer.Option(help="A longer description.")] = None,
    key_namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Admin keys: the new key's namespace."),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Create a key; its secret is printed once."""
    try:
        created = _keys_client(url, api_key).create_key(
            name, purpose=purpose, namespace=key_namespace
        )
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        payload = {"api_key": created.api_key, "key": created.key.to_dict()}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    console.print(
        f"created {created.key.id} in {created.key.namespace!r}; the secret (shown once):"
    )
    console.print(created.api_key)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="A key id (from `engramdb keys list`).")],
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Revoke a key: it is refused from now on."""
    try:
        key = _keys_client(url, api_key).revoke_key(key_id)
    except EngramError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(key.to_dict(), ensure_ascii=False))
    else:
        console.print(f"revoked {key.id}")


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


def _remote_report_dict(result: ExtractResult) -> dict[str, Any]:
    """A server's extraction (``Client.extract``) in the shape of :func:`_report_dict`: one
    window, each decision with the memory its applied event names."""
    applied = builtins.list(result.applied)
    decisions = []
    for d in result.decisions:
        event = next((e for e in applied if e.action == d.action), None)
        if event is not None:
            applied.remove(event)
        decisions.append({**d.to_dict(), "memory_id": event.memory_id if event else None})
    seqs = sorted({seq for d in result.decisions for seq in d.candidate.source_seqs})
    models = {d.model for d in result.decisions if d.model}
    return {
        "session_id": result.session_id,
        "dry_run": result.dry_run,
        "tokens": result.tokens,
        "windows": [
            {
                "seqs": seqs,
                "model": models.pop() if len(models) == 1 else None,
                "decisions": decisions,
                "rejected": [],
            }
        ]
        if decisions
        else [],
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Turn a session's new items (past its high-water mark) into memories: each candidate
    the model extracts, with the decision it got (add / update / delete / none) and why."""
    from .memory import Memory

    try:
        if url is not None:
            result = _client(url, api_key, namespace).extract(
                session_id, user_id=user, agent_id=agent, infer=infer, dry_run=dry_run
            )
            data, tokens = _remote_report_dict(result), result.tokens
        else:
            store = _closing(open_store(data_dir, create=False))
            mem = Memory(store, namespace=namespace, embedder=embedder, llm=_llm_spec(llm, infer))
            report = mem.extract(
                session_id, user_id=user, agent_id=agent, infer=infer, dry_run=dry_run
            )
            data, tokens = _report_dict(report), report.tokens
    except EngramError as exc:
        raise _fail(exc) from None
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
        f"decision(s): {actions}; {tokens:,} tokens"
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Why a memory exists: its prior versions and every decision recorded about it (what,
    when, by which model and prompt, from which session items, and why)."""
    try:
        mem = _target(data_dir, namespace, "none", url, api_key, create=False)
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
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Write everything of a namespace (memories with their history, facts, sessions with
    their items) as a versioned JSON Lines file; see docs/export-format.md. With --url, the
    key's namespace on the server."""
    if url is not None and all_namespaces:
        raise _usage("with --url the API key chooses the namespace: --all-namespaces is local")
    try:
        mem = _target(data_dir, namespace, "none", url, api_key, create=False)
        options: dict[str, Any] = {"with_vectors": with_vectors}
        if all_namespaces:
            options["all_namespaces"] = True
        if output is None:
            mem.export_file(sys.stdout.buffer, **options)
            sys.stdout.buffer.flush()
            return
        with _transfer_progress("records") as progress:
            counts = mem.export_file(output, progress=_bar(progress), **options)
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


def _bar(progress: Progress) -> Callable[[str, int, int | None], None]:
    """A library ``progress(step, done, total)`` callback drawing one bar per step (with the
    rate and the time left, see :func:`_transfer_progress`)."""
    from rich.progress import TaskID

    tasks: dict[str, TaskID] = {}

    def show(step: str, done: int, total: int | None) -> None:
        if step not in tasks:
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    return show


@app.command("import")
def import_cmd(
    source: Annotated[
        str, typer.Argument(help="JSONL file from `engramdb export`, or - for standard input.")
    ],
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", help="Restore each namespace of the file into its own."),
    ] = False,
    embedder: EmbedderOpt = "auto",
    url: Url = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Import an export file: idempotent (ids are kept, what is already there is skipped, so
    importing the same file twice changes nothing). The file is streamed (never read whole);
    it is checked first, so a bad line imports nothing and is named. Memories without
    vectors are embedded in batches. Older files (one memory per line) import too. With
    --url, into the key's namespace on the server (the server embeds with its own model)."""
    import tempfile

    from .transfer import KINDS

    if url is not None and all_namespaces:
        raise _usage("with --url the API key chooses the namespace: --all-namespaces is local")
    path = Path(source)
    if source != "-" and not path.is_file():
        raise _fail(InvalidInputError(f"{source} is not a file"))
    try:
        mem = _target(data_dir, namespace, embedder, url, api_key)
        options: dict[str, Any] = {}
        if url is None:
            options = {"namespace": namespace, "all_namespaces": all_namespaces}
        with _transfer_progress("records") as progress:
            if source == "-":
                # standard input is read once; import reads twice (check, then write): it
                # goes to a temporary file first, a chunk at a time
                with tempfile.TemporaryFile() as spool:
                    while chunk := sys.stdin.buffer.read(1 << 20):
                        spool.write(chunk)
                    spool.seek(0)
                    report = mem.import_file(spool, progress=_bar(progress), **options)
            else:
                report = mem.import_file(path, progress=_bar(progress), **options)
    except EngramError as exc:
        raise _fail(exc) from None
    name = "standard input" if source == "-" else path.name
    table = Table("records", "imported", "already there", title=f"imported {name}")
    for kind in KINDS:
        table.add_row(
            kind.replace("_", " "), f"{report.created[kind]:,}", f"{report.skipped[kind]:,}"
        )
    console.print(table)
    into = ", ".join(repr(ns) for ns in report.namespaces) or repr(namespace)
    console.print(f"imported {report.created['memories']:,} memories into {into}")


def _transfer_progress(unit: str) -> Progress:
    """Progress bars with the count, the rate and the time left. ``unit`` is what a bar
    counts ("records", "sessions", "memories", or "bytes": shown as sizes); a bar whose step
    is "checking" (the check pass of an import) or "sending" (an import's upload to a
    server) counts bytes."""
    from rich.filesize import decimal
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    def unit_of(task: Task) -> str:
        sized = task.description in ("checking", "sending")  # the bytes of a file
        return str(task.fields.get("unit") or ("bytes" if sized else unit))

    class _CountColumn(ProgressColumn):
        """``done/total`` in the bar's unit."""

        def render(self, task: Task) -> Text:
            if unit_of(task) == "bytes":
                done = decimal(int(task.completed))
                total = decimal(int(task.total)) if task.total is not None else "?"
            else:
                done = f"{int(task.completed):,}"
                total = f"{int(task.total):,}" if task.total is not None else "?"
            return Text(f"{done}/{total}", style="progress.download")

    class _RateColumn(ProgressColumn):
        """The bar's unit per second."""

        def render(self, task: Task) -> Text:
            # rich's recent-samples speed; over the whole run when it has too few samples
            speed = task.finished_speed or task.speed
            if not speed and task.elapsed and task.completed:
                speed = task.completed / task.elapsed
            what = unit_of(task)
            if what == "bytes":
                rate = decimal(int(speed)) if speed else "- B"
            else:
                rate = f"{speed:,.1f} {what}" if speed else f"- {what}"
            return Text(f"{rate}/s", style="progress.data.speed")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )


@app.command()
def reembed(
    data_dir: DataDir = ".engramdb",
    namespace: Namespace = DEFAULT_NAMESPACE,
    embedder: EmbedderOpt = "auto",
    url: Url = None,
) -> None:
    """Compute embeddings for every memory that lacks one from the current embedder (a
    progress bar with the rate and the time left)."""
    _local_only(url, "reembed")
    try:
        mem = _memory(data_dir, namespace, embedder, create=False)
        if mem.embedder is None:
            raise InvalidInputError("no embedder: pass --embedder (or install engramdb[local])")
        # what lacks a vector, from the statistics (memories embedded by another model are
        # re-embedded too: the total then grows as they come)
        total = 0
        for ns in mem.store.export_namespaces():
            counts = mem.stats(namespace=ns)
            total += counts.memories - counts.embedded
        with _transfer_progress("memories") as progress:
            task = progress.add_task(f"embedding with {mem.embedder.model}", total=total)
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                progress.update(task, completed=done, total=max(total, done))

            done = mem.reembed(progress=advance)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(f"embedded {done:,} memories")


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

    from ._extras import require

    try:
        for module in ("fastapi", "uvicorn", "pydantic_settings", "jinja2", "fastapi_offline"):
            require(module, "server", "engramdb serve")
    except EngramError as exc:
        raise _fail(exc) from None
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
        from .embed import check_embedder

        check_embedder(settings.embedder)  # a missing extra too, before workers start
    except EngramError as exc:
        raise _fail(exc) from None
    base = f"http://{settings.host}:{settings.port}"
    err_console.print(
        Text.assemble(
            f"engramdb {__version__} serving {_without_password(settings.store)} at ",
            (base, "bold"),
            f" ({settings.workers} worker{'s' if settings.workers > 1 else ''})",
        )
    )
    err_console.print(f"  web page: {base}/ui/ (sign in with an API key)")
    err_console.print(f"  API docs: {base}/docs   health: {base}/health")
    if settings.registration == "open" and settings.host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            Text.assemble(
                ("warning:", "bold yellow"),
                " anyone who can reach this address can register a key; "
                "set ENGRAMDB_REGISTRATION=admin (and ENGRAMDB_ADMIN_KEYS) to restrict it",
            )
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
    url: Url = None,
) -> None:
    """Copy everything from a SQLite store to PostgreSQL: sessions, memories (with embeddings
    and history) and facts. Resumable (what is already there is skipped); verified by counts
    and checksums at the end."""
    _local_only(url, "migrate")
    from .store.transfer import KINDS, source_totals, transfer

    try:
        src = open_store(source, create=False)
        dst = open_store(target)
        totals = source_totals(src)
        with _transfer_progress("records") as progress:
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
            (Text("match") if same else Text("differs", style="red"))
            if kind in report.source_checksums
            else "",
        )
    console.print(table)
    if not report.ok:
        raise _fail(
            InvalidInputError(
                f"source and target differ in {', '.join(report.mismatches)}; "
                "run the migration again to resume, or migrate into an empty target"
            )
        )
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


from . import cli_consolidate, cli_doctor  # noqa: E402, F401  (register their commands)
