"""The README's first question in a namespace of two memories (issue 17): "what does Ada
drink?" ranks Ada's memory first, on every backend.

With fewer vector candidates than the pool, min-max scaling made the less similar of two
memories score 0 in the vector lane (cosines 0.41 and 0.38 became 1 and 0), which outweighed
both the text lane and the speaker boost."""

from __future__ import annotations

import pytest

from engramdb import Memory
from engramdb.store import Store


def test_issue17_small_namespace_ranks_the_named_users_memory_first(store: Store) -> None:
    pytest.importorskip("onnxruntime")
    from engramdb.embed.local import LocalEmbedder

    mem = Memory(store, embedder=LocalEmbedder())
    ada = mem.remember("Ada drinks green tea, never coffee", user_id="ada")
    mem.remember("Bob drinks a double espresso every morning", user_id="bob")
    hits = mem.recall("what does Ada drink?", explain=True)
    assert [h.memory.id for h in hits][:1] == [ada.id]
    assert hits[0].explain is not None
    # both memories are similar to the query: neither one's vector part is scaled to nothing
    parts = [h.explain["lanes"]["vector"]["contribution"] for h in hits]
    assert min(parts) > 0.5
