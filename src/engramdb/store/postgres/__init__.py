"""PostgreSQL backend (psycopg 3 + pgvector): the scale-out deployment.

Needs the ``postgres`` extra: ``pip install 'engramdb[postgres]'``.
"""

from .migrations import LATEST_VERSION, MIGRATIONS, migrate
from .store import PostgresStore

__all__ = ["LATEST_VERSION", "MIGRATIONS", "PostgresStore", "migrate"]
