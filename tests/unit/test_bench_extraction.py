"""The extraction benchmarks run: tiny sizes against the fake server, and the quality harness
skips cleanly without a model endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import extraction, extraction_quality


def test_issue11_bench_extraction_measures_and_writes_results(tmp_path: Path) -> None:
    payload = extraction.run(sessions=2, turns=5, iterations=40, directory=tmp_path)
    written = json.loads((tmp_path / "extraction.json").read_text())
    assert written == payload
    for key in ("items_per_s", "add_items_overhead_p50_ms", "add_items_overhead_p95_ms"):
        assert isinstance(written[key], float)
    assert written["items_per_s"] > 0
    e2e = written["end_to_end"]
    assert e2e["items"] == 20 and e2e["memories_added"] == 10  # one fact per user message
    assert written["hot_path"]["iterations"] == 40
    assert "Method:" in (tmp_path / "extraction.md").read_text()


def test_issue11_bench_quality_skips_without_a_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ENGRAMDB_LLM_MODEL", raising=False)
    monkeypatch.setattr(extraction_quality, "run", lambda *a, **k: pytest.fail("ran"))
    extraction_quality.main()
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped, no model endpoint configured" in out
    assert "ENGRAMDB_LLM_BASE_URL=http://localhost:11434/v1" in out


def test_issue11_bench_quality_maps_provenance_to_dialog_turns() -> None:
    conversation = {
        "conversation": {
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a cat."},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a cat"},
            ],
        },
        "qa": [
            {"question": "What did Ana adopt?", "answer": "a cat", "evidence": ["D1:1"]},
            {"question": "adversarial", "answer": "x", "evidence": ["D1:2"], "category": 5},
            {"question": "no evidence", "answer": "x", "evidence": []},
        ],
    }
    ((header, said),) = extraction_quality.dialog_sessions(conversation)
    assert header == "[conversation session 1, 1:56 pm on 8 May, 2023]"
    assert said == [("D1:1", "Ana: I adopted a cat."), ("D1:2", "Bo: Nice! [image: a cat]")]
    assert extraction_quality.qa_items(conversation) == [("What did Ana adopt?", "a cat", {"D1:1"})]
    assert extraction_quality.token_f1("A cat.", "a cat") == 1.0
    assert extraction_quality.token_f1("a dog", "a cat") == 0.0
