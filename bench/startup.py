"""Startup: wall time of a fresh process that imports engramdb or runs its command line,
against ``python -c pass`` measured in the same run (the ratio is what carries across
machines; absolute times move with the load).

Each command runs ``RUNS`` times as a subprocess, interleaved (one of each in turn, so a burst
of load hits all of them alike); the median is reported. Goals: ``engramdb --help`` under
0.3 s (issue 14); a CLI recall on a 10k database within 0.8 s (issue 17): the database is made
first, 10,000 memories with a vector each for the default local model (random unit vectors:
the recall's work is the same), and recalled from in the default hybrid mode (which loads
the model to embed the query) and with ``--mode text`` (which loads none).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import console, machine, today, write_results

RUNS = int(os.environ.get("ENGRAMDB_BENCH_STARTUP_RUNS", "15"))
HELP_GOAL_S = 0.3
RECALL_GOAL_S = 0.8
RECALL_MEMORIES = 10_000
RECALL_MODEL = "local:minilm-l6-int8"


def cli() -> list[str]:
    """The ``engramdb`` console script of this interpreter's environment (else ``-m``)."""
    script = Path(sys.executable).parent / "engramdb"
    if script.exists():
        return [str(script)]
    found = shutil.which("engramdb")
    return [found] if found else [sys.executable, "-m", "engramdb"]


COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import engramdb'": [sys.executable, "-c", "import engramdb"],
    "engramdb --help": [*cli(), "--help"],
    "python -c 'from engramdb import Memory'": [
        sys.executable,
        "-c",
        "from engramdb import Memory",
    ],
}


# as an installed package runs: with bytecode caches (the warm-up run writes them), whatever
# this shell says (PYTHONDONTWRITEBYTECODE=1 would make every run compile every module)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def recall_database(where: Path, n: int = RECALL_MEMORIES) -> Path:
    """A database of ``n`` memories, each with a vector for the default local model."""
    import numpy as np

    from bench.transfer import texts
    from engramdb import Memory

    mem = Memory(where, embedder=None)
    contents = texts(n)
    for start in range(0, n, 1000):
        mem.remember_many([{"content": c} for c in contents[start : start + 1000]])
    rng = np.random.default_rng(n)
    after = 0
    while rows := mem.store.memory_without_embedding(RECALL_MODEL, after=after, limit=1000):
        vectors = rng.standard_normal((len(rows), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        mem.store.memory_set_embeddings(
            [
                (rowid, RECALL_MODEL, v.tobytes(), ())
                for (rowid, _), v in zip(rows, vectors, strict=True)
            ]
        )
        after = rows[-1][0]
    assert mem.stats().embedded == n
    mem.store.close()
    return where


def recall_commands(data: Path) -> dict[str, list[str]]:
    query = "what does the user drink in the morning"
    return {
        "engramdb recall (10k, hybrid)": [*cli(), "recall", query, "-d", str(data)],
        "engramdb recall (10k, --mode text)": [
            *cli(), "recall", query, "-d", str(data), "--mode", "text",
        ],
    }  # fmt: skip


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
    )
    return time.perf_counter() - start


def run(runs: int = RUNS, commands: dict[str, list[str]] | None = None) -> dict[str, Any]:
    commands = commands or COMMANDS
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # warm the OS file cache once
        wall(command)
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(wall(command))
    base = statistics.median(samples["python -c pass"])
    rows = []
    for name, times in samples.items():
        median = statistics.median(times)
        row: dict[str, Any] = {
            "command": name,
            "median_s": round(median, 4),
            "min_s": round(min(times), 4),
            "ratio_to_python": round(median / base, 1),
        }
        goal = HELP_GOAL_S if name == "engramdb --help" else None
        if name.startswith("engramdb recall (10k, hybrid)"):
            goal = RECALL_GOAL_S
        if goal is not None:
            row["goal_s"] = goal
            row["goal_met"] = median < goal
        rows.append(row)
    return {"rows": rows, "runs": runs, "date": today(), "machine": machine()}


def main() -> None:
    console.print(f"[bold]startup[/]: median of {RUNS} fresh processes per command")
    with tempfile.TemporaryDirectory() as tmp:
        data = recall_database(Path(tmp) / "data")
        payload = run(commands={**COMMANDS, **recall_commands(data)})
    write_results(
        "startup",
        payload,
        ["command", "median ms", "min ms", "× python -c pass"],
        [
            [
                r["command"],
                f"{r['median_s'] * 1000:,.0f}"
                + (
                    f" (goal < {r['goal_s'] * 1000:.0f}{'' if r['goal_met'] else ', missed'})"
                    if "goal_s" in r
                    else ""
                ),
                f"{r['min_s'] * 1000:,.0f}",
                f"{r['ratio_to_python']:.1f}×",
            ]
            for r in payload["rows"]
        ],
        "Startup: a fresh process importing engramdb or running its command line",
        notes=f"Median (and minimum) wall time of {payload['runs']} runs of each command as a "
        "subprocess, interleaved, after one warm-up run each (which writes the bytecode "
        "caches, as an installed package has them); ratio = median / median of "
        "`python -c pass` in the same run. `import engramdb` loads sessions, the store and the "
        "errors; the memory facade (numpy, the search stack) loads on first use of `Memory`, "
        "shown in its own row. The recall rows run `engramdb recall` on a database of "
        f"{RECALL_MEMORIES:,} memories with a vector each for the default local model: "
        "hybrid (the model is loaded to embed the query) and `--mode text` (no model). "
        "Reproduce: `.venv/bin/python -m bench startup`.",
    )


if __name__ == "__main__":
    main()
