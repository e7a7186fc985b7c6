"""SQLite-specific behaviour: migrations, file errors, query plans, durability settings."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import (
    InvalidInputError,
    SchemaVersionError,
    Session,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from engramdb.store.sqlite import LATEST_VERSION, SQLiteStore, migrate

DATA = Path(__file__).resolve().parents[1] / "data"


def test_opens_a_database_created_by_schema_v1(tmp_path: Path) -> None:
    shutil.copy(DATA / "engram-v1.db", tmp_path / "engram.db")
    store = open_store(tmp_path)
    session = Session("old-chat", store)
    assert [i["content"] for i in session.get_items()] == [f"v1 message {n}" for n in range(3)]
    session.add_items([{"role": "user", "content": "after upgrade"}])
    with session.run_lease(wait=1):  # the v2 leases table now exists
        pass
    assert session.pop_item() == {"role": "user", "content": "after upgrade"}
    version = sqlite3.connect(tmp_path / "engram.db").execute("PRAGMA user_version").fetchone()
    assert version[0] == LATEST_VERSION


def test_each_migration_step_applies_on_top_of_the_previous(tmp_path: Path) -> None:
    for target in range(1, LATEST_VERSION + 1):
        conn = sqlite3.connect(tmp_path / f"v{target}.db", isolation_level=None)
        assert migrate(conn, target=target) == target
        conn.close()
        store = SQLiteStore(tmp_path / f"v{target}.db")
        Session("s", store).add_items([{"ok": target}])
        assert Session("s", store).get_items() == [{"ok": target}]
        store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "engram.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="upgrade engramdb"):
        SQLiteStore(path)


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "engram.db"
    path.write_bytes(b"this is a text file, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreUnavailableError, match="not an engramdb database"):
        open_store(tmp_path)
    assert path.read_bytes() == before


def test_missing_database_is_not_created_when_create_is_false(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="no engramdb database"):
        open_store(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailableError, match="is a file"):
        open_store(tmp_path / "file")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits; the immutable flag still binds it
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        yield directory
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)


def test_read_only_directory_gives_an_actionable_error(read_only_dir: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="writable"):
        open_store(read_only_dir)


def test_unknown_url_scheme(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unsupported store URL scheme"):
        open_store("redis://localhost")
    store = open_store(f"sqlite:///{tmp_path}/explicit.db")
    assert (tmp_path / "explicit.db").exists()
    store.close()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        Session("s", store).get_items()


def test_durability_option(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "full.db", durability="full")
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StoreError, match="durability"):
        SQLiteStore(tmp_path / "x.db", durability="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT seq, data FROM session_items WHERE namespace = ?1 AND session_id = ?2 "
        "ORDER BY seq DESC LIMIT 5",
        "DELETE FROM session_items WHERE namespace = ?1 AND session_id = ?2 AND seq = "
        "(SELECT max(seq) FROM session_items WHERE namespace = ?1 AND session_id = ?2) "
        "RETURNING seq, data",
    ],
)
def test_limited_reads_and_pop_use_the_primary_key(tmp_path: Path, sql: str) -> None:
    store = SQLiteStore(tmp_path / "plan.db")
    plan = store._conn().execute("EXPLAIN QUERY PLAN " + sql, ("n", "s")).fetchall()
    detail = " | ".join(row[-1] for row in plan)
    assert "SEARCH session_items USING PRIMARY KEY (namespace=? AND session_id=?" in detail
    assert "SCAN" not in detail and "TEMP B-TREE" not in detail  # no scan, no sort


def test_listing_sessions_pages_newest_first(tmp_path: Path) -> None:
    from engramdb import list_sessions

    store = open_store(tmp_path)
    for n in range(5):
        Session(f"s{n}", store).add_items([{"n": n}])
    Session("s0", store).add_items([{"n": "again"}])  # s0 becomes the most recent
    first = list_sessions(store, limit=3)
    assert [i.session_id for i in first] == ["s0", "s4", "s3"]
    assert first[0].item_count == 2
    last = first[-1]
    rest = list_sessions(store, limit=3, before=(last.updated_at, last.session_id))
    assert [i.session_id for i in rest] == ["s2", "s1"]
    assert list_sessions(store, namespace="other") == []
    with pytest.raises(InvalidInputError):
        list_sessions(store, limit=-1)
