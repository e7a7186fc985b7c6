"""SQLite backend: the embedded default."""

from .migrations import LATEST_VERSION, MIGRATIONS, migrate
from .store import SQLiteStore

__all__ = ["LATEST_VERSION", "MIGRATIONS", "SQLiteStore", "migrate"]
