"""The session contract (OpenAI Agents SDK ``Session`` semantics), run on every backend."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from engramdb import (
    AsyncClient,
    AsyncSession,
    Client,
    CorruptRecordError,
    InvalidInputError,
    RemoteSession,
    Session,
    SessionSettings,
)
from engramdb.store import Store, open_store
from engramdb.types import JSONItem
from tests.conftest import BACKENDS, Backend, _postgres_backend, _sqlite_backend
from tests.live_server import LiveServer

pytestmark = pytest.mark.anyio

CHILD = str(Path(__file__).resolve().parents[1] / "child.py")
ROOT = str(Path(__file__).resolve().parents[2])

# -- backends: every local store, and "remote": RemoteSession over a live server ------------
# The remote server (one per test run, SQLite) gets a fresh namespace key per namespace name
# per test. Tests that need the store in-process (run leases, child processes writing to it)
# are marked @local_only; everything else runs against remote too.


def local_only(test: Callable[..., Any]) -> Callable[..., Any]:
    test.local_only = True  # type: ignore[attr-defined]
    return test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        remote = [] if getattr(metafunc.function, "local_only", False) else ["remote"]
        metafunc.parametrize("backend", [*BACKENDS, *remote], indirect=True)


@dataclass
class Remote:
    """One test's view of the live server: a key (a namespace of its own) per namespace name."""

    server: LiveServer
    keys: dict[str, str] = field(default_factory=dict)
    clients: dict[str, AsyncClient] = field(default_factory=dict)
    sync_clients: dict[str, Client] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)  # threads share a Remote

    def key(self, name: str) -> str:
        with self.lock:
            if name not in self.keys:
                self.keys[name] = self.server.register(f"conformance-{name}")
            return self.keys[name]

    def client(self, name: str = "default") -> AsyncClient:
        with self.lock:
            if name not in self.clients:
                self.clients[name] = AsyncClient(self.server.url, self.key(name))
            return self.clients[name]

    def sync_client(self, name: str = "default") -> Client:
        with self.lock:
            if name not in self.sync_clients:
                self.sync_clients[name] = Client(self.server.url, self.key(name))
            return self.sync_clients[name]

    def namespace(self, name: str) -> str:
        """The server's namespace behind a namespace name of the tests."""
        found = self.sync_client(name).stats()["namespace"]
        assert isinstance(found, str)
        return found

    def corrupt_newest(self, name: str, session_id: str) -> None:
        with sqlite3.connect(Path(self.server.store) / "engram.db") as conn:
            conn.execute(
                "UPDATE session_items SET data = '{not json' WHERE seq = (SELECT max(seq) "
                "FROM session_items WHERE namespace = ? AND session_id = ?)",
                (self.namespace(name), session_id),
            )


@pytest.fixture
def remote(live_server: LiveServer) -> Iterator[Remote]:
    r = Remote(live_server)
    yield r
    for client in r.sync_clients.values():
        client.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every storage backend on fresh, empty data, and the remote server (a fresh namespace)."""
    if request.param == "sqlite":
        yield _sqlite_backend(tmp_path)
    elif request.param == "postgres":
        yield _postgres_backend(request.getfixturevalue("pg_server"))
    elif request.param == "remote":
        r: Remote = request.getfixturevalue("remote")
        target = r.server.store
        yield Backend("remote", target, lambda: open_store(target), r.corrupt_newest)
    else:  # pragma: no cover - a new backend must be wired here
        raise AssertionError(request.param)


class AnySession(Protocol):
    """What the suite drives: AsyncSession and RemoteSession alike."""

    session_id: str

    async def get_items(self, limit: int | None = None) -> list[JSONItem]: ...
    async def add_items(self, items: list[JSONItem]) -> None: ...
    async def pop_item(self) -> JSONItem | None: ...
    async def clear_session(self) -> None: ...
    async def info(self) -> Any: ...


class SyncSessionLike(Protocol):
    def get_items(self, limit: int | None = None) -> list[JSONItem]: ...
    def add_items(self, items: list[JSONItem]) -> Any: ...


MakeSession = Callable[..., AnySession]
MakeSyncSession = Callable[[str], SyncSessionLike]


@pytest.fixture
def make_session(backend: Backend, request: pytest.FixtureRequest) -> MakeSession:
    if backend.name == "remote":
        r: Remote = request.getfixturevalue("remote")

        def make_remote(
            session_id: str = "s1", *, namespace: str = "default", **kwargs: Any
        ) -> AnySession:
            return RemoteSession(session_id, r.client(namespace), **kwargs)

        return make_remote
    store: Store = request.getfixturevalue("store")

    def make(session_id: str = "s1", **kwargs: Any) -> AnySession:
        return AsyncSession(session_id, store, **kwargs)

    return make


@dataclass
class ClientSession:
    """The synchronous Client's session calls, bound to one session id."""

    client: Client
    session_id: str

    def get_items(self, limit: int | None = None) -> list[JSONItem]:
        return self.client.get_items(self.session_id, limit)

    def add_items(self, items: list[JSONItem]) -> int:
        return self.client.add_items(self.session_id, items)


