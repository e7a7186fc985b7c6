"""bench/locomo.py's measures on a tiny synthetic conversation (the real data is not needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import locomo
from engramdb import Memory, RecallSettings
from engramdb.embed.hashing import HashingEmbedder


def conversation() -> dict[str, Any]:
    def turn(session: int, n: int, speaker: str, text: str) -> dict[str, str]:
        return {"dia_id": f"D{session}:{n}", "speaker": speaker, "text": text}

    return {
        "conversation": {
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                turn(1, 1, "Ann", "I adopted a puppy called Biscuit"),
                turn(1, 2, "Bob", "Congratulations on the puppy"),
            ],
            "session_2_date_time": "2:10 pm on 9 May, 2023",
            "session_2": [
                turn(2, 1, "Ann", "Biscuit chewed my shoes today"),
                turn(2, 2, "Bob", "Puppies do that"),
            ],
        },
        "qa": [
            {"question": "What is the puppy called?", "evidence": ["D1:1"], "category": 4},
            {"question": "What did Biscuit chew?", "evidence": ["D2:1", "D1:1"], "category": 1},
        ],
    }


def test_issue15_diversity_bench_counts_sessions_and_documents(tmp_path: Path) -> None:
    data = [conversation()]
    qs = locomo.questions(data[0], "conv-0")
    memo = locomo.MemoEmbedder(HashingEmbedder())
    turns_mem = Memory(tmp_path / "turns", embedder=memo)
    ids, _, count = locomo.ingest(turns_mem, data)
    assert count == 4 and sorted(ids.values()) == ["D1:1", "D1:2", "D2:1", "D2:2"]
    result = locomo.evaluate(turns_mem, qs, ids, "hybrid", RecallSettings())
    assert result["recall@10"] == 1.0  # four turns: everything is in the top 10
    assert result["sessions@5"] == 2.0  # both sessions among the first five
    # one memory per session, all in one session_id; a hit is the evidence's session
    docs = list(locomo.documents(data[0]))
    assert [d["dia_id"] for d in docs] == ["D1", "D2"]
    assert (
        docs[0]["content"]
        == "Ann: I adopted a puppy called Biscuit\nBob: Congratulations on the puppy"
    )
    doc_mem = Memory(tmp_path / "docs", embedder=memo)
    doc_ids, _, _ = locomo.ingest(doc_mem, data, locomo.documents)
    per_doc = locomo.evaluate(doc_mem, qs, doc_ids, "hybrid", per_document=True)
    assert per_doc["recall@10"] == 1.0
    # the cache embedded each text once, however often it was asked
    assert len(memo.documents) == 6
    cells = locomo.grid(quick=True)
    assert all(isinstance(cell, RecallSettings) for _, cell in cells) and len(cells) == 4
