"""Startup: wall time of a fresh process that imports engramdb or runs its command line,
against ``python -c pass`` measured in the same run (the ratio is what carries across
machines; absolute times move with the load).

Each command runs ``RUNS`` times as a subprocess, interleaved (one of each in turn, so a burst
of load hits all of them alike); the median is reported. Goal (issue 14): ``engramdb --help``
under 0.3 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import console, machine, today, write_results

RUNS = int(os.environ.get("ENGRAMDB_BENCH_STARTUP_RUNS", "15"))
HELP_GOAL_S = 0.3


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


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
    )
    return time.perf_counter() - start


def run(runs: int = RUNS) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the OS file cache once
        wall(command)
    for _ in range(runs):
        for name, command in COMMANDS.items():
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
        if name == "engramdb --help":
            row["goal_s"] = HELP_GOAL_S
            row["goal_met"] = median < HELP_GOAL_S
        rows.append(row)
    return {"rows": rows, "runs": runs, "date": today(), "machine": machine()}


def main() -> None:
    console.print(f"[bold]startup[/]: median of {RUNS} fresh processes per command")
    payload = run()
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
        "shown in the last row. Reproduce: `.venv/bin/python -m bench startup`.",
    )


if __name__ == "__main__":
    main()
