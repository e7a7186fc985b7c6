"""The text lane's candidate set is bounded on every backend (issue 14): the commonest query
terms of the namespace are dropped before matching, with that namespace's own counts."""

from __future__ import annotations

from engramdb import Memory, RecallSettings
from engramdb.search.query import index_stem
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
