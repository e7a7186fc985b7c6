"""The memory manager's runtime (issue 11, part 5): triggers, background queue, windows,
retries, flush, restarts and concurrent managers, against fake sources and processors."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engramdb.errors import InvalidInputError, LLMError
from engramdb.manager.runtime import (
    Backoff,
    ManagerClosedError,
    MemoryManager,
    Triggers,
    WindowItem,
    WindowResult,
    WindowSource,
    item_tokens,
)
from engramdb.sessions import AsyncSession, Session
from engramdb.store import Store, open_store
from engramdb.types import datetime_from_us

# -- fakes ----------------------------------------------------------------------------------


class MemSource:
    """An in-memory WindowSource with real claim / compare-and-set semantics; it outlives the
    managers that use it (a "persisted" store for restart tests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, list[WindowItem]] = {}
        self.marks: dict[str, int] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.advances: list[tuple[str, int, int]] = []
        self.seq = 0

    def append(self, session_id: str, items: Sequence[dict[str, Any]]) -> None:
        with self.lock:
            rows = self.items.setdefault(session_id, [])
            for item in items:
                self.seq += 1
                rows.append((self.seq, datetime.now(UTC), dict(item)))

    def all_seqs(self, session_id: str) -> list[int]:
        with self.lock:
            return [seq for seq, _, _ in self.items.get(session_id, [])]

    # WindowSource
    def mark(self, session_id: str) -> int:
        with self.lock:
            return self.marks.get(session_id, 0)

    def items_after(self, session_id: str, seq: int, limit: int) -> list[WindowItem]:
        with self.lock:
            return [row for row in self.items.get(session_id, []) if row[0] > seq][:limit]

    def advance(self, session_id: str, from_seq: int, to_seq: int) -> bool:
        with self.lock:
            if self.marks.get(session_id, 0) != from_seq:
                return False
            self.marks[session_id] = to_seq
            self.advances.append((session_id, from_seq, to_seq))
            return True

    def claim(self, session_id: str, owner: str, ttl: float) -> bool:
        with self.lock:
            held = self.leases.get(session_id)
            now = time.monotonic()
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self.leases[session_id] = (owner, now + ttl)
            return True

    def release(self, session_id: str, owner: str) -> None:
        with self.lock:
            if self.leases.get(session_id, ("", 0.0))[0] == owner:
                del self.leases[session_id]


class FakeSession:
    """A sync session (the Agents SDK shape) writing into a MemSource."""

    def __init__(self, session_id: str, source: MemSource) -> None:
        self.session_id = session_id
        self.source = source

    def get_items(self, limit: int | None = None) -> list[Any]:
        items = [item for _, _, item in self.source.items.get(self.session_id, [])]
        return items if limit is None else items[-limit:] if limit else []

    def add_items(self, items: list[Any]) -> None:
        self.source.append(self.session_id, items)

    def pop_item(self) -> Any:
        return None

    def clear_session(self) -> None:
        pass


class AsyncFakeSession:
    """The async shape over a MemSource."""

    def __init__(self, session_id: str, source: MemSource) -> None:
        self.session_id = session_id
        self._sync = FakeSession(session_id, source)

    async def get_items(self, limit: int | None = None) -> list[Any]:
        return self._sync.get_items(limit)

    async def add_items(self, items: list[Any]) -> None:
        await asyncio.sleep(0)
        self._sync.add_items(items)

    async def pop_item(self) -> Any:
        return None

    async def clear_session(self) -> None:
        pass


