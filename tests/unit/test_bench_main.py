"""`python -m bench`: names pick benchmarks; what follows a name is that benchmark's."""

from __future__ import annotations

import sys
import types

import pytest

import bench.__main__ as bench_main


def test_bench_main_passes_each_benchmark_its_own_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def module(name: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(main=lambda: calls.append((name, sys.argv[1:])))

    monkeypatch.setattr(bench_main.importlib, "import_module", module)
    monkeypatch.setattr(sys, "argv", ["bench"])
    bench_main.main(["locomo", "--time", "--embedder", "minilm-l3", "scale"])
    assert calls == [
        ("bench.locomo", ["--time", "--embedder", "minilm-l3"]),
        ("bench.scale", []),
    ]


@pytest.mark.parametrize("argv", [["nope"], ["--time"], ["scale", "nope"]])
def test_bench_main_rejects_what_is_not_a_benchmark(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="unknown benchmark"):
        bench_main.main(argv)


@pytest.mark.parametrize(
    ("failure", "shown"),
    [
        (SystemExit("LoCoMo data not found"), "bench locomo stopped: LoCoMo data not found"),
        # a benchmark that breaks costs its own results only
        (TimeoutError("processes did not report"), "TimeoutError: processes did not report"),
    ],
    ids=["stops", "raises"],
)
def test_bench_main_runs_the_rest_when_one_benchmark_fails_and_fails_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: BaseException,
    shown: str,
) -> None:
    ran: list[str] = []

    def module(name: str) -> types.SimpleNamespace:
        def main() -> None:
            ran.append(name)
            if name == "bench.locomo":
                raise failure

        return types.SimpleNamespace(main=main)

    monkeypatch.setattr(bench_main.importlib, "import_module", module)
    monkeypatch.setattr(sys, "argv", ["bench"])
    with pytest.raises(SystemExit, match="did not finish: locomo"):
        bench_main.main(["sessions", "locomo", "scale"])
    assert ran == ["bench.sessions", "bench.locomo", "bench.scale"]
    assert shown in capsys.readouterr().err
