"""Import throughput: memories per second that ``Memory.import_file`` stores from an export
without vectors (so every memory is embedded), against the embedder alone embedding the same
texts in the same run (the ceiling: an import cannot embed faster than its model).

For each size and embedder: a fresh export of ``n`` memories (sentences of 8-30 words), then
(1) ``embed_documents`` over all the texts and (2) ``import_file`` into an empty store, back
to back. The ratio import / embed-only is what carries across machines and loads; the rate
is quoted too (goal, issue 15 item 7: ≥ 150 memories/s with the default local embedder).

``python -m bench transfer`` (sizes: ``ENGRAMDB_BENCH_TRANSFER_SIZES``, default 2000,20000;
``--quick``: 2000; embedders: ``ENGRAMDB_BENCH_TRANSFER_EMBEDDERS``, default local,hashing;
or exact pairs: ``ENGRAMDB_BENCH_TRANSFER_RUNS=local:2000,hashing:20000``).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import console, machine, today, write_results

QUICK = os.environ.get("ENGRAMDB_BENCH_QUICK") == "1"
SIZES = [
    int(n)
    for n in os.environ.get(
        "ENGRAMDB_BENCH_TRANSFER_SIZES", "2000" if QUICK else "2000,20000"
    ).split(",")
]
EMBEDDERS = os.environ.get("ENGRAMDB_BENCH_TRANSFER_EMBEDDERS", "local,hashing").split(",")
# or exact pairs: ENGRAMDB_BENCH_TRANSFER_RUNS=local:2000,hashing:20000
PAIRS = [
    (spec, int(n))
    for spec, _, n in (
        pair.rpartition(":")
        for pair in os.environ.get("ENGRAMDB_BENCH_TRANSFER_RUNS", "").split(",")
    )
    if spec
] or [(spec, n) for spec in EMBEDDERS for n in SIZES]
GOAL_PER_S = 150.0
WORDS = (
    "tea coffee morning evening project deploy python rust meeting friday paris london book "
    "music run swim cook garden review budget travel flight doctor school piano"
).split()


def texts(n: int) -> list[str]:
    rng = random.Random(n)
    return [
        f"Note {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
        for i in range(n)
    ]


def export(n: int, where: Path) -> Path:
    from engramdb import Memory

    path = where / f"export-{n}.jsonl"
    if not path.exists():
        mem = Memory(where / f"src-{n}", embedder=None)
        contents = texts(n)
        for start in range(0, n, 1000):
            mem.remember_many([{"content": c} for c in contents[start : start + 1000]])
        mem.export_file(path)
        mem.store.close()
    return path


def measure(n: int, spec: str, where: Path) -> dict[str, Any]:
    from engramdb import Memory

    path = export(n, where)
    mem = Memory(where / f"dst-{n}-{spec}", embedder=spec)
    assert mem.embedder is not None
    mem.embedder.embed_documents(["warm up"])
    contents = texts(n)
    start = time.perf_counter()
    mem.embedder.embed_documents(contents)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    report = mem.import_file(path)
    import_s = time.perf_counter() - start
    assert report.created["memories"] == n and mem.stats().embedded == n
    mem.store.close()
    return {
        "memories": n,
        "embedder": mem.embedder.model,
        "embed_only_per_s": round(n / embed_s, 1),
        "import_per_s": round(n / import_s, 1),
        "ratio_import_to_embed": round(embed_s / import_s, 2),
    }


def main() -> None:
    console.print(f"[bold]transfer[/]: import throughput, (embedder, memories): {PAIRS}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec, n in PAIRS:
            row = measure(n, spec, Path(tmp))
            console.print(row)
            rows.append(row)
    payload = {"rows": rows, "goal_per_s": GOAL_PER_S, "date": today(), "machine": machine()}
    write_results(
        "transfer",
        payload,
        ["embedder", "memories", "embed only /s", "import /s", "import ÷ embed only"],
        [
            [
                r["embedder"],
                f"{r['memories']:,}",
                f"{r['embed_only_per_s']:,.0f}",
                f"{r['import_per_s']:,.0f}",
                f"{r['ratio_import_to_embed']:.2f}",
            ]
            for r in rows
        ],
        "Import throughput: memories/s stored by Memory.import_file (every memory embedded)",
        notes="Per size and embedder: the embedder alone over the same texts, then "
        "`import_file` of an export without vectors into an empty SQLite store, back to "
        "back; the ratio (import rate ÷ embed-only rate) is what carries across machines. "
        f"Goal for the default local embedder: ≥ {GOAL_PER_S:.0f} memories/s (issue 15 item "
        "7); an import runs at the rate of its embedder, so that goal is the embedder's. "
        "Reproduce: `.venv/bin/python -m bench transfer`.",
    )


if __name__ == "__main__":
    main()