@pytest.fixture
def make_sync_session(backend: Backend, request: pytest.FixtureRequest) -> MakeSyncSession:
    """A synchronous face: Session over the store, or the Client's session calls (remote)."""
    if backend.name == "remote":
        r: Remote = request.getfixturevalue("remote")
        return lambda session_id: ClientSession(r.sync_client(), session_id)
    store: Store = request.getfixturevalue("store")
    return lambda session_id: Session(session_id, store)


@pytest.fixture
def dump_in_child(backend: Backend, request: pytest.FixtureRequest) -> Callable[[str], Any]:
    """A session's items as a fresh process reads them: from the store, or over HTTP."""
    if backend.name != "remote":
        return lambda session_id: json.loads(run_child("dump", backend.target, session_id))
    r: Remote = request.getfixturevalue("remote")

    def dump_remote(session_id: str) -> Any:
        code = (
            "import json, sys; from engramdb import Client; "
            "print(json.dumps(Client(sys.argv[1], sys.argv[2]).get_items(sys.argv[3]), "
            "ensure_ascii=False))"
        )
        args = [sys.executable, "-c", code, r.server.url, r.key("default"), session_id]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    return dump_remote


def items(*ns: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"message {n}"} for n in ns]


def run_child(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, CHILD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=True,
    )
    return out.stdout


# -- ordering and limits -------------------------------------------------------------------


async def test_items_come_back_in_insertion_order(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(1, 2))
    await s.add_items(items(3))
    await s.add_items(items(4, 5, 6))
    assert await s.get_items() == items(1, 2, 3, 4, 5, 6)


async def test_get_items_limit_semantics(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(*range(10)))
    assert await s.get_items(limit=3) == items(7, 8, 9)
    assert await s.get_items(limit=1) == items(9)
    assert await s.get_items(limit=0) == []
    assert await s.get_items(limit=10) == items(*range(10))
    assert await s.get_items(limit=1000) == items(*range(10))
    assert await s.get_items(None) == items(*range(10))


async def test_negative_limit_is_rejected(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(1))
    with pytest.raises(InvalidInputError, match="limit must be an integer >= 0"):
        await s.get_items(limit=-1)
    with pytest.raises(InvalidInputError):
        await s.get_items(limit=True)  # type: ignore[arg-type]


async def test_session_settings_limit_and_explicit_limit_wins(make_session: MakeSession) -> None:
    s = make_session(session_settings=SessionSettings(limit=2))
    await s.add_items(items(1, 2, 3, 4))
    assert await s.get_items() == items(3, 4)
    assert await s.get_items(limit=3) == items(2, 3, 4)
    assert await s.get_items(limit=0) == []


