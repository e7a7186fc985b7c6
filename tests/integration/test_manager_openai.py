"""The memory manager end to end over real HTTP: Memory.add_messages with OpenAICompatibleLLM
against the fake OpenAI-compatible server (json_schema answers, and the plain-prompt fallback
for endpoints that refuse response_format)."""

from __future__ import annotations

from pathlib import Path

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.llm.openai_compat import OpenAICompatibleLLM
from tests.fake_openai import FakeOpenAI

SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def _memory(tmp_path: Path, fake: FakeOpenAI) -> Memory:
    llm = OpenAICompatibleLLM("fake-model", base_url=fake.base_url, api_key="test", backoff=0.0)
    return Memory(tmp_path / "data", embedder=HashingEmbedder(256), llm=llm)


def _fact(content: str, seq: int) -> dict[str, object]:
    return {
        "type": "preference",
        "content": content,
        "about": "user",
        "occurred_at": "2026-11-24",
        "source_seqs": [seq],
        "importance": 0.7,
    }


def test_issue11_add_messages_through_the_fake_openai_server(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    mem = _memory(tmp_path, fake_openai)
    fake_openai.answer({"memories": [_fact("Ada prefers green tea", 0)], "triples": []})
    fake_openai.answer({"memories": [_fact("Ada now prefers black tea", 1)], "triples": []})
    fake_openai.answer(
        {"action": "update", "handle": 1, "content": "Ada prefers black tea", "reason": "changed"}
    )
    mem.add_messages(
        [{"role": "user", "content": f"I prefer green tea. My token is {SECRET}"}],
        session_id="chat",
        user_id="ada",
    )
    report = mem.add_messages(
        [{"role": "user", "content": "Actually, black tea these days"}],
        session_id="chat",
        user_id="ada",
    )
    assert [d.action for d in report.decisions] == ["update"]
    (tea,) = mem.list({"user_id": "ada"}).items
    assert tea.content == "Ada prefers black tea"
    assert [e.action for e in mem.events(tea.id)] == ["add", "update"]
    assert mem.events(tea.id)[1].model == "fake-model"
    sent = [r.body for r in fake_openai.completions]
    assert len(sent) == 3
    assert sent[0]["response_format"]["type"] == "json_schema"
    assert all(SECRET not in str(body) for body in sent)  # redacted before it left
    assert report.tokens > 0


def test_issue11_add_messages_falls_back_to_a_plain_prompt(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reject_json_schema = True
    mem = _memory(tmp_path, fake_openai)
    fake_openai.answer(
        'Here you go:\n```json\n{"memories": [{"type": "fact", "content": "Ada lives in Lyon",'
        ' "about": "user", "occurred_at": null, "source_seqs": [0], "importance": 0.5}],'
        ' "triples": []}\n```'
    )
    mem.add_messages([{"role": "user", "content": "I live in Lyon"}], session_id="s", user_id="ada")
    assert [m.content for m in mem.list().items] == ["Ada lives in Lyon"]
    last = fake_openai.completions[-1].body
    assert "response_format" not in last or last["response_format"].get("type") != "json_schema"


def test_issue11_delete_and_none_decisions_through_the_fake_openai_server(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    mem = _memory(tmp_path, fake_openai)
    fake_openai.answer({"memories": [_fact("Ada owns a dog named Rex", 0)], "triples": []})
    mem.add_messages([{"role": "user", "content": "My dog Rex"}], session_id="s", user_id="ada")
    (rex,) = mem.list().items
    fake_openai.answer({"memories": [_fact("Ada has a dog called Rex", 1)], "triples": []})
    fake_openai.answer({"action": "none", "handle": 1, "content": None, "reason": "known"})
    fake_openai.answer({"memories": [_fact("Ada no longer has a dog", 2)], "triples": []})
    fake_openai.answer({"action": "delete", "handle": 1, "content": None, "reason": "Rex died"})
    first = mem.add_messages([{"role": "user", "content": "Rex!"}], session_id="s", user_id="ada")
    assert [d.action for d in first.decisions] == ["none"]
    assert [m.id for m in mem.list().items] == [rex.id]  # nothing new stored
    second = mem.add_messages(
        [{"role": "user", "content": "Rex passed away"}], session_id="s", user_id="ada"
    )
    assert [d.action for d in second.decisions] == ["delete"]
    assert mem.get(rex.id).invalidated and mem.list().items == []
    actions = [(e.action, e.model, e.reason) for e in mem.events(rex.id)]
    assert actions[-2:] == [
        ("none", "fake-model", "known"),
        ("invalidate", "fake-model", "Rex died"),
    ]
