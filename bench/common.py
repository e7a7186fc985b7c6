"""Shared helpers for the benchmarks: timing, machine description, writing results."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def machine() -> str:
    """A one-line description of this machine for result files."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()}"
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, nearest-rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_results(
    name: str,
    payload: dict[str, Any],
    columns: list[str],
    rows: list[list[str]],
    title: str,
    notes: str = "",
    directory: Path = RESULTS,
) -> None:
    """Write ``results/NAME.json`` and ``results/NAME.md`` (or into ``directory``) and print
    the table."""
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.json").write_text(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    )
    md = [
        f"# {title}",
        "",
        f"{payload.get('date', today())} — {payload.get('machine', machine())}",
        "",
    ]
    md.append("| " + " | ".join(columns) + " |")
    md.append("|" + "|".join("---" for _ in columns) + "|")
    md += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        md += ["", notes]
    (directory / f"{name}.md").write_text("\n".join(md) + "\n")
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def receive(out: Any, procs: list[Any], timeout: float) -> Any:
    """The next message from a worker; fails at once if a worker died instead of reporting."""
    import queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return out.get(timeout=1)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                for p in procs:
                    p.kill()
                raise RuntimeError(
                    f"a benchmark process failed (exit code {dead[0].exitcode})"
                ) from None
    raise TimeoutError("benchmark processes did not report in time")


class Timer:
    """Run a callable repeatedly for about ``seconds`` and report operations per second."""

    def __init__(self, seconds: float = 1.0, min_runs: int = 20) -> None:
        self.seconds, self.min_runs = seconds, min_runs

    def ops_per_s(self, run_once: Any) -> float:
        runs, start = 0, time.perf_counter()
        while runs < self.min_runs or time.perf_counter() - start < self.seconds:
            run_once()
            runs += 1
        return runs / (time.perf_counter() - start)


class RawFts5:
    """The raw full-text baseline of ``bench locomo`` and ``bench scale``: the same rows'
    content in a plain FTS5 table per namespace (in memory, the store's tokenizer), searched
    with one ``MATCH … ORDER BY rank LIMIT k`` for the same terms the text lane searches."""

    def __init__(self) -> None:
        import sqlite3

        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.tables: dict[str, str] = {}

    def add(self, namespace: str, contents: Sequence[str]) -> None:
        table = self.tables.get(namespace)
        if table is None:
            table = self.tables[namespace] = f"raw_{len(self.tables)}"
            self.conn.execute(
                f"CREATE VIRTUAL TABLE {table} USING fts5(content, "
                "tokenize = 'porter unicode61 remove_diacritics 2')"
            )
        self.conn.executemany(f"INSERT INTO {table} (content) VALUES (?)", [(c,) for c in contents])
        self.conn.commit()

    def search(self, namespace: str, match: str, k: int) -> list[int]:
        sql = f"SELECT rowid FROM {self.tables[namespace]} WHERE {self.tables[namespace]} MATCH ? "
        return [r[0] for r in self.conn.execute(sql + "ORDER BY rank LIMIT ?", (match, k))]


def text_lane_match(memory: Any, namespace: str, query: str) -> str | None:
    """The FTS5 MATCH expression of the terms ``memory``'s text lane searches for ``query``
    (its plan: tag tokens, scope names and the namespace's commonest words left out)."""
    from engramdb.search.query import fts_match
    from engramdb.search.recall import Retriever

    retriever = Retriever(memory.store, None, lambda: None, max_query_chars=memory.max_query_chars)
    plan = retriever.plan(namespace, query, None, None, 10, "text", False, memory.settings)
    return fts_match(retriever.text_terms(plan)) if plan.text.strip() else None


def timed_ms(run_once: Any) -> float:
    start = time.perf_counter()
    run_once()
    return (time.perf_counter() - start) * 1000
