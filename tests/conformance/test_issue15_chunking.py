"""Long memories embedded in overlapping chunks, kept in the vector table (issue 15 item 1,
issue 14 "embeddings in their own table"), on every backend.

A memory longer than the embedder's window gets one vector per chunk; it scores by its best
chunk, ``explain`` names that chunk and its character span, and every chunk follows the memory
through update, re-embedding, invalidation, forget and export/import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.errors import InvalidInputError
from engramdb.store import Store
from tests.conftest import Backend

GARDEN = [
    "The garden needs watering every morning before the sun gets too hot.",
    "Tomatoes grow best along the south fence where the soil is rich.",
    "We added compost to the raised beds and turned the earth with a fork.",
    "The basil and the mint are spreading faster than we expected this year.",
    "A neighbour lent us a ladder so we could prune the old apple tree.",
    "Slugs ate most of the lettuce, so next season we will try copper tape.",
    "The greenhouse door sticks in damp weather and needs a new hinge.",
    "Seed catalogues arrive every January and we always order too much.",
]
FACT = "Finally, my sister Clara is getting married in Lisbon next September."
OTHERS = [
    "The quarterly report is due to the finance team on Friday.",
    "I replaced the brake pads on my bicycle yesterday.",
    "The new espresso machine at the office makes terrible coffee.",
    "Our football team lost the match on Saturday evening.",
    "I have been learning to play the piano in the evenings.",
    "The printer on the third floor is out of toner again.",
    "My laptop battery drains quickly when video calls run.",
]


def _long_memory(tokens: int = 1950) -> str:
    """About ``tokens`` WordPiece tokens of garden notes, then the fact."""
    words = 0
    parts: list[str] = []
    while words < tokens:
        sentence = GARDEN[len(parts) % len(GARDEN)]
        parts.append(sentence)
        words += len(sentence.split()) + 2  # punctuation and word pieces: a rough count
    return " ".join(parts) + " " + FACT


def test_issue15_chunking_fact_at_the_end_of_a_2000_token_memory_is_found(
    store: Store,
) -> None:
    """With the real local model: the first 128 tokens say nothing of the fact (embedded
    whole, the memory ranks below every unrelated one); its last chunk does."""
    pytest.importorskip("onnxruntime")
    from engramdb.embed.local import LocalEmbedder

    embedder = LocalEmbedder()
    text = _long_memory()
    encoding = embedder._model.splitter.encode(text, add_special_tokens=False)
    assert len(encoding.ids) >= 1900  # a 2,000-token memory
    mem = Memory(store, embedder=embedder)
    long = mem.remember(text)
    mem.remember_many([{"content": c} for c in OTHERS])
    hits = mem.recall(
        "Which city will my sister get married in?", mode="vector", limit=3, explain=True
    )
    assert hits[0].memory.id == long.id
    assert hits[0].explain is not None
    detail = hits[0].explain["lanes"]["vector"]
    assert detail["chunk"] > 0  # a late chunk matched, and the explanation says which
    assert FACT in text[detail["chunk_start"] : detail["chunk_end"]]
    spans = embedder.chunk_spans(text)
    assert (detail["chunk_start"], detail["chunk_end"]) == spans[detail["chunk"]]
    # every chunk fits the model's window
    for start, end in spans:
        pieces = embedder._model.splitter.encode(text[start:end], add_special_tokens=False)
        assert len(pieces.ids) <= embedder.max_tokens - 2 + 2  # (a cut word may split anew)


def _chunked() -> HashingEmbedder:
    return HashingEmbedder(64, window=80)


def _long_text(marker: str) -> str:
    body = " ".join(f"plain filler sentence number {n} about nothing" for n in range(12))
    return f"{body} and at the very end the {marker} appears"


def test_issue15_chunking_explain_names_the_chunk_and_short_memories_stay_one(
    store: Store,
) -> None:
    embedder = _chunked()
    mem = Memory(store, embedder=embedder)
    text = _long_text("zebracorn")
    long = mem.remember(text)
    short = mem.remember("zebracorn is short")
    rowids = _rowids(store, [long.id, short.id])
    vectors = store.memory_vectors("default", rowids)
    size = embedder.dim * 4
    chunks = len(embedder.chunk_spans(text))
    assert chunks > 3
    assert len(vectors[rowids[0]]) == chunks * size  # one vector per chunk
    assert len(vectors[rowids[1]]) == size  # a short memory: one vector, no extra cost
    hits = mem.recall("zebracorn appears", mode="vector", explain=True, limit=5)
    by_id = {h.memory.id: h for h in hits}
    assert set(by_id) == {long.id, short.id}  # each memory once, however many chunks
    detail = by_id[long.id].explain["lanes"]["vector"]  # type: ignore[index]
    assert detail["chunk"] == chunks - 1
    assert "zebracorn" in text[detail["chunk_start"] : detail["chunk_end"]]
    whole = by_id[short.id].explain["lanes"]["vector"]  # type: ignore[index]
    assert (whole["chunk"], whole["chunk_start"], whole["chunk_end"]) == (0, 0, 18)
    assert mem.stats().embedded == 2  # memories embedded, not chunks


def _rowids(store: Store, ids: list[str]) -> list[int]:
    rows = {
        r.record.id: r.rowid
        for r in store.memory_export_full("default", after=0, limit=1000, with_vectors=False)
    }
    return [rows[i] for i in ids]


def test_issue15_chunking_every_chunk_follows_update_invalidate_and_forget(
    store: Store,
) -> None:
    mem = Memory(store, embedder=_chunked())
    long = mem.remember(_long_text("quokkaberry"))
    mem.remember("an unrelated short note")
    (rowid,) = _rowids(store, [long.id])
    assert mem.recall("quokkaberry appears", mode="vector", limit=1)[0].memory.id == long.id

    # a shorter text: the old chunks all go, one vector remains
    mem.update(long.id, content="now only the quokkaberry")
    assert len(store.memory_vectors("default", [rowid])[rowid]) == 64 * 4
    assert mem.recall("quokkaberry", mode="vector", limit=1)[0].memory.id == long.id
    mem.update(long.id, content=_long_text("quokkaberry"))

    mem.invalidate(long.id)
    assert long.id not in {h.memory.id for h in mem.recall("quokkaberry", mode="vector")}
    mem.restore(long.id)
    hits = mem.recall("quokkaberry appears", mode="vector", limit=1, explain=True)
    assert hits[0].memory.id == long.id
    assert hits[0].explain["lanes"]["vector"]["chunk"] > 0  # type: ignore[index]

    mem.forget(long.id)
    assert store.memory_vectors("default", [rowid]) == {}
    assert long.id not in {h.memory.id for h in mem.recall("quokkaberry", mode="vector")}
    assert mem.stats().embedded == 1


def test_issue15_chunking_reembed_and_export_import_keep_the_chunks(
    backend: Backend, store: Store, tmp_path: Path
) -> None:
    plain = Memory(store, embedder=None)
    text = _long_text("wombatfig")
    first = plain.remember(text)
    mem = Memory(store, embedder=_chunked())
    assert mem.reembed() == 1  # a memory stored without vectors gets all its chunks
    (rowid,) = _rowids(store, [first.id])
    chunks = len(_chunked().chunk_spans(text))
    assert len(store.memory_vectors("default", [rowid])[rowid]) == chunks * 64 * 4
    assert mem.reembed() == 0

    out = tmp_path / "export.jsonl"
    mem.export_file(out, with_vectors=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    (record,) = [r for r in records if r.get("type") == "memory"]
    assert record["embedding_chunks"] == [list(s) for s in _chunked().chunk_spans(text)]
    vectors = np.frombuffer(
        __import__("base64").b64decode(record["embedding"]), dtype="<f4"
    ).reshape(chunks, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)

    copy = Memory(tmp_path / "copy", embedder=_chunked())
    copy.import_file(out)
    hits = copy.recall("wombatfig appears", mode="vector", limit=1, explain=True)
    assert hits[0].memory.id == first.id
    assert hits[0].explain["lanes"]["vector"]["chunk"] == chunks - 1  # type: ignore[index]

    # spans that do not fit the content or the vectors are refused, nothing imported
    too_many = [[0, 1]] * (chunks * 64 + 1)  # more spans than vectors
    for bad in ([[0, 10]], [[0, 10], [5, 10**6]], [[0, 10], [True, 20]], too_many, "x"):
        record["embedding_chunks"] = bad
        broken = tmp_path / "broken.jsonl"
        broken.write_text(
            "\n".join(json.dumps(r if r.get("type") != "memory" else record) for r in records)
            + "\n"
        )
        fresh = Memory(tmp_path / f"fresh-{len(str(bad))}", embedder=None)
        assert fresh.stats().memories == 0
        with pytest.raises(InvalidInputError, match="chunks"):
            fresh.import_file(broken)
        assert fresh.stats().memories == 0
        fresh.close()
    copy.close()