class Recorder:
    """A WindowProcessor that records windows; ``behaviour(call_index, session, items)`` may
    raise (a failing LLM) and ``gate`` may hold it (a slow LLM)."""

    def __init__(
        self,
        behaviour: Callable[[int, str, Sequence[WindowItem]], None] | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, list[int]]] = []
        self.threads: set[int] = set()
        self.ok_windows: list[tuple[str, list[int]]] = []
        self.behaviour = behaviour
        self.gate = gate
        self.entered = threading.Event()

    def process(self, session_id: str, items: Sequence[WindowItem]) -> WindowResult:
        seqs = [seq for seq, _, _ in items]
        with self.lock:
            index = len(self.calls)
            self.calls.append((session_id, seqs))
            self.threads.add(threading.get_ident())
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.behaviour is not None:
            self.behaviour(index, session_id, items)
        with self.lock:
            self.ok_windows.append((session_id, seqs))
        return WindowResult(added=len(items), none=1, tokens=10 * len(items))

    def seqs(self, session_id: str) -> list[int]:
        with self.lock:
            return [s for sid, seqs in self.ok_windows if sid == session_id for s in seqs]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def managers() -> Any:
    made: list[MemoryManager] = []

    def make(source: WindowSource, processor: Any, **kwargs: Any) -> MemoryManager:
        kwargs.setdefault("flush_at_exit", None)
        manager = MemoryManager(source, processor, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close(timeout=5)


# -- triggers -------------------------------------------------------------------------------


def test_issue11_runtime_every_n_turns_counts_user_messages(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=3))
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("a"), assistant("b")])
    session.add_items([user("c"), assistant("d"), {"type": "function_call", "name": "x"}])
    assert manager.stats().triggered == 0  # 2 turns: assistant items and tool calls don't count
    session.add_items([user("e")])
    assert manager.stats().triggered == 1
    wait_until(lambda: manager.stats().windows == 1)
    assert proc.seqs("s") == [1, 2, 3, 4, 5, 6]
    assert source.mark("s") == 6
    stats = manager.stats()
    assert (stats.items, stats.added, stats.none, stats.tokens) == (6, 6, 1, 60)


def test_issue11_runtime_token_threshold_trigger(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=None, token_threshold=100))
    session = manager.watch(FakeSession("s", source))
    for i in range(5):
        session.add_items([user(f"short {i}")])  # ~8 tokens each
    assert manager.stats().triggered == 0
    session.add_items([assistant("x" * 400)])  # ~100 tokens
    assert manager.stats().triggered == 1
    wait_until(lambda: manager.stats().windows == 1)
    assert proc.seqs("s") == [1, 2, 3, 4, 5, 6]


def test_issue11_runtime_idle_trigger_with_injected_clock(managers: Any) -> None:
    source, proc, clock = MemSource(), Recorder(), FakeClock()
    manager = managers(
        source,
        proc,
        triggers=Triggers(every_n_turns=None, idle_seconds=10),
        clock=clock,
        resolution=0.005,
    )
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("hello")])
    clock.now += 6
    session.add_items([assistant("hi")])  # activity moves the idle deadline to now + 10
    clock.now += 6  # 12 s after the first item, 6 s after the last: not idle yet
    time.sleep(0.05)  # let the timer thread look at the clock (absence is also checked below)
    assert manager.stats().triggered == 0
    clock.now += 5  # 11 s after the last item
    wait_until(lambda: manager.stats().windows == 1)
    assert proc.seqs("s") == [1, 2]
    assert manager.stats().triggered == 1


def test_issue11_runtime_watched_session_close_extracts(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=None, on_close=True))
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("I live in Lyon"), assistant("noted")])
    assert manager.stats().triggered == 0
    assert session.close() is True
    assert proc.seqs("s") == [1, 2]  # done by the time close() returned
    assert source.mark("s") == 2


def test_issue11_runtime_close_without_on_close_does_not_extract(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=None, on_close=False))
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("x")])
    session.close()
    assert proc.calls == []
    assert source.mark("s") == 0


def test_issue11_runtime_extract_now_returns_windows(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=None))
    source.append("unwatched", [user("a"), assistant("b"), user("c")])
    report = manager.extract_now("unwatched")
    assert report.ok and report.errors == {}
    assert [(w.from_seq, w.to_seq, w.items, w.applied) for w in report.windows] == [(0, 3, 3, True)]
    assert report.windows[0].result.added == 3
    # nothing new: ok, no window
    again = manager.extract_now("unwatched")
    assert again.ok and again.windows == ()


# -- flush / close / asyncio ----------------------------------------------------------------


def test_issue11_runtime_flush_extracts_below_threshold_items(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc)  # every 5 turns
    one = manager.watch(FakeSession("one", source))
    two = manager.watch(FakeSession("two", source))
    one.add_items([user("a"), user("b")])
    two.add_items([user("c")])
    assert manager.stats().triggered == 0
    assert manager.flush(timeout=10) is True
    assert proc.seqs("one") == [1, 2] and proc.seqs("two") == [3]
    assert manager.flush(timeout=10) is True  # nothing pending: immediate
    assert len(proc.calls) == 2


