"""The bundled offline model: real weights from the installed package, no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engramdb import Memory
from engramdb.embed import resolve_embedder
from engramdb.embed.local import LocalEmbedder


def test_local_model_embeds_meaningfully() -> None:
    e = LocalEmbedder()
    docs = e.embed_documents(
        ["The cat sat on the mat.", "A kitten is resting on a rug.", "Quarterly tax filing."]
    )
    assert docs.shape == (3, 384) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
    q = e.embed_query("a small cat lying on a carpet")
    scores = docs @ q
    assert scores[1] > scores[2] and scores[0] > scores[2]
    # batching and sorting by length do not change a text's vector
    again = e.embed_documents(["Quarterly tax filing."])[0]
    assert np.allclose(again, docs[2], atol=1e-5)


def test_auto_embedder_is_the_local_model_and_recall_uses_it(tmp_path: Path) -> None:
    assert resolve_embedder("auto").model == "local:minilm-l6-int8"  # type: ignore[union-attr]
    mem = Memory(tmp_path)
    mem.remember("She adopted a puppy last spring")
    mem.remember("The invoice is due on Friday")
    hits = mem.recall("new dog", mode="vector", limit=1)
    assert hits[0].memory.content == "She adopted a puppy last spring"
