"""The shared full-text table keeps each searched word's BM25 terms per namespace version
(issue 14): a recall runs FTS5 only for words the namespace's current data has not seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import Memory, open_store
from engramdb.store.sqlite import SQLiteStore
from tests.unit.test_recall_statements import statements

PER_WORD = "bm25(memories_fts"  # the per-word query of the shared table's search


def _fill(mem: Memory, namespace: str) -> None:
    mem.remember_many(
        [
            {"content": f"note {i}: {'gardening tomatoes' if i % 3 == 0 else 'rainy weather'}"}
            for i in range(40)
        ]
        + [{"content": "us holiday trip"}, {"content": "a u turn on the road"}],
        namespace=namespace,
    )


def _scores(mem: Memory, query: str, namespace: str) -> list[tuple[str, float]]:
    hits = mem.recall(query, namespace=namespace, mode="text", limit=20)
    return [(h.memory.content, h.score) for h in hits]


def test_issue14_shared_search_reads_each_word_once_per_version(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    assert isinstance(store, SQLiteStore)
    mem = Memory(store, embedder=None)
    _fill(mem, "small")  # far below a table of its own: the shared table
    first = _scores(mem, "gardening tomatoes weather", "small")
    with statements(store) as seen:
        again = _scores(mem, "gardening tomatoes weather", "small")
    assert again == first and first
    assert not [s for s in seen if PER_WORD in s]  # every word's terms were kept
    with statements(store) as seen:
        _scores(mem, "weather holiday", "small")
    assert len([s for s in seen if PER_WORD in s]) == 1  # "holiday" only
    # another tenant's write changes nothing here and reads nothing again
    _fill(mem, "other")
    with statements(store) as seen:
        assert _scores(mem, "gardening tomatoes weather", "small") == first
    assert not [s for s in seen if PER_WORD in s]
    # a write to the namespace: read again, and scored as a fresh store scores it
    mem.remember("gardening again, tomatoes everywhere", namespace="small")
    with statements(store) as seen:
        after = _scores(mem, "gardening tomatoes weather", "small")
    assert len([s for s in seen if PER_WORD in s]) == 3
    assert after != first
    fresh = Memory(open_store(tmp_path / "data"), embedder=None)
    assert _scores(fresh, "gardening tomatoes weather", "small") == after


def test_issue14_shared_terms_are_kept_by_word_not_stem(tmp_path: Path) -> None:
    # FTS5's tokenizer keeps "us" whole (a Porter stemmer makes it "u"): the two words match
    # different memories, so what one query kept must not answer for the other
    mem = Memory(open_store(tmp_path / "data"), embedder=None)
    _fill(mem, "small")
    _scores(mem, "u turn", "small")
    warm = _scores(mem, "us holiday", "small")
    cold = _scores(Memory(open_store(tmp_path / "data"), embedder=None), "us holiday", "small")
    assert warm == cold
    assert warm[0][0] == "us holiday trip"


ANY_WORD = {
    # words FTS5's tokenizer and a Porter stemmer stem differently: short words, "y"
    # endings, tokens past 64 characters
    "stems": (
        [
            "us and the apology",
            "apology accepted by us twice, us",
            f"a long token {'x' * 70} here",
            "nothing to see",
            "rainy weather all week",
        ],
        f"us apology {'x' * 70}",
        [f"us {i} apology {'x' * 70} " + "filler " * (i % 7) for i in range(60)],
    ),
    # a word FTS5 splits (U+19BB: a letter to Python's newer Unicode tables, a separator to
    # FTS5's): searched as its pieces
    "split": (
        ["apple pie recipe", "pie crust", "apple orchard visit", "rainy weather"],
        "apple\u19bbpie",
        [f"apple pie {i} " + "filler " * (i % 5) for i in range(60)]
        + [f"apple {i}" for i in range(30)],
    ),
}


@pytest.mark.parametrize("case", list(ANY_WORD))
def test_issue14_shared_scores_do_not_depend_on_other_tenants_for_any_word(
    tmp_path: Path, case: str
) -> None:
    """Scores in the shared table are the namespace's own BM25 for every word: another
    tenant's rows holding the query's words change nothing, and they equal the scores of
    the namespace stored alone."""
    contents, query, others = ANY_WORD[case]
    mem = Memory(open_store(tmp_path / "data"), embedder=None)
    mem.remember_many([{"content": c} for c in contents], namespace="a")
    before = _scores(mem, query, "a")
    assert {c for c, _ in before} == set(contents[:3])
    other = Memory(open_store(tmp_path / "data"), embedder=None)
    other.remember_many([{"content": c} for c in others], namespace="b")
    assert _scores(Memory(open_store(tmp_path / "data"), embedder=None), query, "a") == before
    alone = Memory(open_store(tmp_path / "alone"), embedder=None)
    alone.remember_many([{"content": c} for c in contents], namespace="a")
    assert _scores(alone, query, "a") == before