async def test_empty_session(make_session: MakeSession) -> None:
    s = make_session()
    assert await s.get_items() == []
    assert await s.get_items(limit=5) == []
    assert await s.pop_item() is None
    await s.clear_session()
    assert await s.get_items() == []


# -- pop and clear -------------------------------------------------------------------------


async def test_pop_is_destructive_newest_first(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(1, 2, 3))
    assert await s.pop_item() == items(3)[0]
    assert await s.pop_item() == items(2)[0]
    assert await s.get_items() == items(1)


async def test_pop_until_empty_then_add(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(1, 2))
    assert await s.pop_item() is not None
    assert await s.pop_item() is not None
    assert await s.pop_item() is None
    await s.add_items(items(7, 8))
    assert await s.get_items() == items(7, 8)


async def test_clear_then_add(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(items(1, 2, 3))
    await s.clear_session()
    assert await s.get_items() == []
    await s.add_items(items(4))
    assert await s.get_items() == items(4)
    info = await s.info()
    assert info is not None and info.item_count == 1


async def test_suffix_rewind_restores_exact_history(make_session: MakeSession) -> None:
    s = make_session()
    history = [{"i": i, "nested": {"parts": [{"t": str(i)}]}} for i in range(20)]
    await s.add_items(history)
    suffix = await s.get_items(limit=5)
    for _ in range(5):
        await s.pop_item()
    assert await s.get_items() == history[:15]
    await s.add_items(suffix)
    assert await s.get_items() == history


async def test_fresh_instance_and_fresh_process_agree(
    make_session: MakeSession, dump_in_child: Callable[[str], Any]
) -> None:
    s = make_session("agree")
    await s.add_items(items(1, 2, 3, 4))
    await s.pop_item()
    assert await make_session("agree").get_items() == items(1, 2, 3)
    assert dump_in_child("agree") == items(1, 2, 3)
    await s.clear_session()
    await s.add_items(items(9))
    assert await make_session("agree").get_items() == items(9)
    assert dump_in_child("agree") == items(9)


# -- identity and isolation ----------------------------------------------------------------

ODD_IDS = ["a", "A", "a:b", "a/b", "a%", "%", "a_", "_", "a b", "ünïcødé", "🧠🔥", "a'b", 'a"b']


async def test_ids_with_odd_characters_are_isolated(make_session: MakeSession) -> None:
    for n, sid in enumerate(ODD_IDS):
        await make_session(sid).add_items([{"sid": sid, "n": n}])
    for n, sid in enumerate(ODD_IDS):
        assert await make_session(sid).get_items() == [{"sid": sid, "n": n}]
    await make_session("a%").clear_session()
    assert await make_session("a").get_items() == [{"sid": "a", "n": 0}]
    assert await make_session("a%").pop_item() is None


async def test_namespaces_are_isolated(make_session: MakeSession) -> None:
    a = make_session("same", namespace="tenant-a")
    b = make_session("same", namespace="tenant-b")
    await a.add_items(items(1))
    await b.add_items(items(2))
    assert await a.get_items() == items(1)
    assert await b.pop_item() == items(2)[0]
    assert await b.pop_item() is None
    await b.clear_session()
    assert await a.get_items() == items(1)


# -- round trip ----------------------------------------------------------------------------

ROUND_TRIP = [
    {"role": "user", "content": [{"type": "input_text", "text": 'héllo 👋 \u202e \x00 \\ "'}]},
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": [1, 2.5, null]}'},
    {"type": "reasoning", "id": "r1", "summary": [], "encrypted_content": "gAAAA" + "z" * 5000},
    {"deep": {"a": [[[[[{"b": [True, False, None, 0, -1, 1e-300, 1.7976931348623157e308]}]]]]]}},
    {"ints": [2**64, -(2**70), 12345678901234567890123, 9007199254740993]},
    {"big": "x" * 2_000_000},
    {"keys": {"": 1, "with space": 2, "ключ": 3, "🔑": 4}, "order": {"z": 1, "a": 2, "m": 3}},
    {},
]


async def test_items_round_trip_exactly(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items(ROUND_TRIP)
    got = await s.get_items()
    assert got == ROUND_TRIP
    # key order and every character survive: identical JSON text
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    assert [dump(g) for g in got] == [dump(i) for i in ROUND_TRIP]
    assert await s.pop_item() == {}
    assert await s.get_items(limit=1) == [ROUND_TRIP[-2]]


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [{"ok": 1}, {"bad": object()}],
        [{"ok": 1}, "not a dict"],
        [{"ok": 1}, ["list"]],
        [{"ok": 1}, {"nan": float("nan")}],
        [{"ok": 1}, {"surrogate": "\ud800"}],
        [{"ok": 1}, None],
    ],
)
async def test_bad_batches_write_nothing(make_session: MakeSession, bad: list[Any]) -> None:
    s = make_session()
    await s.add_items(items(0))
    with pytest.raises(InvalidInputError, match="item 1"):
        await s.add_items(bad)
    assert await s.get_items() == items(0)


