"""PostgreSQL faults: refused connections, bad credentials, a missing pgvector, timeouts and a
server restart in the middle of a session all end in typed errors, never in half a batch."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from engramdb import ConflictError, Memory, SchemaVersionError, Session
from engramdb.embed import HashingEmbedder
from engramdb.errors import StoreError, StoreUnavailableError
from engramdb.store import open_store
from engramdb.store.postgres import LATEST_VERSION, PostgresStore
from tests.pg_server import DATABASE, PgServer, _free_port


@pytest.fixture
def url(pg_server: PgServer) -> str:
    return pg_server.new_schema()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url, timeout=3)
    yield s
    s.close()


def test_url_opens_a_postgres_store(url: str) -> None:
    s = open_store(url)
    try:
        assert isinstance(s, PostgresStore)
        assert s.native_vector_search and not s.inline_reads
        assert s.memory_term_docs("ns", ["x"]) == (0, {})
    finally:
        s.close()
    with Memory(url, embedder=HashingEmbedder(64)) as mem:
        mem.remember("opened from a URL")
        assert [h.memory.content for h in mem.recall("opened")] == ["opened from a URL"]


def test_refused_connection_is_a_clear_error() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(StoreUnavailableError, match="connection refused") as info:
        open_store(f"postgresql://someone:secret@127.0.0.1:{port}/db")
    assert "secret" not in str(info.value)  # the password never appears in messages


def test_wrong_password_is_a_clear_error(pg_server: PgServer) -> None:
    url = pg_server.url(password="not-the-password")
    with pytest.raises(StoreUnavailableError, match="user name or password") as info:
        open_store(url)
    assert "not-the-password" not in str(info.value)


def test_missing_database_is_a_clear_error(pg_server: PgServer) -> None:
    with pytest.raises(StoreUnavailableError, match="database does not exist"):
        open_store(pg_server.url("no_such_database"))


def test_missing_pgvector_is_a_clear_error(pg_server: PgServer) -> None:
    # a database without the extension, opened by a user who may not create it
    role, db = f"r_{uuid.uuid4().hex[:8]}", f"d_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        conn.execute(f"CREATE DATABASE {db} OWNER {role}")
    url = f"postgresql://{role}:pw@127.0.0.1:{pg_server.port}/{db}"
    with pytest.raises(StoreUnavailableError, match="CREATE EXTENSION vector"):
        open_store(url)
    with pg_server.admin(db) as conn:  # a superuser enables it: now it opens
        conn.execute("CREATE EXTENSION vector")
    open_store(url).close()


def test_missing_schema_and_create_false(pg_server: PgServer) -> None:
    url = pg_server.url() + "?options=" + quote("-csearch_path=no_such_schema")
    with pytest.raises(StoreUnavailableError, match="CREATE SCHEMA"):
        open_store(url)
    with pytest.raises(StoreUnavailableError, match="holds no engramdb data"):
        open_store(pg_server.new_schema(), create=False)


def test_newer_schema_version_is_refused(url: str) -> None:
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE engramdb_schema SET version = 999")
    with pytest.raises(SchemaVersionError, match="upgrade engramdb"):
        open_store(url)


def test_concurrent_openers_migrate_once(url: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def opener() -> None:
        try:
            stores.append(PostgresStore(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for s in stores:
        s.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM engramdb_schema").fetchall() == [(LATEST_VERSION,)]


def test_statement_timeout_raises_and_writes_nothing(url: str) -> None:
    open_store(url).close()
    timed = PostgresStore(url.replace("options=", "options=-cstatement_timeout%3D300%20"))
    blocker = psycopg.connect(url)
    try:
        blocker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")  # held until rollback
        with pytest.raises(StoreError, match="statement_timeout"):
            Session("t", timed).add_items([{"n": 1}])
        blocker.rollback()
        assert Session("t", timed).get_items() == []
    finally:
        blocker.close()
        timed.close()


def test_a_conflicting_batch_writes_nothing(store: PostgresStore) -> None:
    mem = Memory(store, embedder=HashingEmbedder(64))
    taken = mem.remember("first", namespace="other").id
    with pytest.raises(ConflictError):
        mem.remember_many([{"content": "fresh one"}, {"content": "clash", "id": taken}])
    assert mem.stats().memories == 0


def test_server_restart_mid_session(pg_server: PgServer, store: PostgresStore) -> None:
    session = Session("restart", store)
    mem = Memory(store, embedder=HashingEmbedder(64))
    session.add_items([{"n": 0}])
    mem.remember("before the restart")
    pg_server.stop()
    try:
        with pytest.raises(StoreUnavailableError):
            session.add_items([{"n": "during"}])
    finally:
        pg_server.start()
    # the same store keeps working: dead pooled connections are replaced
    session.add_items([{"n": 1}])
    assert session.get_items() == [{"n": 0}, {"n": 1}]
    assert session.pop_item() == {"n": 1}
    mem.remember("after the restart")
    assert {h.memory.content for h in mem.recall("restart")} == {
        "before the restart",
        "after the restart",
    }


@pytest.mark.slow
def test_writes_in_flight_during_a_restart_commit_or_raise(pg_server: PgServer, url: str) -> None:
    store = PostgresStore(url, timeout=0.5)  # give up quickly while the server is down
    session = Session("inflight", store)
    acked: list[int] = []
    failed: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                session.add_items([{"n": n}, {"n": n, "second": True}])
                acked.append(n)
            except StoreError:
                failed.append(n)
                time.sleep(0.05)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.5)
        pg_server.stop("fast")
        time.sleep(1.5)
        pg_server.start()
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join(timeout=60)
        store.close()
    store = PostgresStore(url)
    session = Session("inflight", store)
    stored = session.get_items()
    firsts = [i["n"] for i in stored if "second" not in i]
    seconds = [i["n"] for i in stored if "second" in i]
    assert firsts == seconds  # a batch is whole or absent, never half
    assert len(set(firsts)) == len(firsts)  # nothing applied twice
    assert set(acked) <= set(firsts)  # every acknowledged write is there
    assert set(firsts) <= set(acked) | set(failed)  # and nothing else
    assert acked and failed and acked[-1] > failed[-1]  # it failed, then recovered
    store.close()


def test_database_name_in_messages_not_password(pg_server: PgServer) -> None:
    with pytest.raises(StoreUnavailableError) as info:
        open_store(pg_server.url("no_such_database", password="hunter2"))
    assert "hunter2" not in str(info.value) and DATABASE not in str(info.value)
