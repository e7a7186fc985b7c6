"""Issue 17 item 7: import streams its input (a file object is read line by line, never
whole; an iterator is never read far ahead), embeds in batches, and reports progress
(``progress(step, done, total)``) for import and export; the CLI reads standard input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import InvalidInputError, Memory, Session
from engramdb.cli import app
from engramdb.embed import HashingEmbedder
from engramdb.embed.base import Vectors
from engramdb.transfer import EMBED_BATCH

N = 300


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording how many texts each ``embed_documents`` call got."""

    def __init__(self) -> None:
        super().__init__(32)
        self.calls: list[int] = []

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        return super().embed_documents(texts)


class LineOnly(io.BytesIO):
    """A file that may be read a line at a time only: reading it whole fails the test."""

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0 or size > 1 << 16:
            raise AssertionError("the whole file was read at once")
        return super().read(size)

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        raise AssertionError("the whole file was read at once")

    def getvalue(self) -> bytes:
        raise AssertionError("the whole file was read at once")


def _export(tmp_path: Path) -> Path:
    mem = Memory(tmp_path / "src", embedder=None)
    mem.remember_many([{"content": f"note {n} about tea"} for n in range(N)])
    mem.learn("Ada", "likes", "tea")
    Session("chat", mem.store).add_items([{"role": "user", "content": f"m{n}"} for n in range(3)])
    path = tmp_path / "dump.jsonl"
    mem.export_file(path)
    mem.store.close()
    return path


def test_issue17_import_streams_a_file_object_line_by_line(tmp_path: Path) -> None:
    data = _export(tmp_path).read_bytes()
    embedder = CountingEmbedder()
    mem = Memory(tmp_path / "dst", embedder=embedder)
    report = mem.import_file(LineOnly(data), batch_size=50)
    assert report.created["memories"] == N + 1 and report.created["session_items"] == 3
    # embedded in model-sized batches, every memory once
    assert max(embedder.calls) <= EMBED_BATCH and sum(embedder.calls) == N + 1
    assert mem.stats().embedded == N + 1
    # a stream that cannot be read twice (check, then write) is refused with what to do
    with pytest.raises(InvalidInputError, match="seekable"):
        mem.import_file(_Unseekable(data))


class _Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


def test_issue17_import_consumes_records_as_they_come(tmp_path: Path) -> None:
    """An iterator of records is never read ahead by more than a batch: memory stays bounded
    whatever the input's size (here: stored rows are checked while the input is produced)."""
    mem = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    batch = 40

    def records() -> Iterator[dict[str, Any]]:
        yield {"type": "engramdb-export", "version": 1}
        yield {"type": "namespace", "namespace": "default"}
        for n in range(1, N + 1):
            assert mem.stats().memories >= n - 1 - batch, n  # written while reading
            yield {"type": "memory", "id": f"mem_{n:032x}", "content": f"note {n}",
                   "created_at": "2024-01-01T00:00:00Z"}  # fmt: skip
        yield {"type": "end", "counts": {"namespace": 1, "memory": N}}

    steps: list[tuple[str, int, int | None]] = []
    report = mem.import_records(records(), batch_size=batch, progress=lambda *a: steps.append(a))
    assert report.created["memories"] == N and report.records == N
    assert steps[0] == ("importing", 0, None) and steps[-1] == ("importing", N, None)
    assert all(b[1] - a[1] <= EMBED_BATCH for a, b in pairwise(steps))


def test_issue17_import_and_export_report_progress(tmp_path: Path) -> None:
    path = _export(tmp_path)
    size = path.stat().st_size
    records = N + 1 + 1 + 1 + 3  # memories (+ the fact's), fact, session, its items
    steps: list[tuple[str, int, int | None]] = []
    mem = Memory(tmp_path / "dst", embedder=HashingEmbedder(32))
    mem.import_file(path, progress=lambda *a: steps.append(a))
    checking = [s for s in steps if s[0] == "checking"]
    importing = [s for s in steps if s[0] == "importing"]
    assert checking[0] == ("checking", 0, size) and checking[-1] == ("checking", size, size)
    assert importing[0] == ("importing", 0, records)
    assert importing[-1] == ("importing", records, records)
    assert len(importing) > N // EMBED_BATCH  # moves with each batch, not once at the end
    steps.clear()
    counts = mem.export_file(tmp_path / "again.jsonl", progress=lambda *a: steps.append(a))
    total = records - 0  # memories, facts, sessions and items: what stats count
    assert steps[0] == ("exporting", 0, total) and steps[-1] == ("exporting", total, total)
    assert counts["memory"] == N + 1


def test_issue17_cli_import_from_standard_input_with_progress(tmp_path: Path) -> None:
    path = _export(tmp_path)
    runner = CliRunner()
    data = ["-d", str(tmp_path / "dst"), "--embedder", "hashing"]
    result = runner.invoke(app, ["import", "-", *data], input=path.read_bytes())
    assert result.exit_code == 0, result.output
    assert f"imported {N + 1:,} memories" in result.stdout
    assert "records/s" in result.stderr and "importing" in result.stderr
    again = runner.invoke(app, ["import", str(path), *data])  # idempotent: all already there
    assert again.exit_code == 0 and "imported 0 memories" in again.stdout
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["export", str(out), *data[:2]])
    assert result.exit_code == 0 and "records/s" in result.stderr
    assert sum(1 for line in out.read_text().splitlines() if json.loads(line)["type"] == "memory")
    result = runner.invoke(app, ["reembed", *data[:2], "--embedder", "hashing:64"])
    assert result.exit_code == 0 and f"embedded {N + 1:,} memories" in result.stdout
    assert f"{N + 1:,}/{N + 1:,}" in result.stderr and "memories/s" in result.stderr
