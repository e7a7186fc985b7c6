"""The SQLite full-text layout (issue 14, migration 16): small namespaces in one shared FTS5
table, large ones in a table of their own; BM25 with the namespace's own statistics in both
(the same scores), live memories only in the tables, promotion, the move of an existing index."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.filters import Filter
from engramdb.memory import content_hash
from engramdb.search.query import text_query
from engramdb.store.sqlite import SQLiteStore, migrate, text
from engramdb.store.sqlite.text import SHARED, find_text_table, namespace_token

LAYOUTS = ["shared", "own"]


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every namespace in the shared table ("shared") or in a table of its own ("own")."""
    layout = str(request.param)
    monkeypatch.setattr(text, "OWN_TABLE_AT", 10**9 if layout == "shared" else 1)
    return layout


@pytest.fixture
def promoting_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SQLiteStore]:
    """tmp_path/engram.db, whose namespaces get a table of their own at 10 live memories."""
    monkeypatch.setattr(text, "OWN_TABLE_AT", 10)
    opened = SQLiteStore(tmp_path / "engram.db")
    yield opened
    opened.close()


def _table(path: Path, namespace: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return find_text_table(conn, namespace)
    finally:
        conn.close()


def _count_rows(path: Path, table: str, namespace: str) -> int:
    """The namespace's rows in ``table`` (in the shared table: those with its token)."""
    if table != SHARED:
        return int(_rows(path, f"SELECT count(*) FROM {table}")[0][0])  # type: ignore[call-overload]
    token = namespace_token(namespace)
    return int(_rows(path, f"SELECT count(*) FROM {SHARED} WHERE ns = '{token}'")[0][0])  # type: ignore[call-overload]


def _bm25(docs: list[list[tuple[str, float]]], sizes: list[int], terms: list[str]) -> list[float]:
    """FTS5's bm25() (k1 = 1.2, b = 0.75) from scratch: ``docs`` as (word, column weight) per
    token, ``sizes`` their token counts over every column."""
    n, avgdl = len(docs), sum(sizes) / len(docs)
    scores = []
    for doc, size in zip(docs, sizes, strict=True):
        score = 0.0
        for term in terms:
            df = sum(any(w == term for w, _ in d) for d in docs)
            idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
            f = sum(weight for w, weight in doc if w == term)
            score += idf * f * 2.2 / (f + 1.2 * (1 - 0.75 + 0.75 * size / avgdl))
        scores.append(score)
    return scores


def test_issue14_fts_scores_are_the_namespaces_bm25(tmp_path: Path, layout: str) -> None:
    """Scores are exactly BM25 over the namespace's live memories: its document count and
    average length (matching or not), tags at weight 0.6; other namespaces and invalidated
    memories count for nothing."""
    contents = [
        "kiwi mango",
        "kiwi kiwi plum fig date lime",
        "mango plum",
        "fig date lime plum fig date lime plum",
        "lime",
    ]
    store = SQLiteStore(tmp_path / "engram.db")
    try:
        mem = Memory(store, embedder=None)
        ids = [r.id for r in mem.remember_many([{"content": c} for c in contents], namespace="a")]
        tagged = mem.remember("plum date", tags=["kiwi"], namespace="a")
        gone = mem.remember("kiwi kiwi kiwi kiwi", namespace="a")
        mem.invalidate(gone.id, namespace="a")
        mem.remember_many([{"content": f"kiwi mango {i} x y z"} for i in range(30)], namespace="b")

        docs = [[(w, 1.0) for w in c.split()] for c in [*contents, "plum date"]]
        docs[-1].append(("kiwi", 0.6))
        sizes = [len(d) for d in docs]
        expected = dict(zip([*ids, tagged.id], _bm25(docs, sizes, ["kiwi", "mango"]), strict=True))
        found = store.memory_text_search("a", text_query(["kiwi", "mango"]), Filter(), limit=10)
        records = store.memory_records("a", [r for r, _ in found])
        got = {records[r].id: score for r, score in found}
        assert set(got) == {k for k, v in expected.items() if v > 0}
        for memory_id, score in got.items():
            assert score == pytest.approx(expected[memory_id], rel=1e-9)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        # a filter selects among the same scores
        only = store.memory_text_search(
            "a", text_query(["kiwi", "mango"]), Filter(tags=("kiwi",)), limit=10
        )
        assert [(records[r].id, s) for r, s in only] == [(tagged.id, got[tagged.id])]
    finally:
        store.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_issue14_fts_invalidated_memories_leave_the_table_and_come_back(
    tmp_path: Path, layout: str
) -> None:
    path = tmp_path / "engram.db"
    store = SQLiteStore(path)
    try:
        mem = Memory(store, embedder=None, index_metadata=["place"])
        mem.remember("before", session_id="s", namespace="a")
        kept = mem.remember(
            "a walk by the river",
            metadata={"place": "Lisbon"},
            namespace="a",
            session_id="s",
            tags=["outdoors"],
        )
        mem.remember("after", session_id="s", namespace="a")
        mem.remember("other river", namespace="b")  # (in the shared layout: the same table)
        table = _table(path, "a")
        assert (table == SHARED) == (layout == "shared")
        assert _count_rows(path, table, "a") == 3

        mem.invalidate(kept.id, namespace="a")
        assert _count_rows(path, table, "a") == 2
        assert _rows(
            path,
            f"SELECT count(*) FROM {table} WHERE {table} MATCH 'river' AND rowid = "
            f"(SELECT rowid FROM memories WHERE id = '{kept.id}')",
        ) == [(0,)]
        assert _rows(path, "SELECT meta FROM text_parked") == [("Lisbon",)]
        # changed while invalidated: the parked text follows
        mem.update(kept.id, metadata={"place": "Porto"}, namespace="a")
        mem.restore(kept.id, namespace="a")
        assert _rows(path, "SELECT count(*) FROM text_parked") == [(0,)]
        row = _rows(
            path,
            f"SELECT content, tags, meta, ctx FROM {table} WHERE rowid = "
            f"(SELECT rowid FROM memories WHERE id = '{kept.id}')",
        )
        assert row == [("a walk by the river", "outdoors", "Porto", "before\nafter")]
        assert [h.memory.id for h in mem.recall("porto", mode="text", namespace="a")] == [kept.id]

        mem.invalidate(kept.id, namespace="a")
        mem.forget(kept.id, namespace="a")  # forgotten while invalidated: nothing stays
        assert _rows(path, "SELECT count(*) FROM text_parked") == [(0,)]
        assert _count_rows(path, table, "a") == 2
    finally:
        store.close()


def test_issue14_fts_migration_16_splits_the_index_per_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large namespaces (here: 2 live memories) get a table of their own, small ones the
    shared table with their token; invalidated rows are parked."""
    monkeypatch.setattr(text, "OWN_TABLE_AT", 2)
    path = tmp_path / "engram.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=15)  # one shared memories_fts
    rows = [
        ("m1", "a", "red kite", None),
        ("m2", "b", "red fox", None),
        ("m3", "a", "red herring", 5),
        ("m4", "a", "blue kite", None),
    ]
    for n, (mid, ns, content, invalidated) in enumerate(rows, start=1):
        conn.execute(
            "INSERT INTO memories (rowid, id, namespace, content, content_hash, tags, metadata, "
            "importance, created_at, updated_at, version, invalidated_at) "
            "VALUES (?, ?, ?, ?, ?, '[]', '{}', 0.5, ?, ?, 1, ?)",
            (n, mid, ns, content, content_hash(content), n, n, invalidated),
        )
        conn.execute(
            "INSERT INTO memories_fts (rowid, content, tags, meta, ctx) VALUES (?, ?, '', ?, '')",
            (n, content, f"meta{n}"),
        )
    conn.execute("INSERT INTO namespace_counts VALUES ('a', 3, 0), ('b', 1, 0)")
    conn.close()

    store = SQLiteStore(path)  # migrates
    try:
        tables = dict(_rows(path, "SELECT namespace, 'fts_' || id FROM text_tables"))
        assert set(tables) == {"a"}
        assert _rows(path, f"SELECT rowid, content, meta FROM {tables['a']} ORDER BY rowid") == [
            (1, "red kite", "meta1"),
            (4, "blue kite", "meta4"),
        ]
        assert _rows(path, f"SELECT rowid, content, ns FROM {SHARED}") == [
            (2, "red fox", namespace_token("b"))
        ]
        assert _rows(path, "SELECT * FROM text_parked") == [(3, "meta3")]
        assert _rows(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v15%'") == [(0,)]
        found = store.memory_text_search("a", text_query(["red"]), Filter(), limit=10)
        assert [r for r, _ in found] == [1]
        found = store.memory_text_search("b", text_query(["red"]), Filter(), limit=10)
        assert [r for r, _ in found] == [2]
        mem = Memory(store, embedder=None)
        mem.restore("m3", namespace="a")
        assert _rows(path, f"SELECT meta FROM {tables['a']} WHERE rowid = 3") == [("meta3",)]
    finally:
        store.close()
    # re-runnable: every step since 13 again, over the new layout
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 13")
    conn.close()
    store = SQLiteStore(path)
    try:
        found = store.memory_text_search("a", text_query(["red"]), Filter(), limit=10)
        assert sorted(r for r, _ in found) == [1, 3]
    finally:
        store.close()


def _scores(store: SQLiteStore, namespace: str, words: list[str]) -> dict[str, float]:
    found = store.memory_text_search(namespace, text_query(words), Filter(), limit=100)
    records = store.memory_records(namespace, [r for r, _ in found])
    return {records[r].content: score for r, score in found}


CORPUS = [
    "the kite flew over the red barn",
    "a red kite and a blue kite",
    "barn owls hunt at night",
    "night trains to the coast",
    "coast path walk with a kite",
    "blue paint for the barn door",
] * 3 + ["one more line about owls"]
CORPUS = [f"{c} (line {n})" for n, c in enumerate(CORPUS)]  # 19 memories


def test_issue14_fts_layouts_give_the_same_scores_below_and_above_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same contents just below the threshold (shared table, BM25 in Python) and just
    above it (own table, FTS5's bm25()) rank the same, to 1e-9; a word common in another
    namespace changes neither."""
    path = tmp_path / "engram.db"
    store = SQLiteStore(path)
    try:
        mem = Memory(store, embedder=None)
        monkeypatch.setattr(text, "OWN_TABLE_AT", len(CORPUS) + 1)
        mem.remember_many([{"content": c} for c in CORPUS], namespace="below")
        monkeypatch.setattr(text, "OWN_TABLE_AT", len(CORPUS))
        mem.remember_many([{"content": c} for c in CORPUS], namespace="above")
        assert _table(path, "below") == SHARED
        assert _table(path, "above") != SHARED
        queries = [["kite"], ["red", "kite"], ["barn", "owls", "night"], ["coast", "blue"]]
        before = {q[0]: _scores(store, "below", q) for q in queries}
        for q in queries:
            below, above = before[q[0]], _scores(store, "above", q)
            assert below and set(below) == set(above)
            for content, score in below.items():
                assert score == pytest.approx(above[content], rel=1e-9, abs=1e-12)
        # another tenant (shared table) makes "kite" and "barn" very common: no change
        monkeypatch.setattr(text, "OWN_TABLE_AT", 10**9)
        mem.remember_many(
            [{"content": f"kite barn kite {n}"} for n in range(300)], namespace="noise"
        )
        for q in queries:
            assert _scores(store, "below", q) == before[q[0]]
            above = _scores(store, "above", q)
            for content, score in before[q[0]].items():
                assert score == pytest.approx(above[content], rel=1e-9, abs=1e-12)
    finally:
        store.close()


def test_issue14_fts_namespace_is_promoted_when_it_reaches_the_threshold(
    tmp_path: Path, promoting_store: SQLiteStore
) -> None:
    """On insert and on import: the write that brings the namespace to OWN_TABLE_AT live
    memories moves its rows to a table of its own; search finds the same, scored the same."""
    path = tmp_path / "engram.db"
    mem = Memory(promoting_store, embedder=None)
    mem.remember_many([{"content": f"kite number {n}"} for n in range(8)], namespace="a")
    mem.remember("kite in the other tenant", namespace="b")
    gone = mem.remember("kite to invalidate", namespace="a")
    mem.invalidate(gone.id, namespace="a")
    mem.remember("kite number 8", namespace="a")  # 10 memories, 9 live: still shared
    assert _table(path, "a") == SHARED
    assert _count_rows(path, SHARED, "a") == 9
    shared_scores = _scores(promoting_store, "a", ["kite", "number"])
    mem.remember("no match here", namespace="a")  # 10 live: promoted
    table = _table(path, "a")
    assert table != SHARED
    assert _count_rows(path, SHARED, "a") == 0
    assert _count_rows(path, table, "a") == 10
    assert _count_rows(path, SHARED, "b") == 1
    own_scores = _scores(promoting_store, "a", ["kite", "number"])
    assert set(own_scores) == set(shared_scores)
    mem.restore(gone.id, namespace="a")  # back into its (own) table
    assert "kite to invalidate" in _scores(promoting_store, "a", ["kite"])

    # import: an export of 11 memories (10 live) into a new store, 5 at a time
    records = list(mem.export(namespace="a"))
    other = tmp_path / "other" / "engram.db"
    other.parent.mkdir()
    store2 = SQLiteStore(other)
    try:
        Memory(store2, embedder=None).import_records(records, namespace="c", batch_size=5)
        table_c = _table(other, "c")
        assert table_c != SHARED
        assert _count_rows(other, table_c, "c") == 11  # (the restored one too)
        assert _count_rows(other, SHARED, "c") == 0
        want = _scores(promoting_store, "a", ["kite", "number"])
        assert _scores(store2, "c", ["kite", "number"]) == pytest.approx(want, rel=1e-9)
    finally:
        store2.close()


def _files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob("engram.db*")))


