"""Issue 10, item 12: the export file format's edges: bad files, old files, options."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import InvalidInputError, Memory, Session
from engramdb.cli import app
from engramdb.embed import HashingEmbedder


def _populated(path: Path) -> Memory:
    mem = Memory(path, embedder=HashingEmbedder(32))
    a = mem.remember("Ada prefers green tea", user_id="ada", tags=["prefs"])
    mem.update(a.id, content="Ada prefers jasmine tea")
    for n in range(5):
        mem.remember(f"note {n}", session_id="s1", metadata={"n": n})
    mem.learn("Ada", "lives_in", "Paris")
    Session("chat", mem.store).add_items([{"role": "user", "content": "hi"}, {"n": 2}])
    mem.remember("other tenant", namespace="other")
    return mem


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    mem = _populated(tmp_path / "src")
    out = tmp_path / "dump.jsonl"
    mem.export_file(out)
    mem.close()
    return out


def _empty(tmp_path: Path, name: str = "dst") -> Memory:
    return Memory(tmp_path / name, embedder=None)


def test_item_12_malformed_line_is_named_and_nothing_is_imported(
    tmp_path: Path, dump: Path
) -> None:
    lines = dump.read_text().splitlines()
    lines[5] = lines[5][:-3]  # a line cut in the middle
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    target = _empty(tmp_path)
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:6 is not valid JSON"):
        target.import_file(bad)
    assert target.stats().memories == 0 and target.stats().sessions == 0


def test_item_12_invalid_record_is_named_and_nothing_is_imported(
    tmp_path: Path, dump: Path
) -> None:
    records = _lines(dump)
    n = next(i for i, r in enumerate(records) if r["type"] == "memory" and r["version"] == 1)
    records[n]["importance"] = "high"
    bad = _write(tmp_path / "bad.jsonl", records)
    target = _empty(tmp_path)
    with pytest.raises(InvalidInputError, match=rf"bad\.jsonl:{n + 1}: importance must be"):
        target.import_file(bad)
    assert target.stats().memories == 0
    records[n]["importance"] = 0.5
    records[n]["colour"] = "blue"
    with pytest.raises(InvalidInputError, match=rf":{n + 1}: unknown field\(s\).*'colour'"):
        target.import_file(_write(tmp_path / "bad.jsonl", records))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "export format version 2 is not supported"),
        ({"version": None}, "export format version None is not supported"),
        ({"type": "something-else"}, "not an engramdb export"),
    ],
)
def test_item_12_unknown_version_is_refused(
    tmp_path: Path, dump: Path, change: dict[str, object], message: str
) -> None:
    records = _lines(dump)
    records[0].update(change)
    target = _empty(tmp_path)
    with pytest.raises(InvalidInputError, match=rf"dump2\.jsonl:1: {message}"):
        target.import_file(_write(tmp_path / "dump2.jsonl", records))
    assert target.stats().memories == 0


def test_item_12_structural_errors(tmp_path: Path, dump: Path) -> None:
    target = _empty(tmp_path)
    records = _lines(dump)
    cases = [
        ([*records[:2], {"type": "mystery"}, *records[2:]], ":3: unknown record type 'mystery'"),
        ([records[0], *records[2:]], ":2: a memory record before any namespace record"),
        (
            [*records[:-1], {"type": "end", "counts": {**records[-1]["counts"], "memory": 1}}],
            "the end record counts 1 memory",
        ),
        ([*records, records[1]], "a record after the end record"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            target.import_file(_write(tmp_path / "x.jsonl", bad))
        assert target.stats().memories == 0, message


def test_item_12_truncated_file_is_reported_and_completed_by_a_full_import(
    tmp_path: Path, dump: Path
) -> None:
    records = _lines(dump)
    cut = _write(tmp_path / "cut.jsonl", records[:-2])  # in the middle of the session
    target = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    with pytest.raises(InvalidInputError, match="cut short"):
        target.import_file(cut)  # the file is checked whole first: nothing imported
    assert target.stats().memories == 0
    # records streamed without that check (an interrupted import) keep what came before
    with pytest.raises(InvalidInputError, match="cut short"):
        target.import_records(records[:-2])
    assert target.stats().memories == 7 and target.stats().session_items == 1
    assert target.import_file(dump).created["session_items"] == 1
    out = tmp_path / "again.jsonl"
    target.export_file(out)
    assert out.read_bytes() == dump.read_bytes()


def test_item_12_legacy_files_still_import_and_twice_is_harmless(tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"  # the format before version 1: one memory per line
    old.write_text(
        json.dumps(
            {
                "id": "mem_legacy1",
                "content": "Ada prefers tea",
                "user_id": "ada",
                "agent_id": None,
                "session_id": None,
                "tags": ["prefs"],
                "metadata": {"k": 1},
                "importance": 0.8,
                "occurred_at": "2024-05-01T00:00:00+00:00",
                "created_at": "2024-05-02T00:00:00+00:00",
            }
        )
        + "\n\n"
        + json.dumps({"content": "no id, no time"})
        + "\n"
    )
    target = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    first = target.import_file(old)
    assert first.legacy and first.created["memories"] == 2
    second = target.import_file(old)
    assert second.created["memories"] == 0 and second.skipped["memories"] == 2
    got = target.get("mem_legacy1")
    assert got.created_at == datetime(2024, 5, 2, tzinfo=UTC) and got.metadata == {"k": 1}
    assert target.stats().memories == 2 and target.stats().embedded == 2


def test_item_12_without_vectors_the_importer_embeds(tmp_path: Path, dump: Path) -> None:
    records = _lines(dump)
    assert all("embedding" not in r for r in records)  # portable by default
    assert {r["embedding_model"] for r in records if r["type"] == "memory"} == {"hashing-v1-32"}
    target = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    target.import_file(dump)
    assert target.stats().embedded == target.stats().memories == 7
    out = tmp_path / "again.jsonl"
    target.export_file(out)
    assert out.read_bytes() == dump.read_bytes()


def test_item_12_namespaces(tmp_path: Path) -> None:
    mem = _populated(tmp_path / "src")
    full = tmp_path / "full.jsonl"
    mem.export_file(full, all_namespaces=True)
    assert _lines(full)[0]["namespaces"] == ["default", "other"]
    target = _empty(tmp_path)
    with pytest.raises(InvalidInputError, match="more than one namespace"):
        target.import_file(full)
    report = target.import_file(full, all_namespaces=True)
    assert report.namespaces == ["default", "other"]
    assert target.stats(namespace="other").memories == 1
    view = mem.scoped("default")  # a namespace-bound view reaches nothing else
    with pytest.raises(InvalidInputError, match="bound to namespace"):
        list(view.export(all_namespaces=True))
    with pytest.raises(InvalidInputError, match="bound to namespace"):
        _empty(tmp_path, "third").scoped("x").import_file(full, all_namespaces=True)


def test_item_12_cli_export_import(tmp_path: Path) -> None:
    runner = CliRunner()
    _populated(tmp_path / "src").close()
    out = tmp_path / "full.jsonl"
    args = ["-d", str(tmp_path / "src"), "--all-namespaces", "--with-vectors"]
    result = runner.invoke(app, ["export", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "memories" in result.output and "session items" in result.output
    assert all(r.get("embedding") for r in _lines(out) if r["type"] == "memory")
    result = runner.invoke(app, ["export", *args])  # to stdout
    assert result.stdout_bytes == out.read_bytes()
    dst = ["-d", str(tmp_path / "dst"), "--embedder", "none"]
    result = runner.invoke(app, ["import", str(out), *dst, "--all-namespaces"])
    assert result.exit_code == 0, result.output
    assert "imported 8 memories into 'default', 'other'" in result.output
    result = runner.invoke(app, ["import", str(out), *dst, "--all-namespaces"])
    assert result.exit_code == 0 and "imported 0 memories" in result.output
    result = runner.invoke(app, ["import", str(out), *dst])
    assert result.exit_code == 1 and "more than one namespace" in result.output


def test_item_12_pages_and_batches_do_not_change_the_result(
    tmp_path: Path, dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engramdb.transfer

    monkeypatch.setattr(engramdb.transfer, "PAGE", 2)  # every read crosses page boundaries
    mem = Memory(tmp_path / "src", embedder=HashingEmbedder(32))
    Session("chat", mem.store).add_items([{"n": n} for n in range(3, 8)])
    mem.learn("Ada", "likes", "tea")
    paged = tmp_path / "paged.jsonl"
    mem.export_file(paged)
    records = _lines(paged)
    with monkeypatch.context() as m:
        m.setattr(engramdb.transfer, "PAGE", 500)
        whole = tmp_path / "whole.jsonl"
        mem.export_file(whole)
    assert paged.read_bytes() == whole.read_bytes()
    assert [r["type"] for r in records].count("session_item") == 7
    assert [r["type"] for r in records].count("triple") == 2
    target = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    # a session holding the file's first items (an import cut short) is completed in pages
    Session("chat", target.store).add_items([{"role": "user", "content": "hi"}, {"n": 2}])
    Session("chat", target.store).add_items([{"n": n} for n in range(3, 5)])
    report = target.import_file(paged, batch_size=2)
    assert report.skipped["session_items"] == 4 and report.created["session_items"] == 3
    again = tmp_path / "again.jsonl"
    target.export_file(again)
    assert [r for r in _lines(again) if r["type"] not in ("session", "session_item")] == [
        r for r in records if r["type"] not in ("session", "session_item")
    ]
    items = [r["data"] for r in _lines(again) if r["type"] == "session_item"]
    assert items == [r["data"] for r in records if r["type"] == "session_item"]
    assert sum(target.import_file(paged, batch_size=2).created.values()) == 0
