"""The command line over a data directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engramdb import Session, open_store
from engramdb.cli import app

runner = CliRunner()


def populated(tmp_path: Path) -> Path:
    store = open_store(tmp_path / "data")
    Session("chat-1", store).add_items(
        [{"role": "user", "content": "hello there"}, {"type": "function_call", "name": "f"}]
    )
    Session("chat-2", store).add_items([{"role": "user", "content": "second"}])
    store.close()
    return tmp_path / "data"


def test_sessions_list_table_and_json(tmp_path: Path) -> None:
    data = populated(tmp_path)
    result = runner.invoke(app, ["sessions", "list", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "chat-1" in result.output and "chat-2" in result.output
    result = runner.invoke(app, ["sessions", "list", "-d", str(data), "--json"])
    rows = json.loads(result.output)
    assert {r["session_id"]: r["item_count"] for r in rows} == {"chat-1": 2, "chat-2": 1}


def test_sessions_show(tmp_path: Path) -> None:
    data = populated(tmp_path)
    result = runner.invoke(app, ["sessions", "show", "chat-1", "-d", str(data), "--json"])
    assert json.loads(result.output)[0] == {"role": "user", "content": "hello there"}
    result = runner.invoke(app, ["sessions", "show", "chat-1", "-d", str(data), "--limit", "1"])
    assert "function_call" in result.output and "hello there" not in result.output


def test_sessions_clear(tmp_path: Path) -> None:
    data = populated(tmp_path)
    result = runner.invoke(app, ["sessions", "clear", "chat-1", "-d", str(data), "--yes"])
    assert result.exit_code == 0 and "cleared 2 items" in result.output
    assert Session("chat-1", open_store(data)).get_items() == []
    assert Session("chat-2", open_store(data)).get_items() != []
    result = runner.invoke(app, ["sessions", "clear", "nope", "-d", str(data), "--yes"])
    assert result.exit_code == 1 and "no session 'nope'" in result.output


def test_missing_database_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sessions", "list", "-d", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "no engramdb database" in result.output
    assert not (tmp_path / "missing").exists()


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "engram.db").write_bytes(b"garbage" * 1000)
    result = runner.invoke(app, ["sessions", "list", "-d", str(tmp_path)])
    assert result.exit_code == 1
    assert "not an engramdb database" in result.output
    assert "Traceback" not in result.output


def test_memory_commands_round_trip(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    common = ["-d", data, "--embedder", "hashing"]
    result = runner.invoke(
        app, ["remember", "Ada likes green tea", *common, "-u", "ada", "-t", "prefs", "--json"]
    )
    assert result.exit_code == 0, result.output
    memory_id = json.loads(result.output)["id"]
    runner.invoke(app, ["remember", "Bob likes coffee", *common, "-u", "bob"])
    result = runner.invoke(app, ["recall", "green tea", *common, "--json", "-k", "1"])
    assert [r["id"] for r in json.loads(result.output)] == [memory_id]
    result = runner.invoke(app, ["recall", "tea", *common, "--explain"])
    assert "Ada likes green tea" in result.output and "text#1" in result.output
    result = runner.invoke(
        app, ["learn", "Ada", "lives_in", "Paris", "-d", data, "--single", "--embedder", "none"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["facts", "-s", "Ada", "-d", data, "--json"])
    assert [f["object"] for f in json.loads(result.output)] == ["Paris"]
    result = runner.invoke(app, ["stats", "-d", data, "--json"])
    assert json.loads(result.output)["memories"] == 3
    result = runner.invoke(app, ["forget", "-u", "ada", "-d", data, "--dry-run"])
    assert "would remove 1 memories" in result.output
    result = runner.invoke(app, ["forget", memory_id, "-d", data])
    assert "removed 1 memories" in result.output
    result = runner.invoke(app, ["forget", "-d", data])
    assert result.exit_code == 1 and "refusing to forget without a scope" in result.output


def test_export_import_cli(tmp_path: Path) -> None:
    data, copy = str(tmp_path / "a"), str(tmp_path / "b")
    for n in range(7):
        runner.invoke(app, ["remember", f"note {n}", "-d", data, "--embedder", "none"])
    out = tmp_path / "dump.jsonl"
    result = runner.invoke(app, ["export", str(out), "-d", data])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 7 + 3  # header, namespace, end
    result = runner.invoke(app, ["import", str(out), "-d", copy, "--embedder", "none"])
    assert result.exit_code == 0 and "imported 7 memories" in result.output
    result = runner.invoke(app, ["export", "-d", copy])
    assert [json.loads(line) for line in result.output.splitlines()] == [
        json.loads(line) for line in out.read_text().splitlines()
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "fine"}\n{not json\n')
    result = runner.invoke(app, ["import", str(bad), "-d", copy, "--embedder", "none"])
    assert result.exit_code == 1 and "bad.jsonl:2 is not valid JSON" in result.output
    result = runner.invoke(app, ["reembed", "-d", copy, "--embedder", "hashing"])
    assert result.exit_code == 0 and "embedded 7 memories" in result.output