@pytest.mark.parametrize("bad_items", ["text", {"role": "user"}, 42, None])
async def test_items_must_be_a_list(make_session: MakeSession, bad_items: Any) -> None:
    with pytest.raises(InvalidInputError, match="list"):
        await make_session().add_items(bad_items)


@pytest.mark.parametrize("bad_id", ["", "   ", None, 5, "x" * 513, "nul\x00byte", "\udcff"])
def test_bad_session_ids_are_rejected(
    make_session: MakeSession, make_sync_session: MakeSyncSession, bad_id: Any
) -> None:
    with pytest.raises(InvalidInputError, match="session_id"):
        make_session(bad_id)
    with pytest.raises(InvalidInputError, match="session_id"):
        make_sync_session(bad_id).get_items()


async def test_empty_batch_is_a_no_op(make_session: MakeSession) -> None:
    s = make_session()
    await s.add_items([])
    assert await s.info() is None
    assert await s.get_items() == []


# -- corruption ----------------------------------------------------------------------------


async def test_corrupt_record_is_reported_never_deleted(
    backend: Backend, make_session: MakeSession
) -> None:
    s = make_session("corrupt")
    await s.add_items(items(1, 2, 3))
    await make_session("neighbour").add_items(items(9))
    backend.corrupt_newest("default", "corrupt")
    with pytest.raises(CorruptRecordError, match="left in place"):
        await s.get_items()
    with pytest.raises(CorruptRecordError):
        await s.pop_item()
    with pytest.raises(CorruptRecordError):
        await s.pop_item()
    info = await s.info()
    assert info is not None and info.item_count == 3  # nothing was dropped
    assert await s.get_items(limit=0) == []
    assert await make_session("neighbour").get_items() == items(9)


# -- volume, concurrency, crashes ----------------------------------------------------------


async def test_sequence_is_correct_past_ten_thousand_items(make_session: MakeSession) -> None:
    s = make_session("big")
    for start in range(0, 10_500, 500):
        await s.add_items([{"n": n} for n in range(start, start + 500)])
    assert await s.get_items(limit=3) == [{"n": 10_497}, {"n": 10_498}, {"n": 10_499}]
    assert await s.pop_item() == {"n": 10_499}
    await s.add_items([{"n": "after-pop"}])
    everything = await s.get_items()
    assert len(everything) == 10_500
    assert everything[:2] == [{"n": 0}, {"n": 1}]
    assert everything[-2:] == [{"n": 10_498}, {"n": "after-pop"}]
    info = await s.info()
    assert info is not None and info.item_count == 10_500


async def test_concurrent_calls_finish_without_deadlock(make_session: MakeSession) -> None:
    sessions = [make_session("busy") for _ in range(4)]

    async def worker(w: int) -> None:
        s = sessions[w]
        for n in range(25):
            await s.add_items([{"w": w, "n": n}])
            await s.get_items(limit=5)
            if n % 5 == 4:
                await s.pop_item()
            await s.get_items()

    await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(4))), timeout=60)
    remaining = await sessions[0].get_items()
    assert len(remaining) == 4 * 25 - 4 * 5
    for w in range(4):  # each writer's surviving items are still in its own order
        ns = [i["n"] for i in remaining if i["w"] == w]
        assert ns == sorted(ns)