def test_issue14_fts_forget_removes_text_from_the_index_on_disk(
    tmp_path: Path, layout: str
) -> None:
    """Forget in either layout: the memory's row leaves its namespace's table and no byte of
    its words stays in the files (the table's index is merged)."""
    path = tmp_path / "engram.db"
    store = SQLiteStore(path)
    try:
        mem = Memory(store, embedder=None)
        mem.remember_many([{"content": f"filler text {n} about topic {n % 7}"} for n in range(200)])
        mem.remember_many([{"content": f"other tenant {n}"} for n in range(50)], namespace="b")
        secret = "qxzvelociraptorqjw"
        gone = mem.remember(f"the code is {secret}")
        table = _table(path, "default")
        assert (table == SHARED) == (layout == "shared")
        assert secret.encode() in _files(path)
        mem.forget(gone.id)
        assert _count_rows(path, table, "default") == 200
        assert _rows(path, f"SELECT count(*) FROM {table} WHERE {table} MATCH '{secret}'") == [(0,)]
        assert secret.encode() not in _files(path)
        assert secret[:8].encode() not in _files(path)
        assert mem.recall(secret, mode="text") == []
    finally:
        store.close()


def test_issue14_fts_forget_after_promotion_leaves_no_word_in_the_shared_table(
    tmp_path: Path, promoting_store: SQLiteStore
) -> None:
    """A promoted namespace's rows were deleted from the shared table (whose segments keep
    the words until merged): forgetting one of them merges the shared table too."""
    path = tmp_path / "engram.db"
    mem = Memory(promoting_store, embedder=None)
    mem.remember_many([{"content": f"small tenant {n}"} for n in range(5)], namespace="b")
    secret = "qxzpterodactylqjw"
    gone = mem.remember(f"the code is {secret}")
    mem.remember_many([{"content": f"filler text {n}"} for n in range(9)])  # promoted
    assert _table(path, "default") != SHARED
    mem.forget(gone.id)
    assert secret.encode() not in _files(path)
    assert secret[:8].encode() not in _files(path)
    assert _count_rows(path, SHARED, "b") == 5
