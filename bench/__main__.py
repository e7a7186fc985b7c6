"""Run benchmarks: ``python -m bench`` (all) or ``python -m bench sessions ...``.

``extraction_quality`` is opt-in (named explicitly): it needs a model endpoint and costs
tokens; see bench/results/extraction_quality.md."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

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
    """Each name runs its benchmark; what follows a name up to the next name
    (``locomo --time --embedder minilm-l3``) is that benchmark's own arguments, seen by it as
    ``sys.argv[1:]``."""
    if "--quick" in argv:  # the benchmarks that have a quick subset read this
        os.environ["ENGRAMDB_BENCH_QUICK"] = "1"
        argv = [a for a in argv if a != "--quick"]
    names = BENCHMARKS + OPT_IN
    runs: list[tuple[str, list[str]]] = []
    for arg in argv:
        if arg in names:
            runs.append((arg, []))
        elif runs and (arg.startswith("-") or runs[-1][1]):  # an option, or its value
            runs[-1][1].append(arg)
        else:
            raise SystemExit(f"unknown benchmark {arg!r}; choose from {', '.join(names)}")
    failed: list[str] = []
    for name, options in runs or [(name, []) for name in BENCHMARKS]:
        sys.argv = [f"bench.{name}", *options]
        try:
            importlib.import_module(f"bench.{name}").main()
        except SystemExit as stop:  # e.g. its data is missing: run the others, fail at the end
            if stop.code not in (None, 0):
                print(f"bench {name} stopped: {stop.code}", file=sys.stderr)
                failed.append(name)
        except Exception:  # a benchmark that breaks (a timeout, a bug) costs its results only
            traceback.print_exc()
            print(f"bench {name} failed", file=sys.stderr)
            failed.append(name)
    if failed:
        raise SystemExit(f"benchmarks that did not finish: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
