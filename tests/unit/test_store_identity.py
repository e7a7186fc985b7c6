"""Issue 10, item 16: a SQLite database deleted or replaced under engramdb is detected, never
silently started over; an unusable -shm file is a clear error, not a crash."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engramdb import Memory, Session, StoreUnavailableError, open_store


def _filled(directory: Path, *items: str) -> None:
    """A data directory whose session "s" holds ``items``; the store is closed afterwards."""
    store = open_store(directory)
    Session("s", store).add_items([{"text": text} for text in items])
    store.close()


def _items(store_or_dir: object) -> list[str]:
    store = open_store(store_or_dir)  # type: ignore[arg-type]
    return [item["text"] for item in Session("s", store).get_items()]


def _remove_database(directory: Path) -> None:
    for name in ("engram.db", "engram.db-wal", "engram.db-shm"):
        (directory / name).unlink(missing_ok=True)


def test_item_16_a_new_empty_directory_needs_no_setup(tmp_path: Path) -> None:
    directory = tmp_path / "new"
    _filled(directory, "first")
    assert (directory / "engram.id").is_file()  # the sidecar that remembers the database
    assert _items(directory) == ["first"]


def test_item_16_a_deleted_database_is_not_silently_recreated(tmp_path: Path) -> None:
    _filled(tmp_path, "precious")
    _remove_database(tmp_path)
    with pytest.raises(StoreUnavailableError, match=r"engram\.db is missing.*--recreate"):
        open_store(tmp_path)
    assert not (tmp_path / "engram.db").exists()  # nothing was created in its place
    # the explicit flag starts a new, empty database
    store = open_store(tmp_path, recreate=True)
    assert Session("s", store).get_items() == []
    store.close()
    assert _items(tmp_path) == []  # and from then on it is this directory's database


def test_item_16_a_missing_database_with_its_wal_left_is_not_recreated(tmp_path: Path) -> None:
    # a directory from before engramdb wrote engram.id: the -wal left behind is the evidence
    _filled(tmp_path, "x")
    (tmp_path / "engram.id").unlink()
    (tmp_path / "engram.db").unlink()
    (tmp_path / "engram.db-wal").write_bytes(b"\0" * 32)
    with pytest.raises(StoreUnavailableError, match=r"missing.*engram\.db-wal"):
        open_store(tmp_path)
    store = open_store(tmp_path, recreate=True)
    store.close()
    # the old log is kept aside, not replayed into the new database
    assert [p.name.split(".stale-")[0] for p in tmp_path.glob("*.stale-*")] == ["engram.db-wal"]


def test_item_16_an_empty_file_in_place_of_the_database_is_refused(tmp_path: Path) -> None:
    _filled(tmp_path, "precious")
    _remove_database(tmp_path)
    sqlite3.connect(tmp_path / "engram.db").close()  # someone recreated an empty file
    with pytest.raises(StoreUnavailableError, match=r"a new, empty database.*--recreate"):
        open_store(tmp_path)


def test_item_16_another_database_in_place_of_the_database_is_refused(tmp_path: Path) -> None:
    _filled(tmp_path / "a", "from a")
    _filled(tmp_path / "b", "from b")
    shutil.copy(tmp_path / "b" / "engram.db", tmp_path / "a" / "engram.db")
    with pytest.raises(StoreUnavailableError, match="another database"):
        open_store(tmp_path / "a")
    assert _items(open_store(tmp_path / "a", recreate=True)) == ["from b"]  # accepted on request
    assert _items(tmp_path / "a") == ["from b"]


def test_item_16_a_restored_copy_of_the_same_database_opens(tmp_path: Path) -> None:
    _filled(tmp_path / "data", "one")
    backup = sqlite3.connect(tmp_path / "backup.db")
    with sqlite3.connect(tmp_path / "data" / "engram.db") as source:
        source.backup(backup)
    backup.close()
    _remove_database(tmp_path / "data")
    shutil.copy(tmp_path / "backup.db", tmp_path / "data" / "engram.db")
    assert _items(tmp_path / "data") == ["one"]


def test_item_16_writes_fail_once_the_file_is_deleted_under_an_open_store(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    session = Session("s", store)
    session.add_items([{"text": "before"}])
    store.ping()
    (tmp_path / "engram.db").unlink()
    with pytest.raises(StoreUnavailableError, match="was deleted"):
        session.add_items([{"text": "after"}])
    with pytest.raises(StoreUnavailableError, match="was deleted"):
        Memory(store).remember("a memory", namespace="n")
    with pytest.raises(StoreUnavailableError, match="was deleted"):
        store.ping()
    errors: list[BaseException] = []

    def other_thread() -> None:  # a new connection must not create a new, empty file
        try:
            session.add_items([{"text": "from another thread"}])
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], StoreUnavailableError)
    assert not (tmp_path / "engram.db").exists()
    store.close()


def test_item_16_writes_fail_once_the_file_is_replaced_under_an_open_store(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "data")
    session = Session("s", store)
    session.add_items([{"text": "one"}])
    copy = sqlite3.connect(tmp_path / "copy.db")
    with sqlite3.connect(tmp_path / "data" / "engram.db") as source:
        source.backup(copy)
    copy.close()
    os.replace(tmp_path / "copy.db", tmp_path / "data" / "engram.db")  # same database, new file
    with pytest.raises(StoreUnavailableError, match="was replaced"):
        session.add_items([{"text": "two"}])
    store.close()
    # what was refused is nowhere; what was acknowledged before is in the file now there
    assert _items(tmp_path / "data") == ["one"]


def _open_in_child(directory: Path) -> subprocess.CompletedProcess[str]:
    """Open the store and write, in a child process: a crash (SIGBUS) must not kill pytest."""
    script = (
        "import sys\n"
        "from engramdb import Session, StoreError, open_store\n"
        "try:\n"
        "    Session('s', open_store(sys.argv[1])).add_items([{'text': 'x'}])\n"
        "except StoreError as exc:\n"
        "    print(type(exc).__name__, exc, file=sys.stderr)\n"
        "    sys.exit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("kind", ["directory", "dangling-symlink", "device"])
def test_item_16_an_unusable_shm_file_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    _filled(tmp_path, "x")
    shm = tmp_path / "engram.db-shm"
    shm.unlink(missing_ok=True)
    if kind == "directory":
        shm.mkdir()
        (shm / "inside").write_text("keeps it non-empty")
        shm.chmod(0o555)
    elif kind == "dangling-symlink":
        shm.symlink_to(tmp_path / "nowhere" / "shm")
    else:
        shm.symlink_to("/dev/null")  # cannot be mapped
    result = _open_in_child(tmp_path)
    assert result.returncode == 3, result  # a clean, typed error, not a signal
    assert "StoreUnavailableError" in result.stderr
    assert "engram.db-shm" in result.stderr, result.stderr


def test_item_16_a_read_only_shm_file_is_a_clear_error(tmp_path: Path) -> None:
    _filled(tmp_path, "x")
    shm = tmp_path / "engram.db-shm"
    shm.write_bytes(b"")
    shm.chmod(0o444)
    immutable = False
    if os.geteuid() == 0:  # permissions do not stop root; the immutable attribute does
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        done = subprocess.run(["chattr", "+i", str(shm)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {done.stderr!r}")
        immutable = True
    try:
        result = _open_in_child(tmp_path)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(shm)], check=True)
    assert result.returncode == 3, result
    assert "engram.db-shm is not writable" in result.stderr, result.stderr
