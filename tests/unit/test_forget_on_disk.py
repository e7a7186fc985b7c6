"""Forget means gone from the SQLite files too (issue 10, item 10): the database, its WAL and
shared-memory file hold no byte of forgotten text - not in rows, FTS5 segments, neighbours'
context, tags, metadata, version history or facts."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.store.sqlite import SQLiteStore


def _files(data: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in sorted(data.iterdir()) if p.name.startswith("engram.db")
    )


def _secret(label: str) -> str:
    # letters only, with a prefix no other indexed word shares: FTS5 stores the whole term
    return f"qx{label}{secrets.token_hex(6)}".replace("0", "g").replace("1", "h")


def test_item_10_forgotten_text_leaves_no_bytes_in_the_sqlite_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteStore(data / "engram.db")
    mem = Memory(store, embedder=HashingEmbedder(64))
    kept, body, old, tag, meta, fact, user = (_secret(x) for x in "kbotmfu")
    # plenty of other text, so the index has several segments and pages
    mem.remember_many(
        [{"content": f"filler memory number {n} about topic {n % 17}"} for n in range(300)]
    )
    before = mem.remember(f"the day before, {kept} was mentioned", session_id="s")
    gone = mem.remember(
        f"my bank pin is {old}", session_id="s", tags=[tag], metadata={"note": meta}, user_id=user
    )
    mem.update(gone.id, content=f"my bank pin is {body}")  # the old text goes to history
    mem.remember("the day after, nothing special", session_id="s")
    learned = mem.learn("Ada", "password_is", fact)
    mem.remember_many([{"content": f"more filler {n}"} for n in range(300)])
    everything = _files(data)
    for s in (kept, body, old, tag, meta, fact, user):
        assert s.encode() in everything, s  # before forget, each one is on disk

    mem.forget(gone.id)
    mem.forget_fact(learned.id)

    on_disk = _files(data)
    assert kept.encode() in on_disk  # the scan sees live text: the check can fail
    for s in (body, old, tag, meta, fact, user):
        assert s.encode() not in on_disk, s
        assert s[:8].encode() not in on_disk, s  # no stemmed or prefix-compressed term either
    # the neighbour that quoted it is still searchable, without the forgotten words
    assert mem.get(before.id).content.endswith("was mentioned")
    assert mem.recall(body, mode="text") == []
    store.close()
    on_disk = _files(data)
    for s in (body, old, tag, meta, fact, user):
        assert s[:8].encode() not in on_disk, s


def test_item_10_scoped_forget_scrubs_once_per_call(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    mem = Memory(store, embedder=None)
    words = [_secret(f"s{n}") for n in range(1200)]
    mem.remember_many([{"content": f"note {w}", "user_id": "u"} for w in words])
    mem.remember("keep this one", user_id="v")
    runs: list[int] = []
    original = store._scrub

    def counting() -> None:
        runs.append(1)
        original()

    store._scrub = counting  # type: ignore[method-assign]
    assert mem.forget(filters={"user_id": "u"}).count == 1200  # three transactions of 500
    assert len(runs) == 1
    on_disk = _files(tmp_path)
    assert b"keep this one" in on_disk
    assert not [w for w in words if w[:8].encode() in on_disk]
    store.close()


def test_item_10_a_reader_holding_a_snapshot_delays_the_scrub_to_the_next_forget(
    tmp_path: Path,
) -> None:
    import sqlite3

    store = SQLiteStore(tmp_path / "engram.db")
    mem = Memory(store, embedder=None)
    first, second = _secret("r"), _secret("w")
    a = mem.remember(f"note {first}")
    b = mem.remember(f"note {second}")
    mem.remember_many([{"content": f"filler {n}"} for n in range(200)])
    reader = sqlite3.connect(tmp_path / "engram.db", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM memories").fetchone()[0] == 202
    mem.forget(a.id)  # returns although the checkpoint cannot finish under the old snapshot
    assert reader.execute("SELECT count(*) FROM memories").fetchone()[0] == 202
    reader.execute("COMMIT")
    reader.close()
    mem.forget(b.id)  # the next forget's scrub completes what the last one could not
    on_disk = _files(tmp_path)
    assert b"filler 17" in on_disk
    for s in (first, second):
        assert s[:8].encode() not in on_disk, s
    store.close()


def test_item_10_a_forget_that_removes_nothing_does_not_rewrite_the_index(tmp_path: Path) -> None:
    from engramdb import NotFoundError

    store = SQLiteStore(tmp_path / "engram.db")
    mem = Memory(store, embedder=None)
    mem.remember("note", user_id="u")
    runs: list[int] = []
    original = store._scrub

    def counting() -> None:
        before = store._scrub_done
        original()
        runs.append(int(store._scrub_done != before))

    store._scrub = counting  # type: ignore[method-assign]
    with pytest.raises(NotFoundError):
        mem.forget_fact("fact_missing")
    assert mem.forget(filters={"user_id": "nobody"}).count == 0
    assert mem.forget_facts("nobody").count == 0
    assert sum(runs) == 0
    mem.forget(filters={"user_id": "u"})
    assert sum(runs) == 1
    store.close()


def test_item_10_large_stores_batch_the_index_merge_and_finish_it_at_close(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    store.scrub_at_once_rows = 0  # behave like a store above the at-once threshold
    mem = Memory(store, embedder=None)
    word = _secret("z")
    gone = mem.remember(f"my bank pin is {word}")
    mem.remember_many([{"content": f"filler {n}"} for n in range(200)])
    mem.forget(gone.id)
    on_disk = _files(tmp_path)
    # rows are zeroed and the WAL emptied at once: the text as written is gone ...
    assert gone.content.encode() not in on_disk and b"filler 17" in on_disk
    # ... while the index merge that drops its words waits for the batched run
    assert store._scrub_timer is not None and store._scrub_done < store._scrub_wanted
    assert mem.recall(word, mode="text") == []
    store.close()  # a waiting merge runs at close
    assert store._scrub_timer is None
    assert word[:8].encode() not in _files(tmp_path)


def test_item_10_the_batched_merge_runs_on_its_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from engramdb.store.sqlite import memories

    monkeypatch.setattr(memories, "SCRUB_MIN_INTERVAL", 0.0)
    store = SQLiteStore(tmp_path / "engram.db")
    store.scrub_at_once_rows = 0
    mem = Memory(store, embedder=None)
    word = _secret("t")
    gone = mem.remember(f"note {word}")
    mem.remember("another note")
    merged = threading.Event()
    original = store._merge_due

    def merge_due() -> None:
        original()
        merged.set()

    monkeypatch.setattr(store, "_merge_due", merge_due)
    mem.forget(gone.id)
    assert merged.wait(30)  # the timer fired (a deadline, not a measurement)
    assert word[:8].encode() not in _files(tmp_path)
    assert store._scrub_done == store._scrub_wanted
    store.close()


def test_issue11_forgotten_memory_events_leave_no_bytes_in_the_sqlite_files(
    tmp_path: Path,
) -> None:
    from engramdb.store.base import NewMemoryEvent

    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteStore(data / "engram.db")
    mem = Memory(store, embedder=None)
    kept, reason, details, why = (_secret(x) for x in "krdw")
    mem.remember_many([{"content": f"filler memory number {n}"} for n in range(200)])
    other = mem.remember("a memory that stays")
    gone = mem.remember("a memory the manager wrote")
    mem.record_events(
        [
            NewMemoryEvent(
                gone.id, "add", reason=f"the user said {reason}", details={"q": details}
            ),
            NewMemoryEvent(other.id, "add", reason=f"kept because {kept}"),
        ]
    )
    mem.invalidate(gone.id, reason=f"contradicted by {why}")
    everything = _files(data)
    for s in (kept, reason, details, why):
        assert s.encode() in everything, s

    mem.forget(gone.id)

    on_disk = _files(data)
    assert kept.encode() in on_disk  # the scan sees live text: the check can fail
    for s in (reason, details, why):
        assert s.encode() not in on_disk, s
    store.close()
