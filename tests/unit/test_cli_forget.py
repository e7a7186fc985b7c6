"""engramdb forget / forget-fact (issue 10, items 9 and 11)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engramdb import Memory, open_store
from engramdb.cli import app

runner = CliRunner()


def _data(tmp_path: Path) -> Path:
    mem = Memory(open_store(tmp_path / "data"), embedder=None)
    for n in range(3):
        mem.remember(f"ann note {n}", user_id="ann", occurred_at=f"2024-01-0{n + 1}T00:00:00Z")
    mem.remember("bob note", user_id="bob", occurred_at="2024-01-01T00:00:00Z")
    mem.learn("ann", "lives_in", "Oslo", single_valued=True, valid_from="2020-01-01")
    mem.learn("ann", "lives_in", "Rome", single_valued=True)
    mem.learn("bob", "likes", "tea")
    mem.close()
    return tmp_path / "data"


def _count(data: Path) -> tuple[int, int]:
    with Memory(open_store(data), embedder=None) as mem:
        stats = mem.stats()
        return stats.memories, stats.triples


def test_item_11_cli_time_range_is_not_a_scope_and_asks_first(tmp_path: Path) -> None:
    data = _data(tmp_path)
    d = ["-d", str(data)]
    assert _count(data) == (6, 3)  # 4 notes + the 2 current facts' memories
    r = runner.invoke(app, ["forget", "--since", "2000-01-01T00:00:00Z", "--yes", *d])
    assert r.exit_code == 1 and "scope" in r.output
    assert _count(data) == (6, 3)
    # a scoped forget shows the dry-run count, then asks: "no" removes nothing
    r = runner.invoke(app, ["forget", "-u", "ann", *d], input="n\n")
    assert r.exit_code == 1 and "would remove 3 memories" in r.output
    assert _count(data) == (6, 3)
    r = runner.invoke(
        app, ["forget", "-u", "ann", "--until", "2024-01-02T12:00:00Z", *d], input="y\n"
    )
    assert r.exit_code == 0, r.output
    assert "would remove 2 memories" in r.output and "removed 2 memories" in r.output
    r = runner.invoke(app, ["forget", "-u", "ann", "--dry-run", *d])
    assert r.exit_code == 0 and "would remove 1 memories" in r.output
    r = runner.invoke(app, ["forget", "--all", "--until", "2024-01-02T00:00:00Z", "--yes", *d])
    assert r.exit_code == 0 and "removed 1 memories" in r.output  # bob's note
    assert _count(data) == (3, 3)


def test_item_09_cli_forget_fact_by_id_and_pattern(tmp_path: Path) -> None:
    data = _data(tmp_path)
    d = ["-d", str(data)]
    with Memory(open_store(data), embedder=None) as mem:
        tea = mem.facts("bob")[0].id
    r = runner.invoke(app, ["forget-fact", tea, *d])
    assert r.exit_code == 0 and "removed 1 facts" in r.output and tea in r.output
    r = runner.invoke(app, ["forget-fact", tea, *d])
    assert r.exit_code == 1 and "no fact" in r.output
    r = runner.invoke(app, ["forget-fact", "--yes", *d])
    assert r.exit_code == 1 and "pattern" in r.output
    r = runner.invoke(app, ["forget-fact", "-s", "ann", *d], input="n\n")
    assert r.exit_code == 1 and "would remove 2 facts" in r.output
    assert _count(data) == (5, 2)
    r = runner.invoke(app, ["forget-fact", "-s", "ann", "-p", "lives_in", "--yes", *d])
    assert r.exit_code == 0 and "removed 2 facts" in r.output
    assert _count(data) == (4, 0)  # the facts' memories went with them
