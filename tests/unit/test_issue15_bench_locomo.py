"""Issue 15 items 2 and 7 in the LoCoMo bench: questions asked as of the conversation's end,
the time ablation and the embedder comparison (on a tiny conversation in LoCoMo's format)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import locomo
from engramdb import Memory, open_store

DATA: list[dict[str, Any]] = [
    {
        "conversation": {
            "speaker_a": "Ada",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ada", "dia_id": "D1:1", "text": "I adopted a puppy called Coco"},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Lovely, I started pottery"},
            ],
            "session_2_date_time": "10:00 am on 20 June, 2023",
            "session_2": [
                {"speaker": "Ada", "dia_id": "D2:1", "text": "Coco chewed my shoes"},
                {"speaker": "Bo", "dia_id": "D2:2", "text": "My pottery class went well"},
            ],
        },
        "qa": [
            {"question": "What did Ada adopt in May 2023?", "category": 2, "evidence": ["D1:1"]},
            {"question": "What class did Bo go to?", "category": 4, "evidence": ["D2:2"]},
        ],
    }
]


def test_issue15_bench_locomo_as_of_and_options() -> None:
    assert locomo.conversation_end(DATA[0]) == datetime(2023, 6, 20, 10, 0, tzinfo=UTC)
    opts = locomo.options(["locomo", "--time", "--embedder", "minilm-l6-int8,minilm-l3"])
    assert opts.time and opts.embedder == "minilm-l6-int8,minilm-l3"
    assert not locomo.options(["locomo"]).time


def test_issue15_bench_locomo_time_ablation_and_embedders() -> None:
    qs = locomo.questions(DATA[0], "conv-0")
    as_of = {"conv-0": locomo.conversation_end(DATA[0])}
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(open_store(Path(tmp) / "s"), embedder="hashing")
        ids, _, count = locomo.ingest(memory, DATA)
        assert count == 4
        ablation = locomo.run_time_ablation(memory, qs, ids, as_of)
        memory.store.close()
    names = [row["variant"] for row in ablation]
    assert names == [*locomo.TIME_VARIANTS, "boost, no as_of (now)"]
    assert all(row["timed_questions"] == 1 for row in ablation)  # "in May 2023"
    assert all(0.0 <= row["all"]["recall@10"] <= 1.0 for row in ablation)
    rows = locomo.run_embedders(("minilm-l6-int8", "no-such-model"), DATA, qs, as_of, None, {})
    measured = {row["model"]: row for row in rows}
    assert measured["minilm-l6-int8"]["passages_per_s"] > 0
    assert measured["minilm-l6-int8"]["hybrid"]["recall@10"] > 0
    assert "no-such-model" in measured["no-such-model"]["error"]
    md = locomo.extra_sections({"time_ablation": ablation, "embedders": rows})
    assert "## Time-aware recall" in md and "| boost (default) |" in md
    assert "## Choosing an embedder" in md and "| minilm-l6-int8 |" in md
    assert "| no-such-model | not run:" in md