def test_issue11_runtime_close_flushes_and_stops(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc)
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("a"), assistant("b")])
    assert manager.close() is True
    assert proc.seqs("s") == [1, 2]
    assert not any(t.is_alive() for t in manager._threads)
    session.add_items([user("after close")])  # still stored, never raises
    assert source.all_seqs("s") == [1, 2, 3]
    with pytest.raises(ManagerClosedError):
        manager.extract_now("s")
    with pytest.raises(ManagerClosedError):
        manager.watch(FakeSession("t", source))


def test_issue11_runtime_close_timeout_with_a_stuck_model(managers: Any) -> None:
    source, gate = MemSource(), threading.Event()
    proc = Recorder(gate=gate)
    manager = managers(source, proc, triggers=Triggers(every_n_turns=1))
    manager.watch(FakeSession("s", source)).add_items([user("a")])
    assert proc.entered.wait(10)
    assert manager.close(timeout=0.05) is False  # the model never answered: not flushed
    assert source.mark("s") == 0  # nothing committed; the items are still there
    gate.set()


def test_issue11_runtime_closing_event_loop_does_not_lose_work(managers: Any) -> None:
    source, gate = MemSource(), threading.Event()
    proc = Recorder(gate=gate)
    manager = managers(source, proc, triggers=Triggers(every_n_turns=2))

    async def agent_run() -> None:
        session = manager.watch(AsyncFakeSession("s", source))
        await session.add_items([user("a"), assistant("b"), user("c")])  # triggers
        await session.add_items([assistant("d")])  # below the next trigger
        # the loop closes with extraction in progress (held by the gate)

    asyncio.run(agent_run())
    assert proc.entered.wait(10)
    gate.set()
    assert manager.flush(timeout=10) is True
    assert proc.seqs("s") == [1, 2, 3, 4]
    assert source.mark("s") == 4


def test_issue11_runtime_aflush_cancelled_keeps_the_work(managers: Any) -> None:
    source, gate = MemSource(), threading.Event()
    proc = Recorder(gate=gate)
    manager = managers(source, proc)

    async def main() -> None:
        session = manager.watch(AsyncFakeSession("s", source))
        await session.add_items([user("a")])
        task = asyncio.create_task(manager.aflush())
        await asyncio.to_thread(proc.entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    gate.set()
    assert manager.flush(timeout=10) is True
    assert proc.seqs("s") == [1]


def test_issue11_runtime_async_session_close_and_aflush(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, triggers=Triggers(every_n_turns=None))

    async def main() -> None:
        one = manager.watch(AsyncFakeSession("one", source))
        two = manager.watch(AsyncFakeSession("two", source))
        await one.add_items([user("a")])
        await two.add_items([user("b")])
        assert await one.close() is True
        assert proc.seqs("one") == [1]
        assert await manager.aflush(timeout=10) is True
        assert proc.seqs("two") == [2]

    asyncio.run(main())


# -- failures -------------------------------------------------------------------------------


def test_issue11_runtime_failed_window_is_retried_and_mark_advanced_once(managers: Any) -> None:
    source = MemSource()

    def fail_first(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        if index == 0:
            raise LLMError("model down")

    proc = Recorder(fail_first)
    manager = managers(
        source, proc, retry=Backoff(initial=0.01, max=0.02), triggers=Triggers(every_n_turns=2)
    )
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("a"), assistant("b"), user("c")])
    assert session.get_items() == [user("a"), assistant("b"), user("c")]  # conversation intact
    wait_until(lambda: manager.stats().windows == 1)
    stats = manager.stats()
    assert (stats.failed, stats.retried, stats.windows, stats.items) == (1, 1, 1, 3)
    assert [seqs for _, seqs in proc.calls] == [[1, 2, 3], [1, 2, 3]]  # same items again
    assert source.advances == [("s", 0, 3)]  # advanced once, after the success
    assert manager.flush(timeout=10) is True


