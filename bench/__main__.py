"""Run benchmarks: ``python -m bench`` (all) or ``python -m bench sessions ...``.

``extraction_quality`` is opt-in (named explicitly): it needs a model endpoint and costs
tokens; see bench/results/extraction_quality.md."""

from __future__ import annotations

import importlib
import os
import sys

BENCHMARKS = [
    "sessions",
    "startup",
    "locomo",
    "scale",
    "vectors",
    "postgres",
    "server",
    "extraction",
    "transfer",
]
OPT_IN = ["extraction_quality"]


def main(argv: list[str]) -> None:
    if "--quick" in argv:  # the benchmarks that have a quick subset read this
        os.environ["ENGRAMDB_BENCH_QUICK"] = "1"
        argv = [a for a in argv if a != "--quick"]
    for name in argv or BENCHMARKS:
        if name not in BENCHMARKS + OPT_IN:
            raise SystemExit(
                f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS + OPT_IN)}"
            )
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
