"""Issue 14, sessions: whether an item can be read with orjson alone is decided when it is
written (``session_items.plain``), rows written before that flag still read back exactly, and
async writes run on one writer thread per SQLite database. Run on every backend."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from engramdb import AsyncSession, Session, validation
from engramdb.store import Store, open_store
from engramdb.store.sqlite import LATEST_VERSION, SQLiteStore
from tests.conftest import Backend

DATA = Path(__file__).resolve().parents[1] / "data"

# what the big-integer search exists for: integers orjson cannot hold (it would return floats),
# at and around the 64-bit edges, plus floats at their limits and long digit runs in strings
SPECIAL: list[dict[str, Any]] = [
    {"ints": [2**64, -(2**70), 12345678901234567890123, 9007199254740993]},
    {"edges": [2**63, 2**64 - 1, -(2**63), -(2**63) - 1]},
    {"edges": [2**64, -(2**64)]},
    {"huge": 10**400, "negative": -(10**300)},
    {"nested": {"a": [{"b": 2**65}], "c": "plain"}},
]
PLAIN: list[dict[str, Any]] = [
    {"role": "user", "content": "hello"},
    {"many": [{"i": i} for i in range(100)]},  # more than 64 brackets, shallow
    {"n": 2**63 - 1, "m": -(2**63), "u": 2**64 - 1},  # 64-bit integers orjson reads exactly
    {"digits": "12345678901234567890", "f": 1.2345678901234567},  # long digit runs, not ints
    {"floats": [1e-300, 1.7976931348623157e308, 5e-324, -0.0, 0.1, 1e16]},
]


def plain_flags(backend: Backend, namespace: str, session_id: str) -> list[Any]:
    """The stored ``plain`` column of a session's items, oldest first (None: no flag)."""
    return [
        row[0]
        for row in raw(
            backend,
            "SELECT plain FROM session_items WHERE namespace = ? AND session_id = ? ORDER BY seq",
            (namespace, session_id),
        )
    ]


