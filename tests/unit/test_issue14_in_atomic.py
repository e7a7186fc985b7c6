"""``Store.in_atomic()``: true only inside ``atomic()`` on the calling thread (recall uses it
to keep every lane on the block's connection)."""

from __future__ import annotations

import threading
from pathlib import Path

from engramdb.store.sqlite import SQLiteStore


def test_issue14_sqlite_in_atomic_is_per_thread_and_nests(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "x.db"))
    try:
        assert not store.in_atomic()
        seen_elsewhere: list[bool] = []
        with store.atomic():
            with store.atomic():
                assert store.in_atomic()
            assert store.in_atomic()
            other = threading.Thread(target=lambda: seen_elsewhere.append(store.in_atomic()))
            other.start()
            other.join()
        assert seen_elsewhere == [False]
        assert not store.in_atomic()
    finally:
        store.close()
