"""PostgreSQL implementation of the Store protocol (psycopg 3, a connection pool, pgvector).

Open it with a URL: ``open_store("postgresql://user:password@host:5432/db")`` or
``Memory("postgresql://...")``. Tables live in the first schema on ``search_path``; set another
one with ``?options=-csearch_path%3Dmy_schema,public``. Every call takes a pooled connection
(autocommit) and runs one transaction, so a batch is applied whole or not at all.

Faults become :mod:`engramdb.errors`: a refused connection, bad credentials or a missing
pgvector extension raise :class:`~engramdb.errors.StoreUnavailableError` saying what to fix; a
statement timeout raises :class:`~engramdb.errors.StoreError`. When the server restarts, the
pool's dead connections are replaced and the call is retried once if it cannot have committed
(the connection died before COMMIT was sent); if the connection dies during COMMIT the outcome
is unknown and the call raises rather than risk applying a write twice.

Durability is PostgreSQL's: a write returns once its COMMIT is acknowledged (with the
default ``synchronous_commit=on`` it then survives a server crash).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import (
    EngramError,
    StoreError,
    StoreUnavailableError,
)
from ...types import Job, ScopeSettings, SessionInfo, Spend, SpendDay, datetime_from_us, now_us
from ...validation import decode_item, decode_items, plain_items
from .. import jobs
from ..rows import check_day, check_job_args, check_mark_move
from .access import AccessMixin
from .memories import MemoriesMixin
from .migrations import migrate
from .transfer import TransferMixin
from .vectors import vector_adapters

log = logging.getLogger("engramdb")

Conn = psycopg.Connection[tuple[Any, ...]]
_T = TypeVar("_T")


class _CommitUnknown(Exception):
    """The connection died while COMMIT was in flight."""


class PostgresStore(MemoriesMixin, AccessMixin, TransferMixin):
    """Store backed by a PostgreSQL database with the pgvector extension."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.inline_reads = False  # every read is a network round trip
        self.native_vector_search = True
        self._conninfo = url
        self._where = describe(url)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._min_size, self._max_size = min_size, max_size
        self._closed = False
        self._lock = threading.Lock()
        self._indexed_dims: set[int] = set()
        self._unit = threading.local()  # the connection of this thread's atomic() block
        with self._translate(), self._connect() as conn:
            migrate(conn, create=create)
            self._adapters = vector_adapters(conn)
            version = _pgvector_version(conn)
            self._iterative_scan = version >= (0, 8)
            self._halfvec = version >= (0, 7)  # halfvec HNSW indexes (migration 12)
        self._pid = os.getpid()
        self._pool = self._new_pool()

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> Conn:
        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.OperationalError as exc:
            raise connect_error(exc, self._where) from None

    def _new_pool(self) -> ConnectionPool[Conn]:
        return ConnectionPool(
            self._conninfo,
            kwargs={
                "autocommit": True,
                "context": self._adapters,
                "connect_timeout": max(1, int(self._connect_timeout)),
            },
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            num_workers=2,
            name=f"engramdb {self._where}",
            open=True,
        )

    def _get_pool(self) -> ConnectionPool[Conn]:
        if self._closed:
            raise StoreError("this store has been closed")
        if self._pid != os.getpid():  # a forked child: the parent's pool is not ours to use
            with self._lock:
                if self._pid != os.getpid():
                    self._pool, self._pid = self._new_pool(), os.getpid()
        return self._pool

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pid == os.getpid():
            self._pool.close(timeout=5)

    def ping(self) -> None:
        """One round trip to the server; raises StoreUnavailableError if there is none."""
        self.read(lambda conn: conn.execute("SELECT 1").fetchone())

    def _unit_conn(self) -> Conn | None:
        unit = self._unit
        if getattr(unit, "conn", None) is not None and unit.pid == os.getpid():
            return unit.conn  # type: ignore[no-any-return]
        return None

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One pooled connection and one transaction for the block: every store call the
        block makes on this thread runs on it (nested blocks join the outermost)."""
        if self._unit_conn() is not None:
            yield
            return
        pool = self._get_pool()
        try:
            with pool.connection() as conn, conn.transaction():
                self._unit.conn, self._unit.pid = conn, os.getpid()
                try:
                    yield
                finally:
                    self._unit.conn = None
        except PoolTimeout as exc:
            raise self._unavailable() from exc
        except psycopg.OperationalError as exc:
            if _connection_lost(exc):
                raise StoreUnavailableError(
                    f"the connection to PostgreSQL at {self._where} was lost during a unit of "
                    "work; it may or may not have been applied. Check before retrying."
                ) from exc
            raise self._store_error(exc) from exc
        except psycopg.Error as exc:
            raise self._store_error(exc) from exc

    def run(self, work: Callable[[Conn], _T], *, write: bool = True) -> _T:
        """Run ``work`` on a pooled connection, in one transaction if ``write`` (or if it reads
        more than once and needs one snapshot); translate every failure to engramdb errors.
        Inside :meth:`atomic` it runs on the block's connection, in a savepoint if ``write``."""
        joined = self._unit_conn()
        if joined is not None:
            try:
                if not write:
                    return work(joined)
                with joined.transaction():
                    return work(joined)
            except psycopg.Error as exc:
                raise self._store_error(exc) from exc
        pool = self._get_pool()
        for attempt in range(2):
            committing = False
            try:
                with pool.connection() as conn:
                    if not write:
                        return work(conn)
                    try:
                        with conn.transaction():
                            result = work(conn)
                            committing = True
                    except psycopg.OperationalError as exc:
                        if committing and _connection_lost(exc):
                            raise _CommitUnknown from exc
                        raise
                    return result
            except _CommitUnknown as exc:
                raise StoreUnavailableError(
                    f"the connection to PostgreSQL at {self._where} was lost while committing; "
                    "the write may or may not have been applied. Check before retrying."
                ) from exc.__cause__
            except psycopg.OperationalError as exc:
                if attempt == 0 and _connection_lost(exc):
                    # the server restarted or dropped us: replace dead connections, retry once
                    # (nothing was committed: the connection died before COMMIT was sent)
                    log.info("PostgreSQL connection lost (%s); reconnecting", exc)
                    with contextlib.suppress(Exception):
                        pool.check()
                    continue
                raise self._store_error(exc) from exc
            except PoolTimeout as exc:
                raise self._unavailable() from exc
            except psycopg.Error as exc:
                raise self._store_error(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, work: Callable[[Conn], _T]) -> _T:
        return self.run(work, write=False)

    @contextlib.contextmanager
    def _translate(self) -> Any:
        try:
            yield
        except EngramError:
            raise
        except psycopg.Error as exc:
            raise self._store_error(exc) from exc

    def _unavailable(self) -> StoreError:
        # the pool only says it timed out: find out why with one direct attempt
        try:
            with self._connect():
                pass
        except StoreError as exc:
            return exc
        return StoreUnavailableError(
            f"no PostgreSQL connection to {self._where} became free within {self._timeout:g}s "
            "(all are busy, or the server is restarting); retry, or raise the pool size"
        )

    def _store_error(self, exc: psycopg.Error) -> StoreError:
        message = (exc.diag.message_primary if exc.diag else None) or str(exc).strip()
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return StoreError(
                f"PostgreSQL cancelled the statement ({message}); statement_timeout may be too "
                "low for this call. Nothing was written; retry, or raise statement_timeout"
            )
        if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
            return StoreUnavailableError(
                f"the engramdb schema at {self._where} is missing or damaged ({message}); "
                "was it dropped? Reopen the store to recreate it"
            )
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return StoreUnavailableError(
                f"PostgreSQL at {self._where} is read-only ({message}); point the URL at the "
                "primary server"
            )
        if isinstance(exc, psycopg.OperationalError):
            if _connection_lost(exc):
                return StoreUnavailableError(
                    f"lost the connection to PostgreSQL at {self._where} ({message}); nothing "
                    "was committed. Retry once the server is back"
                )
            return connect_error(exc, self._where)
        return StoreError(f"PostgreSQL error at {self._where}: {message}")

    # -- sessions --------------------------------------------------------------------------
    def session_add(self, namespace: str, session_id: str, encoded_items: Sequence[str]) -> None:
        if not encoded_items:
            return
        now, count = now_us(), len(encoded_items)

        def work(conn: Conn) -> None:
            # the upsert locks the session row: writers of one session queue here, and each
            # gets its own block of sequence numbers
            row = conn.execute(
                "INSERT INTO sessions (namespace, session_id, created_at, updated_at, "
                "item_count, next_seq) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, session_id) DO UPDATE "
                "SET updated_at = excluded.updated_at, "
                "item_count = sessions.item_count + excluded.item_count, "
                "next_seq = sessions.next_seq + excluded.next_seq RETURNING next_seq",
                (namespace, session_id, now, now, count, count),
            ).fetchone()
            assert row is not None
            first = int(row[0]) - count
            conn.execute(
                "INSERT INTO session_items (namespace, session_id, seq, data, created_at, plain) "
                "SELECT %s, %s, %s + n - 1, data, %s, plain "
                "FROM unnest(%s::text[], %s::boolean[]) WITH ORDINALITY AS t (data, plain, n)",
                (
                    namespace,
                    session_id,
                    first,
                    now,
                    list(encoded_items),
                    plain_items(encoded_items),
                ),
            )

        self.run(work)

    def session_get(
        self, namespace: str, session_id: str, limit: int | None
    ) -> list[dict[str, Any]]:
        if limit == 0:
            return []

        def work(conn: Conn) -> list[tuple[Any, ...]]:
            if limit is None:
                return conn.execute(
                    "SELECT seq, data, plain FROM session_items WHERE namespace = %s AND "
                    "session_id = %s ORDER BY seq",
                    (namespace, session_id),
                ).fetchall()
            rows = conn.execute(
                "SELECT seq, data, plain FROM session_items WHERE namespace = %s "
                "AND session_id = %s ORDER BY seq DESC LIMIT %s",
                (namespace, session_id, limit),
            ).fetchall()
            rows.reverse()
            return rows

        return decode_items(self.read(work), where=f"session {session_id!r}")

    def session_pop(self, namespace: str, session_id: str) -> dict[str, Any] | None:
        def work(conn: Conn) -> dict[str, Any] | None:
            # lock the session row first so concurrent pops take one item each
            if not conn.execute(
                "SELECT 1 FROM sessions WHERE namespace = %s AND session_id = %s FOR UPDATE",
                (namespace, session_id),
            ).fetchone():
                return None
            row = conn.execute(
                "DELETE FROM session_items WHERE namespace = %s AND session_id = %s AND seq = "
                "(SELECT max(seq) FROM session_items WHERE namespace = %s AND session_id = %s) "
                "RETURNING seq, data, plain",
                (namespace, session_id, namespace, session_id),
            ).fetchone()
            if row is None:
                return None
            # a corrupt item raises here, inside the transaction: the rollback keeps it
            item = decode_item(
                row[1], record_id=row[0], where=f"session {session_id!r}", plain=row[2]
            )
            conn.execute(
                "UPDATE sessions SET item_count = item_count - 1, updated_at = %s "
                "WHERE namespace = %s AND session_id = %s",
                (now_us(), namespace, session_id),
            )
            return item

        return self.run(work)

    def session_clear(self, namespace: str, session_id: str) -> int:
        def work(conn: Conn) -> int:
            conn.execute(
                "SELECT 1 FROM sessions WHERE namespace = %s AND session_id = %s FOR UPDATE",
                (namespace, session_id),
            )
            removed = conn.execute(
                "DELETE FROM session_items WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            ).rowcount
            conn.execute(
                "UPDATE sessions SET item_count = 0, updated_at = %s "
                "WHERE namespace = %s AND session_id = %s",
                (now_us(), namespace, session_id),
            )
            return int(removed)

        return self.run(work)

    def session_delete(self, namespace: str, session_id: str) -> bool:
        def work(conn: Conn) -> bool:
            existed = conn.execute(
                "DELETE FROM sessions WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            ).rowcount
            conn.execute(
                "DELETE FROM session_items WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            )
            conn.execute(
                "DELETE FROM extraction_marks WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            )
            return bool(existed)

        return self.run(work)

    def session_info(self, namespace: str, session_id: str) -> SessionInfo | None:
        row = self.read(
            lambda conn: conn.execute(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
                "WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            ).fetchone()
        )
        return _session_info(row) if row else None

    def session_list(
        self, namespace: str, *, limit: int = 100, before: tuple[int, str] | None = None
    ) -> list[SessionInfo]:
        query = (
            "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
            "WHERE namespace = %s"
        )
        params: list[Any] = [namespace]
        if before is not None:
            query += " AND (updated_at, session_id) < (%s, %s)"
            params += [before[0], before[1]]
        query += " ORDER BY updated_at DESC, session_id DESC LIMIT %s"
        params.append(limit)
        rows = self.read(lambda conn: conn.execute(sql.SQL(query), params).fetchall())
        return [_session_info(row) for row in rows]

    def namespaces(self) -> list[str]:
        """Every namespace holding sessions, memories or facts (for transfers)."""
        return self.read(
            lambda conn: [
                str(r[0])
                for r in conn.execute(
                    "SELECT namespace FROM sessions UNION SELECT namespace FROM memories "
                    "UNION SELECT namespace FROM triples ORDER BY 1"
                )
            ]
        )

    # -- extraction high-water marks -------------------------------------------------------
    def extraction_mark(self, namespace: str, session_id: str) -> int:
        row = self.read(
            lambda conn: conn.execute(
                "SELECT last_seq FROM extraction_marks WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            ).fetchone()
        )
        return int(row[0]) if row else -1

    def extraction_advance(
        self, namespace: str, session_id: str, from_seq: int, to_seq: int
    ) -> bool:
        check_mark_move(from_seq, to_seq)
        now = now_us()

        def work(conn: Conn) -> bool:
            # a concurrent UPDATE waits for the row lock and then re-checks last_seq; a
            # concurrent first INSERT waits on the key and then does nothing: one wins
            moved = conn.execute(
                "UPDATE extraction_marks SET last_seq = %s, updated_at = %s "
                "WHERE namespace = %s AND session_id = %s AND last_seq = %s",
                (to_seq, now, namespace, session_id, from_seq),
            ).rowcount
            if not moved and from_seq == -1:  # no mark yet counts as -1
                moved = conn.execute(
                    "INSERT INTO extraction_marks (namespace, session_id, last_seq, updated_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (namespace, session_id, to_seq, now),
                ).rowcount
            return bool(moved)

        return self.run(work)

    # -- leases ----------------------------------------------------------------------------
    def lease_acquire(self, namespace: str, name: str, owner: str, ttl: float) -> bool:
        now = now_us()

        def work(conn: Conn) -> bool:
            changed = conn.execute(
                "INSERT INTO leases (namespace, name, owner, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= %s",
                (namespace, name, owner, now + int(ttl * 1_000_000), now),
            ).rowcount
            return bool(changed)

        return self.run(work)

    def lease_release(self, namespace: str, name: str, owner: str) -> bool:
        def work(conn: Conn) -> bool:
            return bool(
                conn.execute(
                    "DELETE FROM leases WHERE namespace = %s AND name = %s AND owner = %s",
                    (namespace, name, owner),
                ).rowcount
            )

        return self.run(work)

    # -- jobs ------------------------------------------------------------------------------
    def job_claim(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        owner: str,
        ttl: float,
        *,
        max_attempts: int = 5,
    ) -> Job | None:
        check_job_args(ttl=ttl, max_attempts=max_attempts)
        return self.run(
            lambda conn: jobs.claim(
                conn, "%s", namespace, kind, job_key, owner, ttl, max_attempts, lock=" FOR UPDATE"
            )
        )

    def job_heartbeat(
        self, namespace: str, kind: str, job_key: str, token: str, ttl: float
    ) -> bool:
        check_job_args(ttl=ttl)
        return self.run(
            lambda conn: jobs.heartbeat(conn, "%s", namespace, kind, job_key, token, ttl)
        )

    def job_complete(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        token: str,
        *,
        input_watermark: str | None,
        spend: Spend | None = None,
    ) -> bool:
        return self.run(
            lambda conn: jobs.complete(
                conn, "%s", namespace, kind, job_key, token, input_watermark, spend
            )
        )

    def job_fail(
        self,
        namespace: str,
        kind: str,
        job_key: str,
        token: str,
        error: str,
        *,
        retry_in: float,
        spend: Spend | None = None,
    ) -> bool:
        check_job_args(retry_in=retry_in)
        return self.run(
            lambda conn: jobs.fail(
                conn, "%s", namespace, kind, job_key, token, error, retry_in, spend
            )
        )

    def job_release(
        self, namespace: str, kind: str, job_key: str, token: str, *, spend: Spend | None = None
    ) -> bool:
        return self.run(
            lambda conn: jobs.release(conn, "%s", namespace, kind, job_key, token, spend)
        )

    def job_reset(self, namespace: str, kind: str, job_key: str) -> bool:
        return self.run(lambda conn: jobs.reset(conn, "%s", namespace, kind, job_key))

    def job_get(self, namespace: str, kind: str, job_key: str) -> Job | None:
        return self.read(lambda conn: jobs.get(conn, "%s", namespace, kind, job_key))

    def job_list(
        self, namespace: str, *, kind: str | None = None, status: str | None = None
    ) -> list[Job]:
        return self.read(lambda conn: jobs.list_jobs(conn, "%s", namespace, kind, status))

    # -- spend ledger and consolidation scopes ---------------------------------------------
    def spend_add(self, namespace: str, day: str, scope: str, spend: Spend) -> None:
        check_day(day)
        self.run(lambda conn: jobs.spend_add(conn, "%s", namespace, day, scope, spend))

    def spend_list(
        self, namespace: str, *, since: str | None = None, scope: str | None = None
    ) -> list[SpendDay]:
        return self.read(lambda conn: jobs.spend_list(conn, "%s", namespace, since, scope))

    def scope_put(
        self, namespace: str, scope: str, *, enabled: bool, session_prefix: str | None
    ) -> ScopeSettings:
        return self.run(
            lambda conn: jobs.scope_put(conn, "%s", namespace, scope, enabled, session_prefix)
        )

    def scope_get(self, namespace: str, scope: str) -> ScopeSettings | None:
        return self.read(lambda conn: jobs.scope_get(conn, "%s", namespace, scope))

    def scope_list(self, namespace: str) -> list[ScopeSettings]:
        return self.read(lambda conn: jobs.scope_list(conn, "%s", namespace))


# -- helpers -------------------------------------------------------------------------------


def describe(url: str) -> str:
    """``user@host:port/dbname`` of a URL, without the password (for messages)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unparseable PostgreSQL URL)"
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or "")
    dbname = str(params.get("dbname") or user or "?")
    return f"{user + '@' if user else ''}{host}:{port}/{dbname}"


def connect_error(exc: psycopg.OperationalError, where: str) -> StoreUnavailableError:
    """An actionable error for a failed connection attempt."""
    text = str(exc).strip()
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        reason = "the server rejected the user name or password; check the credentials in the URL"
    elif "connection refused" in lowered:
        reason = (
            "connection refused: is PostgreSQL running and listening on that host and port? "
            "Check the host and port in the URL"
        )
    elif "does not exist" in lowered and "database" in lowered:
        reason = "the database does not exist; create it (createdb) or fix the name in the URL"
    elif "timeout" in lowered or "timed out" in lowered:
        reason = "the connection attempt timed out; check the host, port and network path"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        reason = "the host name does not resolve; check the host in the URL"
    elif "too many" in lowered and "connections" in lowered:
        reason = (
            "the server has no connection slots left; lower the pool size or raise max_connections"
        )
    else:
        reason = "check that the server is up and the URL is right"
    last_line = text.splitlines()[-1] if text else "?"
    return StoreUnavailableError(
        f"cannot connect to PostgreSQL at {where}: {reason} (server said: {last_line})"
    )


def _connection_lost(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _pgvector_version(conn: Conn) -> tuple[int, ...]:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    try:
        return tuple(int(p) for p in str(row[0]).split(".")[:3]) if row else (0,)
    except ValueError:  # pragma: no cover - an unusual version string
        return (0,)


def _session_info(row: Sequence[Any]) -> SessionInfo:
    return SessionInfo(
        namespace=row[0],
        session_id=row[1],
        created_at=datetime_from_us(row[2]),
        updated_at=datetime_from_us(row[3]),
        item_count=int(row[4]),
    )
