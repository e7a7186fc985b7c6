"""SQLite implementation of the Store protocol.

One database file, WAL mode. Each thread gets its own connection (SQLite releases the GIL
while it works, so readers run in parallel); a forked child opens fresh connections. Writes
run in ``BEGIN IMMEDIATE`` transactions so concurrent writers - threads or processes - queue
on SQLite's write lock (``busy_timeout``) instead of failing.

Durability: ``synchronous=NORMAL`` by default. In WAL mode a committed transaction survives
the process being killed (``kill -9``); only an OS crash or power loss can drop the last
commits. Pass ``durability="full"`` to fsync on every commit and survive power loss too.

Identity: a database records a random id in its header (``PRAGMA application_id``) and in a
sidecar file next to it (``engram.id`` beside ``engram.db``). Opening a path whose sidecar
exists but whose database file is missing, new or another database is refused unless
``recreate=True``: a deleted database is never silently replaced by an empty one. While the
store is open, each write checks, just before COMMIT, that the path still names the file it
opened (device and inode); a file deleted or replaced under a running process makes every
write fail with :class:`~engramdb.errors.StoreUnavailableError` instead of being acknowledged
into a file nobody will read again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from ...errors import StoreError, StoreUnavailableError
from ...types import Job, ScopeSettings, SessionInfo, Spend, SpendDay, datetime_from_us, now_us
from ...validation import decode_item, decode_items, decode_page, plain_items
from .. import jobs
from ..rows import check_day, check_job_args, check_mark_move
from .access import AccessMixin
from .memories import MemoriesMixin
from .migrations import migrate
from .transfer import TransferMixin

Durability = Literal["normal", "full"]
_T = TypeVar("_T")


class _WouldBlock(StoreError):
    """A call inside ``run_inline`` would have had to wait for another connection's lock:
    it is undone (its transaction rolled back) and runs elsewhere."""


# A session's items as one JSON array text (_PAGE_LAST: the newest ``limit``, newest first;
# _PAGE_ALL: all, oldest first), with their count and whether every one is plain (see
# validation.plain_item). From SQLite 3.44 the aggregate's order is stated (ORDER BY inside
# it); before, rows reach the aggregate in the order its subquery delivers them (a subquery
# with LIMIT is not flattened into an aggregate query, and the primary key gives the order
# without a sort), which the tests check.
if sqlite3.sqlite_version_info >= (3, 44, 0):  # pragma: no cover - depends on the build
    _PAGE_LAST = (
        "SELECT '[' || group_concat(data, ',' ORDER BY seq DESC) || ']', count(*), "
        "min(coalesce(plain, 0)) FROM (SELECT seq, data, plain FROM session_items "
        "WHERE namespace = ? AND session_id = ? ORDER BY seq DESC LIMIT ?)"
    )
    _PAGE_ALL = (
        "SELECT '[' || group_concat(data, ',' ORDER BY seq) || ']', count(*), "
        "min(coalesce(plain, 0)) FROM session_items WHERE namespace = ? AND session_id = ?"
    )
else:
    _PAGE_LAST = (
        "SELECT '[' || group_concat(data, ',') || ']', count(*), min(coalesce(plain, 0)) "
        "FROM (SELECT seq, data, plain FROM session_items WHERE namespace = ? "
        "AND session_id = ? ORDER BY seq DESC LIMIT ?)"
    )
    _PAGE_ALL = (
        "SELECT '[' || group_concat(data, ',') || ']', count(*), min(coalesce(plain, 0)) "
        "FROM (SELECT seq, data, plain FROM session_items WHERE namespace = ? "
        "AND session_id = ? ORDER BY seq LIMIT -1)"
    )


_WRITERS: dict[tuple[int, str], ThreadPoolExecutor] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_for(file: Path) -> ThreadPoolExecutor:
    """The one writer thread of this process for the database ``file`` (a forked child gets
    its own): async faces run their writes there, so they never queue on SQLite's lock
    against each other and always use the same, warm connection."""
    key = (os.getpid(), str(file))
    with _WRITERS_LOCK:
        writer = _WRITERS.get(key)
        if writer is None:
            writer = _WRITERS[key] = ThreadPoolExecutor(1, thread_name_prefix="engramdb-writer")
        return writer


class SQLiteStore(MemoriesMixin, AccessMixin, TransferMixin):
    """Store backed by one SQLite database file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        recreate: bool = False,
        durability: Durability = "normal",
        busy_timeout: float = 30.0,
    ) -> None:
        """Open (or, with ``create``, create) the database at ``path``.

        ``recreate=True`` accepts that the database this path held is gone or was replaced:
        a missing file is created empty, and the file found there becomes this path's
        database (its id is written to the sidecar file).
        """
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        # WAL readers never wait for writers, so a bounded read is cheaper to run in place than
        # to hand to a worker thread; async faces may call bounded reads on the event loop.
        self.inline_reads = True
        self.native_vector_search = False  # engramdb.search.vectors indexes SQLite's vectors
        self._write_executor: Executor | None = None
        self._inline_writes = 0
        self._checkpoint_pending = False
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', got {durability!r}")
        self._synchronous = durability.upper()
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        # the change counter (vector_version): a connection that never writes, whose
        # ``PRAGMA data_version`` moves whenever another connection or process commits
        self._probe: sqlite3.Connection | None = None
        self._probe_pid = 0
        self._probe_seen = 0
        self._probe_count = 0
        self._probe_lock = threading.Lock()
        self._marker = self.path.with_suffix(".id")
        self._file = self.path.absolute()  # what the identity checks stat, whatever the cwd
        self._wal = Path(f"{self._file}-wal")
        self._uri = "file:" + urllib.parse.quote(str(self._file))
        self._may_create = False
        self._identity: tuple[int, int] | None = None
        with self._translate_errors():
            self._open_database(create=create, recreate=recreate)

    # -- connections -----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:  # before the thread's kept connection, which close() closed
            raise StoreError("this store has been closed")
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            if local.inline_mode and not local.nowait:
                self._leave_inline_mode(conn)
            return conn
        conn = self._connect()
        local.conn, local.pid = conn, os.getpid()
        local.inline_mode = False  # see run_inline
        if not hasattr(local, "nowait"):
            local.nowait = False
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _data_version(self) -> int:
        """A counter that moves whenever any connection (of this process or another) has
        committed since the last call: ``PRAGMA data_version`` on a connection kept for it
        alone, which never writes. No transaction, no table read."""
        with self._probe_lock, self._translate_errors():
            if self._probe is None or self._probe_pid != os.getpid():
                if self._closed:
                    raise StoreError("this store has been closed")
                probe = self._connect()
                with self._connections_lock:
                    self._connections.append(probe)
                self._probe, self._probe_pid = probe, os.getpid()
                self._probe_seen = -1  # a new connection: count a change
            (version,) = self._probe.execute("PRAGMA data_version").fetchone()
            if version != self._probe_seen:
                self._probe_seen = version
                self._probe_count += 1
            return self._probe_count

    @property
    def write_executor(self) -> Executor:
        """Where async code should run this store's writes: one thread per database file and
        process (shared by every store open on the file), keeping its own connection, so an
        async write costs one thread hop on a warm connection (see ``engramdb.sessions``)."""
        if self._write_executor is None:
            self._write_executor = _writer_for(self._file)
        return self._write_executor

    def _connect(self) -> sqlite3.Connection:
        # Only the first connection of a new database may create the file: a later one finding
        # it gone must fail, not quietly start an empty database in its place.
        self._check_identity()
        with self._translate_errors():
            conn = sqlite3.connect(
                f"{self._uri}?mode={'rwc' if self._may_create else 'rw'}",
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # close() may run on another thread
            )
            try:
                self._set_wal(conn)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left
                conn.execute("PRAGMA cache_size=-16000")
            except BaseException:
                conn.close()
                raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access; a process opening the same new
        # file at the same time can make it fail with "locked" without calling the busy handler.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    # -- identity ----------------------------------------------------------------------------
    def _open_database(self, *, create: bool, recreate: bool) -> None:
        recorded = self._read_marker()
        # SQLite creates the database file before its -wal and -shm: look at those first, so
        # a database another process is creating right now is not taken for a deleted one.
        leftovers = [side for side in self._side_files() if os.path.lexists(side)]
        exists = self.path.exists()
        if not exists and (recorded is not None or leftovers) and not recreate:
            held = (
                f"{self._marker.name} beside it says it held engramdb database {recorded:08x}"
                if recorded is not None
                else f"{leftovers[0].name} beside it is left from a database"
            )
            raise StoreUnavailableError(
                f"the database file {self.path} is missing, but {held}: it was deleted or "
                "moved. Restore it (with its -wal file) from a backup, or start a new empty "
                "database with `engramdb serve --recreate` (library: open_store(..., "
                "recreate=True))"
            )
        if not exists and not create and not recreate:
            raise StoreUnavailableError(
                f"no engramdb database at {self.path}; check the path (--data-dir) or create one "
                "by writing to it first"
            )
        if not exists:
            # a new database must not replay the write-ahead log of the one that was deleted;
            # keep the old files aside, they may hold the only copy of its last writes
            stamp = time.strftime("%Y%m%dT%H%M%S")
            try:
                for side in leftovers:
                    os.replace(side, side.with_name(f"{side.name}.stale-{stamp}"))
            except OSError as exc:
                raise StoreUnavailableError(
                    f"cannot move the old {exc.filename} aside: {exc.strerror}"
                ) from None
        self._check_side_files()
        self._may_create = not exists
        try:
            conn = self._conn()
        finally:
            self._may_create = False
        database_id = self._claim_identity(conn, recorded, recreate=recreate)
        migrate(conn)
        if database_id != recorded:
            self._write_marker(database_id)
        st = os.stat(self._file)
        self._identity = (st.st_dev, st.st_ino)

    def _side_files(self) -> list[Path]:
        return [Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm")]

    def _claim_identity(
        self, conn: sqlite3.Connection, recorded: int | None, *, recreate: bool
    ) -> int:
        """The database's id; a database without one (new, or made before ids) gets one."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            database_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            if recorded is not None and database_id != recorded and not recreate:
                if database_id:
                    what = f"another database (id {database_id:08x})"
                elif _has_tables(conn):
                    what = "a database with no engramdb id (another one, or an old copy)"
                else:
                    what = "a new, empty database"
                raise StoreUnavailableError(
                    f"{self.path} is {what}, but {self._marker.name} beside it says this path "
                    f"held engramdb database {recorded:08x}: the file was deleted or replaced. "
                    "Restore the right file from a backup, or accept this one with "
                    "`engramdb serve --recreate` (library: open_store(..., recreate=True))"
                )
            if database_id == 0:
                database_id = secrets.randbelow(2**31 - 1) + 1  # a positive 32-bit integer
                conn.execute(f"PRAGMA application_id = {database_id}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return database_id

    def _read_marker(self) -> int | None:
        try:
            text = self._marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreUnavailableError(f"cannot read {self._marker}: {exc}") from None
        try:
            return int(text.split("\n", 1)[0].split()[-1], 16)
        except (ValueError, IndexError):
            raise StoreUnavailableError(
                f"{self._marker} is not an engramdb id file (it should hold the id of "
                f"{self.path.name}); restore it, or remove it if {self.path.name} is the "
                "right database"
            ) from None

    def _write_marker(self, database_id: int) -> None:
        text = (
            f"engramdb database id {database_id:08x}\n"
            f"# {self.path.name} beside this file holds the same id. If {self.path.name} goes\n"
            "# missing, engramdb refuses to start a new empty database in its place unless\n"
            "# told to (engramdb serve --recreate). Keep this file with the database.\n"
        )
        temporary = self._marker.with_name(f".{self._marker.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self._marker)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StoreUnavailableError(
                f"cannot write {self._marker}: {exc.strerror}; check that the directory is "
                "writable by this user"
            ) from None

    def _check_identity(self) -> None:
        """Raise StoreUnavailableError if the path no longer names the file this store opened.

        SQLite keeps writing to an open file even after it is deleted or replaced: writes
        would be acknowledged and then lost. One ``stat`` call (microseconds) per write."""
        expected = self._identity
        if expected is None:
            return
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            raise StoreUnavailableError(
                f"the database file {self.path} was deleted while engramdb had it open; writes "
                "are refused so that none is acknowledged and then lost. Restore the file from "
                "a backup and restart, or restart with --recreate to start a new database"
            ) from None
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot check the database file {self.path}: {exc.strerror}"
            ) from None
        if (st.st_dev, st.st_ino) != expected:
            raise StoreUnavailableError(
                f"the database file {self.path} was replaced by another file while engramdb had "
                "it open; writes are refused so that none goes to the old, unlinked file. "
                "Restart engramdb to open the file now at that path"
            )

    def _check_side_files(self) -> None:
        problem = self._side_file_problem()
        if problem:
            raise StoreUnavailableError(problem)

    def _side_file_problem(self) -> str | None:
        """What is wrong with the -wal/-shm files SQLite needs to read and write, if anything."""
        for side in self._side_files():
            if not os.path.lexists(side):
                continue
            try:
                st = os.stat(side)
            except OSError as exc:
                return (
                    f"{side} cannot be opened ({exc.strerror}): SQLite needs to read and write "
                    "it. Remove it (only while no process has the database open)"
                )
            if not stat.S_ISREG(st.st_mode):
                return (
                    f"{side} is not a regular file: SQLite needs to read and write it. Remove "
                    "it (only while no process has the database open)"
                )
            if not os.access(side, os.R_OK | os.W_OK):
                return (
                    f"{side} is not writable by this user: SQLite needs to read and write it. "
                    "Fix its owner or permissions"
                )
        return None

    def ping(self) -> None:
        """Raise StoreUnavailableError if the database file is gone, replaced or unreadable."""
        self._check_identity()
        with self._read() as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def close(self) -> None:
        self._scrub_at_close()  # a batched forget merge still waiting runs now
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            # Another thread may be mid-statement; its connection then dies with it.
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from exc

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        message = str(exc)
        if self._local.__dict__.get("nowait") and ("locked" in message or "busy" in message):
            return _WouldBlock(message)
        if "file is not a database" in message or "malformed" in message:
            return StoreUnavailableError(
                f"{self.path} is not an engramdb database (SQLite said: {message}); "
                "point --data-dir at an engramdb data directory"
            )
        if (
            "readonly" in message
            or "unable to open" in message
            or "read-only" in message
            or ("disk I/O error" in message)
        ):
            problem = self._side_file_problem()
            if problem:
                return StoreUnavailableError(f"{problem} (SQLite said: {message})")
        if "readonly" in message or "unable to open" in message or "read-only" in message:
            return StoreUnavailableError(
                f"cannot open {self.path} for writing (SQLite said: {message}); check that the "
                "directory exists and is writable by this user"
            )
        if "locked" in message or "busy" in message:
            return StoreError(
                f"the database {self.path} stayed locked by another writer for more than "
                f"{self._busy_timeout:g}s; retry, or raise busy_timeout"
            )
        return StoreError(f"SQLite error on {self.path}: {message}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._translate_errors():
            yield self._conn()

    def _atomic_depth(self) -> int:
        local = self._local
        return int(getattr(local, "depth", 0)) if getattr(local, "pid", None) == os.getpid() else 0

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction on this thread's connection for the block: every
        store call the block makes on this thread joins it (nested blocks too)."""
        local = self._local
        if self._atomic_depth():
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        with self._translate_errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        local.depth = 1
        try:
            yield
        except BaseException:
            local.depth = 0
            with self._translate_errors():
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        local.depth = 0
        with self._translate_errors():
            try:
                self._check_identity()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def run_inline(
        self, func: Callable[..., _T], *args: Any, write: bool = True
    ) -> tuple[bool, _T | None]:
        """Run ``func(*args)`` (store calls on this thread, one transaction) right here if
        that cannot block: ``(True, result)``; else ``(False, None)``, nothing written.

        Async faces try this first, so an uncontended call costs no thread hop. What could
        block is another connection's lock (this thread's connection then waits for nothing:
        busy timeout 0, and a call that meets a lock is rolled back and refused), an fsync on
        commit (``durability="full"``: writes refused) and a WAL checkpoint (none runs here;
        one runs on :attr:`write_executor` once the WAL passes ~4 MB). A write inside
        :meth:`atomic` is refused too. The connection keeps these settings until this thread
        next makes a call that may wait, so alternating async calls pay nothing to switch.
        """
        if write and (self._synchronous != "NORMAL" or self._atomic_depth()):
            return False, None
        local = self._local
        local.nowait = True
        try:
            conn = self._conn()
            if not local.inline_mode:
                with self._translate_errors():
                    conn.execute("PRAGMA busy_timeout = 0")
                    conn.execute("PRAGMA wal_autocheckpoint = 0")
                local.inline_mode = True
            return True, func(*args)
        except _WouldBlock:
            return False, None
        finally:
            local.nowait = False
            if write:
                self._checkpoint_soon()

    def _leave_inline_mode(self, conn: sqlite3.Connection) -> None:
        """This thread's next call may wait: the connection's usual busy timeout and
        automatic checkpoints again."""
        with self._translate_errors():
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA wal_autocheckpoint = 1000")
        self._local.inline_mode = False

    def _checkpoint_soon(self) -> None:
        """Once the write-ahead log passes ~4 MB (SQLite's own automatic threshold: 1000
        pages), checkpoint it on the writer thread (PASSIVE: waits for no one)."""
        self._inline_writes += 1
        if self._inline_writes % 64 or self._checkpoint_pending:
            return
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        if size > 4 * 1024 * 1024:
            self._checkpoint_pending = True
            self.write_executor.submit(self._checkpoint_wal)

    def _checkpoint_wal(self) -> None:
        try:
            with self._read() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except StoreError:
            pass  # the next automatic checkpoint (or the next attempt) does it
        finally:
            self._checkpoint_pending = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._translate_errors():
            conn = self._conn()
            if self._atomic_depth():
                # inside atomic(): join its transaction; a failure undoes this call alone
                conn.execute("SAVEPOINT engram_write")
                try:
                    yield conn
                    conn.execute("RELEASE engram_write")
                except BaseException:
                    conn.execute("ROLLBACK TO engram_write")
                    conn.execute("RELEASE engram_write")
                    raise
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                self._check_identity()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- sessions --------------------------------------------------------------------------
    def session_add(self, namespace: str, session_id: str, encoded_items: Sequence[str]) -> None:
        if not encoded_items:
            return
        now, count = now_us(), len(encoded_items)
        with self._write() as conn:
            (next_seq,) = conn.execute(
                "INSERT INTO sessions (namespace, session_id, created_at, updated_at, item_count, "
                "next_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, session_id) DO UPDATE "
                "SET updated_at = excluded.updated_at, "
                "item_count = item_count + excluded.item_count, "
                "next_seq = next_seq + excluded.next_seq RETURNING next_seq",
                (namespace, session_id, now, now, count, count),
            ).fetchone()
            first = next_seq - count
            conn.executemany(
                "INSERT INTO session_items (namespace, session_id, seq, data, created_at, plain) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (namespace, session_id, first + n, text, now, plain)
                    for n, (text, plain) in enumerate(
                        zip(encoded_items, plain_items(encoded_items), strict=True)
                    )
                ],
            )

    def session_get(
        self, namespace: str, session_id: str, limit: int | None
    ) -> list[dict[str, Any]]:
        if limit == 0:
            return []
        conn = self._conn()
        try:  # (not self._read(): this is the hottest read, its context managers cost ~10%)
            # the common case in one row: every item's text as one JSON array (SQLite
            # concatenates in C), read as is when every item was plain when written
            try:
                text, count, plain = conn.execute(
                    _PAGE_ALL if limit is None else _PAGE_LAST,
                    (namespace, session_id) if limit is None else (namespace, session_id, limit),
                ).fetchone()
            except sqlite3.DataError:  # longer than SQLite's longest string: row by row
                text, count, plain = None, None, 0
            if count == 0:
                return []
            if plain:
                page = decode_page(text, count)
                if page is not None:
                    if limit is not None:  # _PAGE_LAST is newest first
                        page.reverse()
                    return page
            if limit is None:
                rows = conn.execute(
                    "SELECT seq, data, plain FROM session_items WHERE namespace = ? "
                    "AND session_id = ? ORDER BY seq",
                    (namespace, session_id),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, data, plain FROM session_items WHERE namespace = ? "
                    "AND session_id = ? ORDER BY seq DESC LIMIT ?",
                    (namespace, session_id, limit),
                ).fetchall()
                rows.reverse()
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from exc
        return decode_items(rows, where=f"session {session_id!r}")

    def session_pop(self, namespace: str, session_id: str) -> dict[str, Any] | None:
        with self._write() as conn:
            row = conn.execute(
                "DELETE FROM session_items WHERE namespace = ?1 AND session_id = ?2 AND seq = "
                "(SELECT max(seq) FROM session_items WHERE namespace = ?1 AND session_id = ?2) "
                "RETURNING seq, data, plain",
                (namespace, session_id),
            ).fetchone()
            if row is None:
                return None
            # A corrupt item raises here, inside the transaction: the rollback keeps it.
            item = decode_item(
                row[1], record_id=row[0], where=f"session {session_id!r}", plain=row[2]
            )
            conn.execute(
                "UPDATE sessions SET item_count = item_count - 1, updated_at = ? "
                "WHERE namespace = ? AND session_id = ?",
                (now_us(), namespace, session_id),
            )
            return item

    def session_clear(self, namespace: str, session_id: str) -> int:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM session_items WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).rowcount
            conn.execute(
                "UPDATE sessions SET item_count = 0, updated_at = ? "
                "WHERE namespace = ? AND session_id = ?",
                (now_us(), namespace, session_id),
            )
            return int(removed)

    def session_delete(self, namespace: str, session_id: str) -> bool:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM session_items WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            )
            existed = conn.execute(
                "DELETE FROM sessions WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).rowcount
            conn.execute(
                "DELETE FROM extraction_marks WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            )
            return bool(existed)

    def session_info(self, namespace: str, session_id: str) -> SessionInfo | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
                "WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).fetchone()
        return _session_info(row) if row else None

    def session_list(
        self, namespace: str, *, limit: int = 100, before: tuple[int, str] | None = None
    ) -> list[SessionInfo]:
        query = (
            "SELECT namespace, session_id, created_at, updated_at, item_count FROM sessions "
            "WHERE namespace = ?"
        )
        params: list[Any] = [namespace]
        if before is not None:
            query += " AND (updated_at, session_id) < (?, ?)"
            params += [before[0], before[1]]
        query += " ORDER BY updated_at DESC, session_id DESC LIMIT ?"
        params.append(limit)
        with self._read() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_session_info(row) for row in rows]

    # -- extraction high-water marks -------------------------------------------------------
    def extraction_mark(self, namespace: str, session_id: str) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT last_seq FROM extraction_marks WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            ).fetchone()
        return int(row[0]) if row else -1

    def extraction_advance(
        self, namespace: str, session_id: str, from_seq: int, to_seq: int
    ) -> bool:
        check_mark_move(from_seq, to_seq)
        now = now_us()
        with self._write() as conn:  # BEGIN IMMEDIATE: one writer compares and sets at a time
            moved = conn.execute(
                "UPDATE extraction_marks SET last_seq = ?, updated_at = ? "
                "WHERE namespace = ? AND session_id = ? AND last_seq = ?",
                (to_seq, now, namespace, session_id, from_seq),
            ).rowcount
            if not moved and from_seq == -1:  # no mark yet counts as -1
                moved = conn.execute(
                    "INSERT INTO extraction_marks (namespace, session_id, last_seq, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (namespace, session_id, to_seq, now),
                ).rowcount
        return bool(moved)

    # -- leases ----------------------------------------------------------------------------
    def lease_acquire(self, namespace: str, name: str, owner: str, ttl: float) -> bool:
        now = now_us()
        with self._write() as conn:
            changed = conn.execute(
                "INSERT INTO leases (namespace, name, owner, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
                (namespace, name, owner, now + int(ttl * 1_000_000), now),
            ).rowcount
        return bool(changed)

    def lease_release(self, namespace: str, name: str, owner: str) -> bool:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM leases WHERE namespace = ? AND name = ? AND owner = ?",
                (namespace, name, owner),
            ).rowcount
        return bool(removed)

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
        with self._write() as conn:  # BEGIN IMMEDIATE: one claimer at a time
            return jobs.claim(conn, "?", namespace, kind, job_key, owner, ttl, max_attempts)

    def job_heartbeat(
        self, namespace: str, kind: str, job_key: str, token: str, ttl: float
    ) -> bool:
        check_job_args(ttl=ttl)
        with self._write() as conn:
            return jobs.heartbeat(conn, "?", namespace, kind, job_key, token, ttl)

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
        with self._write() as conn:
            return jobs.complete(conn, "?", namespace, kind, job_key, token, input_watermark, spend)

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
        with self._write() as conn:
            return jobs.fail(conn, "?", namespace, kind, job_key, token, error, retry_in, spend)

    def job_release(
        self, namespace: str, kind: str, job_key: str, token: str, *, spend: Spend | None = None
    ) -> bool:
        with self._write() as conn:
            return jobs.release(conn, "?", namespace, kind, job_key, token, spend)

    def job_reset(self, namespace: str, kind: str, job_key: str) -> bool:
        with self._write() as conn:
            return jobs.reset(conn, "?", namespace, kind, job_key)

    def job_get(self, namespace: str, kind: str, job_key: str) -> Job | None:
        with self._read() as conn:
            return jobs.get(conn, "?", namespace, kind, job_key)

    def job_list(
        self, namespace: str, *, kind: str | None = None, status: str | None = None
    ) -> list[Job]:
        with self._read() as conn:
            return jobs.list_jobs(conn, "?", namespace, kind, status)

    # -- spend ledger and consolidation scopes ---------------------------------------------
    def spend_add(self, namespace: str, day: str, scope: str, spend: Spend) -> None:
        check_day(day)
        with self._write() as conn:
            jobs.spend_add(conn, "?", namespace, day, scope, spend)

    def spend_list(
        self, namespace: str, *, since: str | None = None, scope: str | None = None
    ) -> list[SpendDay]:
        with self._read() as conn:
            return jobs.spend_list(conn, "?", namespace, since, scope)

    def scope_put(
        self, namespace: str, scope: str, *, enabled: bool, session_prefix: str | None
    ) -> ScopeSettings:
        with self._write() as conn:
            return jobs.scope_put(conn, "?", namespace, scope, enabled, session_prefix)

    def scope_get(self, namespace: str, scope: str) -> ScopeSettings | None:
        with self._read() as conn:
            return jobs.scope_get(conn, "?", namespace, scope)

    def scope_list(self, namespace: str) -> list[ScopeSettings]:
        with self._read() as conn:
            return jobs.scope_list(conn, "?", namespace)


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def _session_info(row: Sequence[Any]) -> SessionInfo:
    return SessionInfo(
        namespace=row[0],
        session_id=row[1],
        created_at=datetime_from_us(row[2]),
        updated_at=datetime_from_us(row[3]),
        item_count=int(row[4]),
    )