def test_issue11_runtime_flush_retries_a_waiting_session_now(managers: Any) -> None:
    source = MemSource()
    state = {"fail": True}

    def maybe_fail(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        if state["fail"]:
            raise LLMError("rate limited")

    proc = Recorder(maybe_fail)
    manager = managers(source, proc, retry=Backoff(initial=3600, max=3600, jitter=0))
    source.append("s", [user("a")])
    report = manager.extract_now("s")
    assert not report.ok and "LLMError: rate limited" in report.errors["s"]
    assert manager.stats().waiting == 1  # an hour of back-off ahead
    assert source.mark("s") == 0
    state["fail"] = False
    assert manager.flush(timeout=10) is True  # flush does not wait out the back-off
    assert proc.seqs("s") == [1] and source.mark("s") == 1


def test_issue11_runtime_permanent_failure_keeps_items_for_later(managers: Any) -> None:
    source = MemSource()

    def always_fail(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        raise LLMError("garbage answer")

    manager = managers(
        source,
        Recorder(always_fail),
        retry=Backoff(initial=0.01, max=0.01, attempts=3),
        triggers=Triggers(every_n_turns=1),
    )
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("a"), assistant("b")])  # never raises
    wait_until(lambda: manager.stats().gave_up == 1)
    stats = manager.stats()
    assert (stats.failed, stats.retried, stats.windows, stats.waiting) == (3, 2, 0, 0)
    assert source.mark("s") == 0 and source.all_seqs("s") == [1, 2]
    assert manager.flush(timeout=10) is False  # flush tries a given-up session once more
    assert manager.stats().failed == 4 and source.mark("s") == 0
    manager.close(timeout=10)
    # a later run (a fixed model) extracts them
    proc = Recorder()
    later = managers(source, proc)
    assert later.extract_now("s").ok
    assert proc.seqs("s") == [1, 2]


def test_issue11_runtime_source_errors_are_failures_too(managers: Any) -> None:
    class Flaky(MemSource):
        def __init__(self) -> None:
            super().__init__()
            self.broken = True

        def items_after(self, session_id: str, seq: int, limit: int) -> list[WindowItem]:
            if self.broken:
                raise OSError("database is locked")
            return super().items_after(session_id, seq, limit)

    source, proc = Flaky(), Recorder()
    manager = managers(source, proc, retry=Backoff(initial=3600, max=3600))
    source.append("s", [user("a")])
    report = manager.extract_now("s")
    assert report.errors == {"s": "OSError: database is locked"}
    assert source.leases == {}  # the claim was released
    source.broken = False
    assert manager.extract_now("s").ok
    assert proc.seqs("s") == [1]


# -- windows --------------------------------------------------------------------------------