def test_threads_share_a_store_without_loss(make_sync_session: MakeSyncSession) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            s = make_sync_session("threads")
            for n in range(100):
                s.add_items([{"w": w, "n": n}])
                s.get_items(limit=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    got = make_sync_session("threads").get_items()
    assert len(got) == 400
    assert len({(i["w"], i["n"]) for i in got}) == 400


@local_only  # child processes write to the store directly
@pytest.mark.slow
def test_four_processes_append_without_loss_or_duplicates(backend: Backend, store: Store) -> None:
    Session("procs", store).add_items([{"writer": -1, "n": 0}])  # schema exists before the race
    procs = [
        subprocess.Popen(
            [sys.executable, CHILD, "write", backend.target, "procs", str(w), "500"], cwd=ROOT
        )
        for w in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    got = Session("procs", store).get_items()[1:]
    assert len(got) == 2000
    assert len({(i["writer"], i["n"]) for i in got}) == 2000
    for w in range(4):
        assert [i["n"] for i in got if i["writer"] == w] == list(range(500))


@local_only  # a child process writes to the store directly, then is killed
@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(backend: Backend, store: Store) -> None:
    Session("crash", store).add_items([{"n": "before"}])
    child = subprocess.Popen(
        [sys.executable, CHILD, "crash", backend.target, "crash", "50"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    acked = -1
    for line in child.stdout:
        acked = int(line.split()[1])
        if acked == 49:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert acked == 49
    reopened = open_store(backend.target)
    try:
        got = Session("crash", reopened).get_items()
    finally:
        reopened.close()
    assert [i["n"] for i in got] == ["before", *range(50)]


# -- run lease -----------------------------------------------------------------------------


@local_only  # run leases are held on the store (the HTTP API has none)
async def test_run_lease_serialises_runs_on_one_session(make_session: MakeSession) -> None:
    s1, s2 = make_session("leased"), make_session("leased")
    order: list[str] = []

    async def run(s: AsyncSession, name: str) -> None:
        async with s.run_lease(ttl=5, wait=10):
            order.append(f"{name}-start")
            await s.add_items([{"run": name, "step": 1}])
            await asyncio.sleep(0.1)
            await s.add_items([{"run": name, "step": 2}])
            order.append(f"{name}-end")

    await asyncio.gather(run(s1, "a"), run(s2, "b"))
    assert order in (
        ["a-start", "a-end", "b-start", "b-end"],
        ["b-start", "b-end", "a-start", "a-end"],
    )
    runs = [i["run"] for i in await s1.get_items()]
    assert runs in (["a", "a", "b", "b"], ["b", "b", "a", "a"])


@local_only  # run leases are held on the store (the HTTP API has none)
async def test_run_lease_times_out_with_a_clear_error(make_session: MakeSession) -> None:
    from engramdb import LeaseHeldError

    async with make_session("held").run_lease(ttl=5):
        with pytest.raises(LeaseHeldError, match="held by another run"):
            async with make_session("held").run_lease(wait=0.2):
                pass  # pragma: no cover
    async with make_session("held").run_lease(wait=0.2):  # released on exit
        pass


@local_only  # run leases are held on the store (the HTTP API has none)
def test_run_lease_across_processes(backend: Backend, store: Store) -> None:
    from engramdb import LeaseHeldError

    child = subprocess.Popen(
        [sys.executable, CHILD, "lease", backend.target, "xproc", "3"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    with pytest.raises(LeaseHeldError), Session("xproc", store).run_lease(wait=0.3):
        pass  # pragma: no cover
    with Session("xproc", store).run_lease(wait=30):
        assert child.wait(timeout=30) == 0  # we got it only once the child let go
