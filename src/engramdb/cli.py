"""The ``engramdb`` command line: a thin layer over the library, mirroring its API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import EngramError
from .sessions import Session, list_sessions
from .store import Store, open_store
from .types import DEFAULT_NAMESPACE

app = typer.Typer(
    help="engramdb: persistent memory for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sessions_app = typer.Typer(help="Inspect and clear conversation sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")

console = Console()
err_console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="ENGRAMDB_DATA_DIR", help="Data directory."),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open_existing(data_dir: Path) -> Store:
    return open_store(data_dir, create=False)


def _fail(exc: EngramError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the engramdb version."""
    console.print(__version__)


@sessions_app.command("list")
def sessions_list(
    data_dir: DataDir = Path(".engramdb"),
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
    data_dir: DataDir = Path(".engramdb"),
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
    data_dir: DataDir = Path(".engramdb"),
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


@app.command()
def serve(
    data_dir: DataDir = Path(".engramdb"),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """Run the memory server on a data directory."""
    import uvicorn

    from .server import create_app

    try:
        store = open_store(data_dir)
    except EngramError as exc:
        raise _fail(exc) from None
    console.print(f"engramdb {__version__} serving {data_dir} at [bold]http://{host}:{port}[/]")
    console.print(f"  health: http://{host}:{port}/health   docs: http://{host}:{port}/docs")
    uvicorn.run(create_app(store), host=host, port=port, log_level="info")


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