def test_issue11_runtime_backlog_is_processed_window_by_window(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    manager = managers(source, proc, max_window_items=3)
    source.append("s", [user(str(i)) for i in range(10)])
    report = manager.extract_now("s")
    assert report.ok
    assert [seqs for _, seqs in proc.calls] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert source.advances == [("s", 0, 3), ("s", 3, 6), ("s", 6, 9), ("s", 9, 10)]
    assert manager.stats().windows == 4


def test_issue11_runtime_window_token_budget(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    item = user("x" * 370)
    per_item = item_tokens(item)
    assert 95 <= per_item <= 105
    manager = managers(source, proc, max_window_tokens=per_item * 2 + 10)
    source.append("s", [item, item, item, user("y" * 4000), item])
    assert manager.extract_now("s").ok
    # two per window; the oversized item alone
    assert [seqs for _, seqs in proc.calls] == [[1, 2], [3], [4], [5]]


# -- restarts and concurrency ---------------------------------------------------------------


def test_issue11_runtime_restart_resumes_without_repeats_or_gaps(managers: Any) -> None:
    source = MemSource()
    first_proc = Recorder()
    first = managers(source, first_proc, triggers=Triggers(every_n_turns=2))
    session = first.watch(FakeSession("s", source))
    session.add_items([user("a"), assistant("b"), user("c")])  # 2 turns: extracted
    wait_until(lambda: first.stats().windows == 1)
    session.add_items([assistant("d")])  # below the trigger; the process "crashes":
    first._stopped = True  # no flush, threads told to stop
    with first._lock:
        first._work.notify_all()
        first._timer_wake.notify_all()
    source.append("s", [user("e"), assistant("f")])  # written while no manager ran

    second_proc = Recorder()
    second = managers(source, second_proc, max_window_items=2)
    assert second.extract_now("s").ok
    seen = first_proc.seqs("s") + second_proc.seqs("s")
    assert seen == source.all_seqs("s") == [1, 2, 3, 4, 5, 6]  # each once, none skipped
    assert second_proc.seqs("s") == [4, 5, 6]


def test_issue11_runtime_watch_catch_up_resumes_a_backlog(managers: Any) -> None:
    source = MemSource()
    source.append("s", [user("left by a crashed run"), assistant("ok")])
    source.marks["s"] = 1  # the crashed run had extracted item 1
    proc = Recorder()
    manager = managers(source, proc)
    manager.watch(FakeSession("s", source), catch_up=True)  # no new item, no trigger
    wait_until(lambda: manager.stats().windows == 1)
    assert proc.seqs("s") == [2]


def test_issue11_runtime_notify_and_plain_function_processor(managers: Any) -> None:
    source = MemSource()
    seen: list[list[int]] = []

    def process(session_id: str, items: Sequence[WindowItem]) -> WindowResult:
        seen.append([seq for seq, _, _ in items])
        return WindowResult(updated=1, deleted=1)

    manager = managers(source, process, triggers=Triggers(every_n_turns=2))
    batch = [user("stored by a server route"), user("without a watched session")]
    source.append("s", batch)
    manager.notify("s", batch)
    wait_until(lambda: manager.stats().windows == 1)
    assert seen == [[1, 2]]
    assert (manager.stats().updated, manager.stats().deleted) == (1, 1)


class FileMarks:
    """Per-session marks in a SQLite file with a real compare-and-set (an UPDATE guarded by
    the expected value), shared by managers in any process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS marks (session TEXT PRIMARY KEY, seq INT)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def get(self, session_id: str) -> int:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT seq FROM marks WHERE session = ?", (session_id,)).fetchone()
        return -1 if row is None else int(row[0])

    def compare_and_set(self, session_id: str, from_seq: int, to_seq: int) -> bool:
        with closing(self._connect()) as conn:
            conn.execute("INSERT OR IGNORE INTO marks VALUES (?, -1)", (session_id,))
            cursor = conn.execute(
                "UPDATE marks SET seq = ? WHERE session = ? AND seq = ?",
                (to_seq, session_id, from_seq),
            )
            return cursor.rowcount == 1


class StoreSource:
    """A WindowSource over the real store: items from ``session_export_items``, claims
    through the store's leases, marks in :class:`FileMarks` (the store's own extraction
    marks are another helper's work).

    The store numbers a session's items from 0, so "nothing extracted yet" is -1 here."""

    def __init__(self, store: Store, namespace: str, marks: FileMarks) -> None:
        self.store, self.namespace, self.marks = store, namespace, marks

    def mark(self, session_id: str) -> int:
        return self.marks.get(session_id)

    def items_after(self, session_id: str, seq: int, limit: int) -> list[WindowItem]:
        rows = self.store.session_export_items(self.namespace, session_id, after=seq, limit=limit)
        return [(r.seq, datetime_from_us(r.created_at), orjson.loads(r.data)) for r in rows]

    def advance(self, session_id: str, from_seq: int, to_seq: int) -> bool:
        return self.marks.compare_and_set(session_id, from_seq, to_seq)

    def claim(self, session_id: str, owner: str, ttl: float) -> bool:
        return self.store.lease_acquire(self.namespace, f"extract:{session_id}", owner, ttl)

    def release(self, session_id: str, owner: str) -> None:
        self.store.lease_release(self.namespace, f"extract:{session_id}", owner)


def test_issue11_runtime_restart_over_sqlite_store(managers: Any, tmp_path: Path) -> None:
    marks = FileMarks(tmp_path / "marks.db")
    store = open_store(tmp_path / "data")
    try:
        first_proc = Recorder()
        first = managers(StoreSource(store, "default", marks), first_proc)
        session = first.watch(Session("chat", store))
        session.add_items([user(f"turn {i}") for i in range(6)])  # 6 turns: triggers at 5
        assert first.close() is True

        async def more() -> None:
            await AsyncSession("chat", store).add_items([assistant("x"), user("y")])

        asyncio.run(more())
        second_proc = Recorder()
        second = managers(StoreSource(store, "default", marks), second_proc)
        watched = second.watch(AsyncSession("chat", store))

        async def run() -> None:
            await watched.add_items([user("z")])
            assert await second.aclose() is True

        asyncio.run(run())
        seqs = first_proc.seqs("chat") + second_proc.seqs("chat")
        assert len(seqs) == 9 and seqs == sorted(set(seqs))
        assert marks.get("chat") == seqs[-1]
        assert second_proc.seqs("chat") == seqs[6:]
    finally:
        store.close()


def _extract_in_child(
    data_dir: str, marks_path: str, out_path: str, barrier: Any, sessions: list[str]
) -> None:
    """One process's manager: extract every session, writing each window it committed."""
    store = open_store(data_dir)

    def slow(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        time.sleep(0.003)  # a model call: lets the other process contend for the claim

    proc = Recorder(slow)
    manager = MemoryManager(
        StoreSource(store, "default", FileMarks(Path(marks_path))),
        proc,
        max_window_items=3,
        lease_poll=0.005,
        flush_at_exit=None,
    )
    barrier.wait(60)
    reports = [manager.extract_now(sid, timeout=60) for sid in sessions]
    manager.close()
    committed = [
        [w.session_id, list(range(w.from_seq + 1, w.to_seq + 1))]
        for r in reports
        for w in r.windows
        if w.applied
    ]
    Path(out_path).write_bytes(
        orjson.dumps({"ok": all(r.ok for r in reports), "windows": committed, "calls": proc.calls})
    )
    store.close()


@pytest.mark.slow
def test_issue11_runtime_two_processes_never_process_a_window_twice(tmp_path: Path) -> None:
    data_dir, marks_path = tmp_path / "data", tmp_path / "marks.db"
    store = open_store(data_dir)
    for sid in ("a", "b"):
        Session(sid, store).add_items([user(f"{sid}{i}") for i in range(30)])
    store.close()
    FileMarks(marks_path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [
        ctx.Process(
            target=_extract_in_child,
            args=(str(data_dir), str(marks_path), str(out), barrier, order),
        )
        for out, order in zip(outs, (["a", "b"], ["a", "b"]), strict=True)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [orjson.loads(out.read_bytes()) for out in outs]
    assert all(r["ok"] for r in results)
    marks = FileMarks(marks_path)
    for sid in ("a", "b"):
        processed = sorted(
            s for r in results for w_sid, seqs in r["calls"] for s in seqs if w_sid == sid
        )
        assert processed == list(range(30))  # every item exactly once across both processes
        committed = sorted(
            s for r in results for w_sid, seqs in r["windows"] for s in seqs if w_sid == sid
        )
        assert committed == list(range(30))
        assert marks.get(sid) == 29


def test_issue11_runtime_concurrent_managers_never_repeat_a_window(managers: Any) -> None:
    source = MemSource()
    windows: list[list[int]] = []
    lock = threading.Lock()

    def slow(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        with lock:
            windows.append([seq for seq, _, _ in items])
        time.sleep(0.001)

    procs = [Recorder(slow), Recorder(slow)]
    mgrs = [
        managers(
            source,
            p,
            triggers=Triggers(every_n_turns=1),
            max_window_items=3,
            lease_poll=0.005,
            workers=2,
        )
        for p in procs
    ]
    watched = [m.watch(FakeSession(sid, source)) for m in mgrs for sid in ("a", "b")]

    def writer(index: int) -> None:
        rng = random.Random(index)
        for i in range(30):
            rng.choice(watched).add_items([user(f"{index}-{i}")])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m in mgrs:
        assert m.flush(timeout=30) is True
    for sid in ("a", "b"):
        done = sorted(s for p in procs for s in p.seqs(sid))
        assert done == source.all_seqs(sid)  # every item once: no repeat, no gap
    flat = [s for w in windows for s in w]
    assert len(flat) == len(set(flat)) == 90  # no window was processed twice
    assert sum(m.stats().windows for m in mgrs) == len(windows)


def test_issue11_runtime_claim_held_elsewhere_waits(managers: Any) -> None:
    source, proc = MemSource(), Recorder()
    assert source.claim("s", "other-process", 60)
    manager = managers(source, proc, triggers=Triggers(every_n_turns=1), lease_poll=0.005)
    manager.watch(FakeSession("s", source)).add_items([user("a")])
    wait_until(lambda: manager.stats().lease_busy >= 2)
    assert proc.calls == [] and manager.stats().failed == 0
    source.release("s", "other-process")
    wait_until(lambda: manager.stats().windows == 1)
    assert proc.seqs("s") == [1]


def test_issue11_runtime_lost_compare_and_set_is_skipped(managers: Any) -> None:
    source = MemSource()

    def other_process_wins(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        if index == 0:  # meanwhile another process committed this window
            assert source.advance(session_id, 0, items[-1][0])

    proc = Recorder(other_process_wins)
    manager = managers(source, proc, max_window_items=2)
    source.append("s", [user("a"), user("b"), user("c")])
    report = manager.extract_now("s")
    assert report.ok
    assert [w.applied for w in report.windows] == [False, True]
    stats = manager.stats()
    assert (stats.skipped, stats.windows, stats.items, stats.added) == (1, 1, 1, 1)
    assert [seqs for _, seqs in proc.calls] == [[1, 2], [3]]  # no re-apply of [1, 2]


# -- queue and hot path ---------------------------------------------------------------------


def test_issue11_runtime_full_queue_coalesces_instead_of_dropping(managers: Any) -> None:
    source, gate = MemSource(), threading.Event()
    proc = Recorder(gate=gate)
    manager = managers(source, proc, triggers=Triggers(every_n_turns=1), max_queue=1, workers=1)
    a, b, c = (manager.watch(FakeSession(sid, source)) for sid in "abc")
    a.add_items([user("a1")])
    wait_until(lambda: manager.stats().running == 1)  # a's job holds the only worker
    b.add_items([user("b1")])  # takes the one queue slot
    c.add_items([user("c1")])  # queue full: waits in the overflow line
    c.add_items([user("c2")])  # coalesces with c's pending job
    a.add_items([user("a2")])  # a is running: served by a's next job
    stats = manager.stats()
    assert (stats.deferred, stats.queued, stats.running) == (1, 2, 1)
    gate.set()
    assert manager.flush(timeout=10) is True
    assert proc.seqs("a") == source.all_seqs("a")
    assert proc.seqs("b") == source.all_seqs("b")
    assert proc.seqs("c") == source.all_seqs("c")
    assert [seqs for sid, seqs in proc.calls if sid == "c"] == [source.all_seqs("c")]


def test_issue11_runtime_add_items_never_runs_extraction_inline(managers: Any) -> None:
    source, gate = MemSource(), threading.Event()

    def broken(index: int, session_id: str, items: Sequence[WindowItem]) -> None:
        raise LLMError("down")

    proc = Recorder(broken, gate=gate)
    manager = managers(
        source, proc, triggers=Triggers(every_n_turns=1), retry=Backoff(initial=3600, max=3600)
    )
    session = manager.watch(FakeSession("s", source))
    session.add_items([user("first")])
    assert proc.entered.wait(10)  # extraction is blocked in the processor...
    for i in range(20):
        session.add_items([user(f"more {i}")])  # ...and add_items still returns
    assert len(session.get_items()) == 21
    assert threading.get_ident() not in proc.threads
    gate.set()
    wait_until(lambda: manager.stats().failed >= 1)
    session.add_items([user("after the failure")])  # failures never reach the conversation
    assert len(session.get_items()) == 22


# -- configuration --------------------------------------------------------------------------


def test_issue11_runtime_backoff_and_config_validation() -> None:
    rng = random.Random(1)
    backoff = Backoff(initial=1.0, max=8.0, jitter=0.5)
    for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0), (500, 8.0)]:
        delay = backoff.delay(failures, rng)
        assert base / 2 <= delay <= base
    assert Backoff(initial=2, max=2, jitter=0).delay(1) == 2
    with pytest.raises(InvalidInputError):
        Triggers(every_n_turns=0)
    with pytest.raises(InvalidInputError):
        Triggers(idle_seconds=-1)
    with pytest.raises(InvalidInputError):
        Backoff(initial=0)
    with pytest.raises(InvalidInputError):
        Backoff(attempts=0)
    with pytest.raises(InvalidInputError):
        MemoryManager(MemSource(), Recorder(), max_queue=0)
