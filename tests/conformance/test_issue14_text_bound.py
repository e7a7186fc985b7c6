"""The text lane's candidate set is bounded on every backend (issue 14): the commonest query
terms of the namespace are dropped before matching, with that namespace's own counts."""

from __future__ import annotations

import pytest

from engramdb import Memory, RecallSettings
from engramdb.filters import Filter
from engramdb.search.query import index_stem, text_query
from engramdb.store import Store


def test_issue14_text_lane_drops_the_namespaces_common_terms(store: Store) -> None:
    mem = Memory(store, embedder=None, settings=RecallSettings(text_budget=10))
    common = [f"common filler number {w}" for w in "abcdefghijklmnopqrstuvwxyz"]
    rare = ["common rare gem one", "common rare gem two", "rare gem three"]
    mem.remember_many([{"content": c} for c in common + rare], namespace="a")
    # in another namespace the frequencies are reversed: they must not move namespace a's
    mem.remember_many(
        [{"content": f"rare stone {i}"} for i in range(40)] + [{"content": "common once"}],
        namespace="b",
    )
    documents, counts = store.memory_term_docs("a", [index_stem("common"), index_stem("rare")])
    assert documents == 29
    assert counts == {index_stem("common"): 28, index_stem("rare"): 3}
    # "common" is in 28 of a's 29 memories: past the budget, so only "rare" is matched
    found = [
        h.memory.content for h in mem.recall("common rare", mode="text", limit=50, namespace="a")
    ]
    assert sorted(found) == sorted(rare)
    # in b, "rare" is the common one and "common" the rare one
    found_b = [
        h.memory.content for h in mem.recall("common rare", mode="text", limit=50, namespace="b")
    ]
    assert found_b == ["common once"]


def test_issue14_text_lane_under_budget_ranks_every_match(store: Store) -> None:
    mem = Memory(store, embedder=None)
    texts = ["apple pie recipe", "apple tree", "pear and apple", "banana bread", "tree house"]
    mem.remember_many([{"content": t} for t in texts])
    found = [h.memory.content for h in mem.recall("apple tree", mode="text", limit=10)]
    assert sorted(found) == sorted(
        ["apple pie recipe", "apple tree", "pear and apple", "tree house"]
    )
    assert found[0] == "apple tree"


def _bound(store: Store, monkeypatch: pytest.MonkeyPatch, value: int) -> None:
    """Set the text search's candidate bound of ``store``'s backend."""
    import engramdb.store.postgres.memories as pg_memories
    import engramdb.store.sqlite.memories as sqlite_memories

    module = sqlite_memories if type(store).__name__.startswith("SQLite") else pg_memories
    monkeypatch.setattr(module, "TEXT_CANDIDATES", value, raising=False)


def test_issue14_text_search_ranks_the_namespaces_newest_matches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound, a text search ranks the newest matches of the namespace (and filter)
    only, on every backend: no query costs more than a bounded amount of work. Newer matches
    in another namespace take none of the slots."""
    mem = Memory(store, embedder=None)
    # the older memories say "shared" three times (they rank higher); the newest ten once
    mem.remember_many([{"content": f"shared shared shared old {i}"} for i in range(20)])
    mem.remember_many([{"content": f"shared new {i} and more words"} for i in range(10)])
    # newer still, in another namespace: must not push namespace default's out of the bound
    mem.remember_many(
        [{"content": f"shared shared elsewhere {i}"} for i in range(30)], namespace="other"
    )
    shared = text_query(["shared"])
    unbounded = store.memory_text_search("default", shared, Filter.parse(None), limit=5)
    newest = {
        r for r, _ in store.memory_text_search("default", text_query(["new"]), Filter(), limit=50)
    }
    assert len(newest) == 10
    assert not {r for r, _ in unbounded} & newest  # every match ranked: the old ones win
    _bound(store, monkeypatch, 10)
    bounded = store.memory_text_search("default", shared, Filter.parse(None), limit=5)
    assert len(bounded) == 5 and {r for r, _ in bounded} <= newest  # only the newest 10
    # the bound never cuts below the limit
    assert len(store.memory_text_search("default", shared, Filter(), limit=25)) == 25
    # a filter applies before the bound: the newest ten of user u's matches
    mem.remember_many(
        [{"content": f"shared shared shared by u {i}", "user_id": "u"} for i in range(3)]
    )
    by_u = store.memory_text_search("default", shared, Filter(user_id="u"), limit=10)
    assert len(by_u) == 3


def test_issue14_text_lane_prunes_by_true_counts_past_the_budget(store: Store) -> None:
    """Two query words both past the budget: the rarer one is searched, not whichever comes
    first (counts capped at the budget cannot tell them apart). A word in 90% of the
    namespace's memories must not crowd out one in 25%."""
    mem = Memory(store, embedder=None, settings=RecallSettings(text_budget=3))
    texts = [f"xword filler {i}" for i in range(15)] + [f"xword yword {i}" for i in range(3)]
    texts += [f"yword alone {i}" for i in range(2)]
    mem.remember_many([{"content": t} for t in texts])
    documents, counts = store.memory_term_docs(
        "default", [index_stem("xword"), index_stem("yword")], at_most=3
    )
    assert documents == 20
    found = mem.recall("xword yword", mode="text", limit=50)
    assert len(found) == 5
    assert all("yword" in h.memory.content for h in found)
    # another namespace's memories change nothing in this one's counts or results
    mem.remember_many([{"content": f"yword other {i}"} for i in range(30)], namespace="other")
    assert store.memory_term_docs(
        "default", [index_stem("xword"), index_stem("yword")], at_most=3
    ) == (documents, counts)
    again = mem.recall("xword yword", mode="text", limit=50)
    assert [h.memory.id for h in again] == [h.memory.id for h in found]
