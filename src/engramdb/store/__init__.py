"""Storage backends and how to open one from a path or URL."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from .base import Store

DB_FILENAME = "engram.db"


def open_store(target: str | Path | Store, *, create: bool = True, recreate: bool = False) -> Store:
    """Open a store from a data directory, a ``sqlite:///file.db`` URL, a
    ``postgresql://user:password@host:port/dbname`` URL, or pass a Store through.

    A plain path is a data directory holding ``engram.db`` (created if ``create``). A SQLite
    database that existed there and is now missing or replaced is not silently started over:
    opening raises :class:`~engramdb.errors.StoreUnavailableError` unless ``recreate=True``
    (SQLite only; see :class:`~engramdb.store.sqlite.SQLiteStore`).
    """
    if isinstance(target, Store):
        return target
    if isinstance(target, Path):
        return _sqlite_dir(target, create=create, recreate=recreate)
    if not isinstance(target, str) or not target.strip():
        raise InvalidInputError(f"a store is a data directory or a URL, got {target!r}")
    if target.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
        return SQLiteStore(
            target.removeprefix("sqlite://").removeprefix("/"), create=create, recreate=recreate
        )
    if target.startswith(("postgresql://", "postgres://")):
        return _postgres(target, create=create)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise InvalidInputError(
            f"unsupported store URL scheme {scheme!r}; use a directory path, "
            "sqlite:///file.db or postgresql://..."
        )
    return _sqlite_dir(Path(target), create=create, recreate=recreate)


def _postgres(url: str, *, create: bool) -> Store:
    from .._extras import require

    require("psycopg", "postgres", "PostgreSQL support")
    require("psycopg_pool", "postgres", "PostgreSQL support")
    from .postgres import PostgresStore

    return PostgresStore(url, create=create)


def _sqlite_dir(directory: Path, *, create: bool, recreate: bool) -> Store:
    from ..errors import StoreUnavailableError
    from .sqlite import SQLiteStore

    if directory.exists() and not directory.is_dir():
        raise StoreUnavailableError(f"{directory} is a file; a data directory was expected")
    if create or recreate:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create data directory {directory}: {exc.strerror}; "
                "choose a writable location"
            ) from None
    return SQLiteStore(directory / DB_FILENAME, create=create, recreate=recreate)


__all__ = ["DB_FILENAME", "Store", "open_store"]
