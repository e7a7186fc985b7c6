"""``engramdb extract`` and ``engramdb history`` against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import Memory, Session, cli, open_store
from engramdb.cli import app
from tests.fake_openai import FakeOpenAI, Reply
from tests.pg_server import PgServer

runner = CliRunner()

MESSAGES = [
    {"role": "user", "content": "I moved to Lyon last week. Call me [bold]Ada[/bold]."},
    {"role": "assistant", "content": "Noted: Lyon."},
    {"role": "user", "content": "I prefer green tea."},
]


def _memory(content: str, seq: int, kind: str = "fact") -> dict[str, object]:
    return {
        "type": kind,
        "content": content,
        "about": "user",
        "occurred_at": None,
        "source_seqs": [seq],
        "importance": 0.6,
    }


EXTRACTED = {
    "memories": [
        _memory("Ada lives in Lyon [since 2026]", 0),
        _memory("Ada prefers green tea", 2, "preference"),
    ],
    "triples": [],
}


@pytest.fixture
def env(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, FakeOpenAI]:
    """A store with one session of three messages; the fake server extracts two memories."""
    data = tmp_path / "data"
    store = open_store(data)
    Session("chat-1", store).add_items(MESSAGES)
    store.close()
    for name in ("ENGRAMDB_LLM", "ENGRAMDB_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "x")
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing:64")
    monkeypatch.setattr(cli.console, "_width", 400)  # no wrapping inside table cells
    fake_openai.default = lambda body: Reply(json.dumps(EXTRACTED), usage=(100, 20))
    return data, fake_openai


def _extract(data: Path, *args: str) -> list[str]:
    return ["extract", "--session", "chat-1", "-d", str(data), "--user", "ada", *args]


def _stored(data: Path) -> list[str]:
    mem = Memory(open_store(data, create=False), embedder="none")
    try:
        return sorted(m.content for m in mem.list().items)
    finally:
        mem.close()


def test_issue11_cli_extract_dry_run_shows_candidates_and_writes_nothing(
    env: tuple[Path, FakeOpenAI],
) -> None:
    data, fake = env
    result = runner.invoke(app, _extract(data, "--dry-run", "--llm", "openai:fake-model"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Ada lives in Lyon [since 2026]" in out  # user text printed literally
    assert "Ada prefers green tea" in out and "preference" in out
    assert "#0" in out and "#2" in out
    assert "add" in out
    assert "1 window(s), 3 item(s), 2 decision(s): add 2; 120 tokens" in out
    assert "dry run: nothing written" in out
    assert len(fake.completions) == 1
    assert _stored(data) == []
    # nothing moved: a real run afterwards sees the same items
    result = runner.invoke(app, _extract(data, "--llm", "openai:fake-model", "--json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] is False and report["tokens"] == 120
    (window,) = report["windows"]
    assert window["seqs"] == [0, 1, 2] and window["model"] == "fake-model"
    decisions = window["decisions"]
    assert [d["action"] for d in decisions] == ["add", "add"]
    assert all(d["memory_id"] for d in decisions)
    assert decisions[0]["candidate"]["source_seqs"] == [0]
    assert _stored(data) == ["Ada lives in Lyon [since 2026]", "Ada prefers green tea"]


def test_issue11_cli_extract_applies_then_has_nothing_new(env: tuple[Path, FakeOpenAI]) -> None:
    data, fake = env
    result = runner.invoke(app, _extract(data, "--llm", "openai:fake-model"))
    assert result.exit_code == 0, result.output
    assert "dry run" not in result.output
    assert _stored(data) == ["Ada lives in Lyon [since 2026]", "Ada prefers green tea"]
    # the high-water mark moved: a second run has no window and asks no model
    result = runner.invoke(app, _extract(data, "--llm", "openai:fake-model"))
    assert result.exit_code == 0, result.output
    assert "0 window(s), 0 item(s), 0 decision(s): nothing; 0 tokens" in result.output
    assert len(fake.completions) == 1


def test_issue11_cli_extract_llm_from_environment(
    env: tuple[Path, FakeOpenAI], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, fake = env
    monkeypatch.setenv("ENGRAMDB_LLM_MODEL", "fake-model")
    result = runner.invoke(app, _extract(data, "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["windows"][0]["model"] == "fake-model"
    assert fake.completions[-1].body["model"] == "fake-model"


def test_issue11_cli_extract_without_llm_is_a_clear_error(env: tuple[Path, FakeOpenAI]) -> None:
    data, fake = env
    result = runner.invoke(app, _extract(data))
    assert result.exit_code == 1
    assert "extraction needs an LLM" in result.output
    assert fake.completions == [] and _stored(data) == []
    # --no-infer needs no model: each message stored as said
    result = runner.invoke(app, _extract(data, "--no-infer"))
    assert result.exit_code == 0, result.output
    assert len(_stored(data)) == 3 and fake.completions == []


def test_issue11_cli_extract_bad_input(env: tuple[Path, FakeOpenAI], tmp_path: Path) -> None:
    data, _ = env
    result = runner.invoke(app, _extract(data, "--llm", "nope:model"))
    assert result.exit_code == 1 and "unknown LLM 'nope:model'" in result.output
    missing = tmp_path / "missing"
    result = runner.invoke(
        app, ["extract", "--session", "s", "-d", str(missing), "--llm", "openai:m"]
    )
    assert result.exit_code == 1 and "no engramdb database" in result.output
    assert not missing.exists()


def test_issue11_cli_history_shows_versions_and_events(env: tuple[Path, FakeOpenAI]) -> None:
    data, _ = env
    result = runner.invoke(app, _extract(data, "--llm", "openai:fake-model", "--json"))
    memory_id = json.loads(result.output)["windows"][0]["decisions"][0]["memory_id"]
    mem = Memory(open_store(data, create=False), embedder="none")
    mem.update(memory_id, content="Ada lives in Paris [now]")
    mem.invalidate(memory_id, reason="moved away")
    mem.close()

    result = runner.invoke(app, ["history", memory_id, "-d", str(data)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Ada lives in Lyon [since 2026]" in out  # version 1, literally
    assert "Ada lives in Paris [now]" in out  # current
    assert "invalidated" in out and "moved away" in out
    assert "chat-1 #0" in out and "nothing similar stored" in out

    result = runner.invoke(app, ["history", memory_id, "-d", str(data), "--json"])
    payload = json.loads(result.output)
    assert payload["memory"]["content"] == "Ada lives in Paris [now]"
    assert [(v["version"], v["content"]) for v in payload["versions"]] == [
        (1, "Ada lives in Lyon [since 2026]")
    ]
    events = payload["events"]
    assert [e["action"] for e in events] == ["add", "invalidate"]
    assert events[0]["item_seqs"] == [0]
    assert events[0]["session_id"] == "chat-1" and events[0]["prompt_version"]
    assert events[1]["reason"] == "moved away"


def test_issue11_cli_history_unknown_id_is_a_clear_error(env: tuple[Path, FakeOpenAI]) -> None:
    data, _ = env
    result = runner.invoke(app, ["history", "mem_[red]nope[/red]", "-d", str(data)])
    assert result.exit_code == 1
    assert "no memory 'mem_[red]nope[/red]' in namespace 'default'" in result.output


def test_issue11_cli_extract_narrow_terminal_cuts_nothing(
    env: tuple[Path, FakeOpenAI], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = env
    monkeypatch.setattr(cli.console, "_width", 60)
    result = runner.invoke(app, _extract(data, "--llm", "openai:fake-model"))
    assert result.exit_code == 0, result.output
    assert "…" not in result.output  # long words and ids fold onto more lines
    memory_id = Memory(open_store(data, create=False), embedder="none").list().items[0].id
    result = runner.invoke(app, ["history", memory_id, "-d", str(data)])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output


def test_issue11_cli_extract_and_history_on_postgresql(
    env: tuple[Path, FakeOpenAI], pg_server: PgServer
) -> None:
    url = pg_server.new_schema()
    store = open_store(url)
    Session("chat-1", store).add_items(MESSAGES)
    store.close()
    result = runner.invoke(
        app, ["extract", "--session", "chat-1", "--store", url, "--llm", "openai:fake-model"]
    )
    assert result.exit_code == 0, result.output
    assert "1 window(s), 3 item(s), 2 decision(s): add 2; 120 tokens" in result.output
    mem = Memory(open_store(url, create=False), embedder="none")
    memory_id = next(m.id for m in mem.list().items if m.content == "Ada prefers green tea")
    mem.close()
    result = runner.invoke(app, ["history", memory_id, "--store", url, "--json"])
    assert result.exit_code == 0, result.output
    (event,) = json.loads(result.output)["events"]
    assert (event["action"], event["session_id"], event["item_seqs"]) == ("add", "chat-1", [2])
