"""Run benchmarks: ``python -m bench`` (all) or ``python -m bench sessions ...``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["sessions", "locomo", "scale", "postgres", "server"]


def main(argv: list[str]) -> None:
    for name in argv or BENCHMARKS:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