def raw(backend: Backend, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement directly on the backend's database (``?`` placeholders)."""
    if backend.name == "sqlite":
        with sqlite3.connect(Path(backend.target) / "engram.db") as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(backend.target, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def as_text(items: list[Any]) -> list[str]:
    return [json.dumps(i, ensure_ascii=False) for i in items]


def test_issue14_sessions_plain_flag_is_decided_when_written(
    backend: Backend, store: Store
) -> None:
    session = Session("flags", store)
    session.add_items([*PLAIN, *SPECIAL])
    flags = [bool(f) for f in plain_flags(backend, "default", "flags")]
    assert flags == [True] * len(PLAIN) + [False] * len(SPECIAL)
    # an item too deep to read (only an older engramdb could store one) is never plain
    store.session_add("default", "flags", ['{"a":' * 300 + "1" + "}" * 300])
    assert plain_flags(backend, "default", "flags")[-1] in (0, False)
    store.session_clear("default", "flags")
    # every read path returns the special values exactly, mixed with plain ones or alone
    mixed = [PLAIN[0], SPECIAL[0], PLAIN[1], SPECIAL[1], *SPECIAL[2:], PLAIN[2]]
    session.add_items(mixed)
    for got in (session.get_items(), session.get_items(limit=len(mixed))):
        assert as_text(got) == as_text(mixed)
    assert as_text(session.get_items(limit=2)) == as_text(mixed[-2:])
    assert as_text(asyncio.run(AsyncSession("flags", store).get_items(limit=3))) == as_text(
        mixed[-3:]
    )
    popped = [session.pop_item() for _ in mixed]
    assert as_text(popped) == as_text(mixed[::-1])


def test_issue14_sessions_rows_without_the_flag_read_back_exactly(
    backend: Backend, store: Store
) -> None:
    session = Session("old", store)
    session.add_items([*PLAIN, *SPECIAL])
    # as rows written before the flag existed: NULL, so the careful path decides
    raw(backend, "UPDATE session_items SET plain = NULL WHERE session_id = ?", ("old",))
    assert plain_flags(backend, "default", "old") == [None] * (len(PLAIN) + len(SPECIAL))
    session.add_items([PLAIN[0], SPECIAL[0]])  # new rows beside the old ones
    expected = [*PLAIN, *SPECIAL, PLAIN[0], SPECIAL[0]]
    assert as_text(session.get_items()) == as_text(expected)
    assert as_text(session.get_items(limit=4)) == as_text(expected[-4:])
    assert as_text([session.pop_item() for _ in range(3)]) == as_text(expected[::-1][:3])


def test_issue14_sessions_a_page_of_plain_items_is_not_searched_for_big_numbers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = Session("fast", store)
    session.add_items([{"role": "user", "content": f"message {n}"} for n in range(60)])
    searched: list[int] = []

    class Counting:
        def search(self, text: str) -> re.Match[str] | None:
            searched.append(len(text))
            return re.compile(r"\d{19}").search(text)

    monkeypatch.setattr(validation, "LONG_NUMBER", Counting())
    page = session.get_items(limit=50)
    assert [i["content"] for i in page] == [f"message {n}" for n in range(10, 60)]
    assert asyncio.run(AsyncSession("fast", store).get_items(limit=50)) == page
    assert session.pop_item() == {"role": "user", "content": "message 59"}
    assert searched == []  # decided when written: reading needs no search


def test_issue14_sessions_a_v1_database_with_big_integers_reads_back_exactly(
    tmp_path: Path,
) -> None:
    """Rows written with the old encoding, before the flag's migration, in a real old file."""
    shutil.copy(DATA / "engram-v1.db", tmp_path / "engram.db")
    with sqlite3.connect(tmp_path / "engram.db") as conn:  # still schema version 1 here
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        (next_seq,) = conn.execute(
            "SELECT next_seq FROM sessions WHERE session_id = 'old-chat'"
        ).fetchone()
        texts = [json.dumps(i, ensure_ascii=False, separators=(",", ":")) for i in SPECIAL]
        conn.executemany(
            "INSERT INTO session_items (namespace, session_id, seq, data, created_at) "
            "VALUES ('default', 'old-chat', ?, ?, 0)",
            [(next_seq + n, text) for n, text in enumerate(texts)],
        )
        conn.execute(
            "UPDATE sessions SET next_seq = next_seq + ?, item_count = item_count + ? "
            "WHERE session_id = 'old-chat'",
            (len(texts), len(texts)),
        )
    store = open_store(tmp_path)
    session = Session("old-chat", store)
    items = session.get_items()
    assert [i.get("content") for i in items[:3]] == [f"v1 message {n}" for n in range(3)]
    assert as_text(items[3:]) == as_text(SPECIAL)
    assert as_text(session.get_items(limit=len(SPECIAL))) == as_text(SPECIAL)
    assert as_text([session.pop_item(), session.pop_item()]) == as_text(SPECIAL[::-1][:2])
    with sqlite3.connect(tmp_path / "engram.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        flags = [r[0] for r in conn.execute("SELECT plain FROM session_items ORDER BY seq")]
    assert flags == [None] * (3 + len(SPECIAL) - 2)  # the migration rewrote nothing
    store.close()


def record_threads(store: SQLiteStore, threads: list[str]) -> None:
    """Make the store note the thread each session write runs on."""
    for name in ("session_add", "session_pop", "session_clear"):
        method = getattr(store, name)

        def recording(*args: Any, _method: Any = method) -> Any:
            threads.append(threading.current_thread().name)
            return _method(*args)

        setattr(store, name, recording)


def test_issue14_sessions_async_writes_run_in_place_or_on_one_writer_thread(
    tmp_path: Path,
) -> None:
    """Every async write to one SQLite database, from any session or store object open on
    it, runs in place on the event loop (nobody else writing) or on the one writer thread of
    the database (and so its one connection): never on a rotating pool of threads."""
    stores = [SQLiteStore(tmp_path / "engram.db"), SQLiteStore(tmp_path / "engram.db")]
    threads: list[str] = []
    for s in stores:
        record_threads(s, threads)

    async def work(n: int) -> None:
        session = AsyncSession(f"s{n % 4}", stores[n % 2])
        await session.add_items([{"n": n}, {"n": n + 1}])
        await session.pop_item()
        if n % 5 == 0:
            await session.clear_session()
        await session.replace_items([{"n": n}])

    async def main() -> str:
        await asyncio.gather(*(work(n) for n in range(24)))
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert len(threads) >= 24 * 3
    assert {t for t in threads if t != loop_thread} <= {
        t for t in threads if t.startswith("engramdb-writer")
    }
    assert len({t for t in threads if t != loop_thread}) <= 1
    for n in range(4):
        assert len(Session(f"s{n}", stores[0]).get_items()) == 1
    for s in stores:
        s.close()


def test_issue14_sessions_a_write_waiting_for_the_lock_never_blocks_the_event_loop(
    tmp_path: Path,
) -> None:
    """While another process holds the write lock, an async write moves to the writer
    thread at once (no wait on the loop), and lands when the lock is released."""
    store = SQLiteStore(tmp_path / "engram.db")
    threads: list[str] = []
    record_threads(store, threads)
    session = AsyncSession("locked", store)

    async def main() -> None:
        await session.add_items([{"n": 0}])  # uncontended: in place
        blocker = sqlite3.connect(tmp_path / "engram.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(session.add_items([{"n": 1}]))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the write waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not write.done()
        blocker.execute("ROLLBACK")
        blocker.close()
        await write

    asyncio.run(main())
    assert threads[0] == threading.main_thread().name
    assert threads[-1].startswith("engramdb-writer")
    assert Session("locked", store).get_items() == [{"n": 0}, {"n": 1}]
    store.close()


def test_issue14_sessions_full_durability_writes_never_run_on_the_loop(tmp_path: Path) -> None:
    """With durability="full" every commit waits for the disk: never on the event loop."""
    store = SQLiteStore(tmp_path / "engram.db", durability="full")
    threads: list[str] = []
    record_threads(store, threads)

    async def main() -> None:
        session = AsyncSession("full", store)
        await session.add_items([{"n": 1}])
        assert await session.pop_item() == {"n": 1}

    asyncio.run(main())
    assert len(threads) == 2 and all(t.startswith("engramdb-writer") for t in threads)
    store.close()


def test_issue14_sessions_writes_in_place_leave_checkpoints_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    checkpoints: list[str] = []
    checkpoint = store._checkpoint_wal

    def recording() -> None:
        checkpoints.append(threading.current_thread().name)
        checkpoint()

    monkeypatch.setattr(store, "_checkpoint_wal", recording)

    async def main() -> None:
        session = AsyncSession("wal", store)
        for n in range(128):  # ~9 MB through the WAL, past the 4 MB threshold
            await session.add_items([{"n": n, "text": "x" * 70_000}])

    asyncio.run(main())
    store.write_executor.submit(lambda: None).result()  # the queued checkpoint has run
    assert checkpoints and all(t.startswith("engramdb-writer") for t in checkpoints)
    assert len(Session("wal", store).get_items()) == 128
    store.close()


def test_issue14_sessions_pages_keep_their_order_across_gaps(store: Store) -> None:
    """A page is read in one piece (SQLite: one concatenated row): items come back oldest
    first for every limit, across the gaps pops leave in the sequence numbers."""
    session = Session("gaps", store)
    expected: list[dict[str, Any]] = []
    for n in range(40):
        batch = [{"n": n, "k": k} for k in range(n % 4 + 1)]
        session.add_items(batch)
        expected += batch
        if n % 3 == 0:  # leave a gap: the popped number is never reused
            assert session.pop_item() == expected.pop()
    assert session.get_items() == expected
    for limit in (1, 2, 7, 50, len(expected) - 1, len(expected), len(expected) + 5):
        assert session.get_items(limit=limit) == expected[-limit:]
        assert asyncio.run(AsyncSession("gaps", store).get_items(limit=limit)) == expected[-limit:]


def test_issue14_sessions_a_page_longer_than_sqlite_strings_reads_row_by_row(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    session = Session("long", store)
    items = [{"n": n, "text": "x" * 400} for n in range(10)]
    session.add_items(items)
    # one item fits in SQLite's longest string here, the whole page does not
    store._conn().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    assert session.get_items() == items
    assert session.get_items(limit=5) == items[-5:]
    store.close()


def test_issue14_sessions_a_blocking_call_after_async_ones_waits_for_the_lock(
    tmp_path: Path,
) -> None:
    """Async calls run in place without waiting for locks; a synchronous call on the same
    thread afterwards waits for the lock as always (the connection's busy timeout is back)."""
    store = SQLiteStore(tmp_path / "engram.db")

    async def warm() -> None:
        session = AsyncSession("mixed", store)
        await session.add_items([{"n": 0}])
        assert await session.get_items(limit=5) == [{"n": 0}]

    asyncio.run(warm())  # on this thread, as the synchronous calls below
    blocker = sqlite3.connect(tmp_path / "engram.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    locked = threading.Event()

    def release_soon() -> None:
        locked.wait(10)
        blocker.execute("ROLLBACK")

    releaser = threading.Timer(0.2, lambda: (locked.set(), release_soon()))
    releaser.start()
    Session("mixed", store).add_items([{"n": 1}])  # waits for the rollback, then writes
    releaser.join()
    blocker.close()
    assert Session("mixed", store).get_items() == [{"n": 0}, {"n": 1}]
    assert asyncio.run(AsyncSession("mixed", store).pop_item()) == {"n": 1}
    store.close()
