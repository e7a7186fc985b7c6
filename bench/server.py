"""Server: ``engramdb serve`` under load from a second process on loopback.

For each backend (SQLite, PostgreSQL) a real server subprocess is started the way the tests
start one (``tests/live_server.py``: ``python -m engramdb serve``, embedder ``none`` so recall
is full-text only, default quotas — unlimited —, log level warning). 100k synthetic memories
(the corpus of ``bench/scale.py``: 12-24 words from a Zipf-distributed 30,000-word
vocabulary, 50 user ids) are stored through the API, ``POST /v1/memories/batch`` with 1,000 per
request. Then a load-generator process runs N virtual users — asyncio, one keep-alive
``httpx.AsyncClient`` each, every user sending its next request as soon as the last one
answered — against one endpoint at a time:

- ``recall``: ``POST /v1/memories/recall {"query", "limit": 10, "mode": "text"}``, queries of
  2-5 words drawn from the same vocabulary;
- ``remember``: ``POST /v1/memories {"content"}``, a corpus text made unique by a suffix;
- ``baseline``: ``GET /v1/keys`` with a namespace key — the cheapest authenticated route (the
  key lookup, then the key's own row listed back; no memory is read): the ceiling the server
  reaches through the same framework, middleware and authentication, measured at the same
  client counts in the same run. Every row reports its req/s as a ratio to the baseline at
  the same backend, workers and clients (``vs_baseline``).

Each phase (backend × ``--workers`` × clients × endpoint) runs a short warm-up, then is
measured for ``ENGRAMDB_BENCH_SECONDS`` (30) seconds: requests/s counts the successful requests
started in the window; latency percentiles are over them; non-2xx answers and exceptions are
errors. All recall phases run before any remember phase, so recalls see exactly 100k memories.
The generator shares the machine's cores with the server (and PostgreSQL): the CPU each used
during the window is measured from ``/proc`` and reported beside the figures, with the server
threads' context switches per request (threads waking each other for the GIL: the
contention of issue 14, which a noisy machine's req/s hides).

Finally each endpoint is timed one request at a time, three ways, on the same store: the
library call alone (``Memory.recall`` / ``remember_many``), the ASGI app in this process (no
HTTP, no thread hop), and cProfile of the app's request path split into store calls,
engramdb's Python, the server's own steps (key lookup, quota, response models) and the rest
of FastAPI/Starlette (``ENGRAMDB_BENCH_PROFILE=0`` leaves this out).

Embeddings: ``ENGRAMDB_BENCH_EMBEDDER=local`` runs the server with that embedder instead of
``none`` (every remember then embeds its text), and the endpoint ``remember_unbatched`` is
``remember`` against a server started with ``embed_batching=false``: with
``ENGRAMDB_BENCH_ENDPOINTS=baseline,remember_unbatched,remember`` the micro-batcher's effect is
measured in one run (each × baseline against the same baseline).

Subsets: ``ENGRAMDB_BENCH_BACKENDS=sqlite``, ``ENGRAMDB_BENCH_WORKERS=1``,
``ENGRAMDB_BENCH_CLIENTS=8``, ``ENGRAMDB_BENCH_ENDPOINTS=recall``,
``ENGRAMDB_BENCH_MEMORIES=10000``. ``ENGRAMDB_BENCH_KEEP=<dir>`` keeps the SQLite store as
loaded (and its key) in ``<dir>`` and, when a store of the same size is already there, runs
on a fresh copy of it instead of loading again (loading 100k memories takes minutes; the
kept copy is never written to, so every run starts from the same data).
``ENGRAMDB_BENCH_QUICK=1`` (or ``python -m bench server
--quick``) runs a few-minute subset: SQLite, 1 worker, 8 clients, 10k memories, 10 s phases,
every endpoint (any variable set explicitly still wins). Only the full matrix (30 s phases,
100k memories) writes ``bench/results/server.*``; other runs write their results to a
temporary directory.
"""

from __future__ import annotations

import asyncio
import cProfile
import multiprocessing as mp
import os
import pstats
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress
from rich.table import Table

from bench.common import RESULTS, console, machine, percentile, receive, today, write_results
from bench.scale import BATCH, Corpus
from engramdb import Memory
from tests.live_server import ADMIN_KEY, LiveServer, free_port

DEFAULTS = {
    "SECONDS": "30",
    "BACKENDS": "sqlite,postgres",
    "WORKERS": "1,2",
    "CLIENTS": "1,8,32",
    "ENDPOINTS": "baseline,recall,remember",
    "MEMORIES": "100000",
    "EMBEDDER": "none",
}
QUICK = {
    "SECONDS": "10",
    "BACKENDS": "sqlite",
    "WORKERS": "1",
    "CLIENTS": "8",
    "MEMORIES": "10000",
}
"""``ENGRAMDB_BENCH_QUICK=1``: the few-minute subset (explicit variables still win)."""
REQUEST_TIMEOUT = 60.0
PROFILED = 100  # requests per endpoint in the profile


def quick() -> bool:
    return os.environ.get("ENGRAMDB_BENCH_QUICK", "") not in ("", "0")


def setting(name: str) -> str:
    fallback = QUICK.get(name, DEFAULTS[name]) if quick() else DEFAULTS[name]
    return os.environ.get(f"ENGRAMDB_BENCH_{name}", fallback)


def numbers(name: str) -> list[int]:
    return [int(part) for part in setting(name).split(",") if part.strip()]


def words(name: str) -> list[str]:
    return [part.strip() for part in setting(name).split(",") if part.strip()]


# -- CPU accounting -------------------------------------------------------------------------


def _processes(roots: list[int]) -> dict[int, list[int]]:
    """``/proc/<pid>/stat`` fields (after the name) of the processes ``roots`` and all their
    descendants, by pid (Linux; empty elsewhere)."""
    parent: dict[int, int] = {}
    stats: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        stats[pid] = [int(f) if f.lstrip("-").isdigit() else 0 for f in fields]
    children: dict[int, list[int]] = defaultdict(list)
    for pid, ppid in parent.items():
        children[ppid].append(pid)
    found: dict[int, list[int]] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found or pid not in stats:
            continue
        found[pid] = stats[pid]
        todo += children[pid]
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU seconds of the processes ``roots`` and all their descendants (Linux
    ``/proc``; 0.0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum(f[11] + f[12] for f in _processes(roots).values()) / tick


def context_switches(roots: list[int]) -> int:
    """Context switches so far (voluntary and not) of every thread of the processes ``roots``
    and their descendants (Linux ``/proc``; 0 elsewhere): threads handing the GIL back and
    forth show here, as switches per request."""
    total = 0
    for pid in _processes(roots):
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            try:
                status = (task / "status").read_text()
            except OSError:
                continue
            total += sum(
                int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line
            )
    return total


# -- the load generator (runs in its own process) -------------------------------------------


def _loadgen(job: dict[str, Any], done: Any, measuring: Any, finished: Any, out: Any) -> None:
    out.put(asyncio.run(_drive(done=done, measuring=measuring, finished=finished, **job)))


async def _drive(
    *,
    url: str,
    key: str,
    endpoint: str,
    clients: int,
    warmup: float,
    seconds: float,
    seed: int,
    done: Any,
    measuring: Any,
    finished: Any,
) -> dict[str, Any]:
    """``clients`` closed-loop virtual users for ``warmup`` + ``seconds``; latencies (ms) and
    errors of the requests started after the warm-up, and this process's CPU use meanwhile."""
    corpus = Corpus(seed=seed)
    if endpoint == "recall":
        path, pool = "/v1/memories/recall", corpus.texts(2_000, 2, 5)
    elif endpoint == "baseline":
        path, pool = "/v1/keys", [""]
    else:
        path, pool = "/v1/memories", corpus.texts(5_000)
    run = uuid.uuid4().hex[:8]
    # every user's client is built before the clock starts (building one takes milliseconds)
    users = [
        httpx.AsyncClient(
            base_url=url,
            headers={"X-API-Key": key},
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in range(clients)
    ]
    begin = time.perf_counter()
    window_start, window_end = begin + warmup, begin + warmup + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def user(u: int) -> None:
        rng = random.Random(seed * 1_000 + u)
        async with users[u] as client:
            n = 0
            while (start := time.perf_counter()) < window_end:
                text = rng.choice(pool)
                if endpoint == "recall":
                    body: dict[str, Any] = {"query": text, "limit": 10, "mode": "text"}
                else:
                    body = {"content": f"{text} z{run}u{u}n{n}"}
                n += 1
                failure = None
                try:
                    if endpoint == "baseline":
                        response = await client.get(path)
                    else:
                        response = await client.post(path, json=body)
                    if not response.is_success:
                        failure = f"{response.status_code} {response.text[:300]}"
                except Exception as exc:  # every exception is an error, counted
                    failure = f"{type(exc).__name__}: {exc}"[:300]
                elapsed = time.perf_counter() - start
                if start >= window_start:
                    done.value += 1
                    if failure is None:
                        latencies.append(elapsed * 1000)
                    else:
                        errors[failure] += 1

    cpu: dict[str, float] = {}

    async def marks() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        cpu["start"] = time.process_time()
        measuring.set()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        finished.set()
        cpu["used"] = time.process_time() - cpu["start"]

    await asyncio.gather(marks(), *(user(u) for u in range(clients)))
    return {"latencies": latencies, "errors": dict(errors), "cpu": cpu["used"] / seconds}


def phase(
    server: LiveServer,
    key: str,
    endpoint: str,
    clients: int,
    seconds: float,
    label: str,
    db_pid: int | None,
) -> dict[str, Any]:
    """One measured phase: a fresh load-generator process against the running server."""
    ctx = mp.get_context("spawn")
    done, measuring, finished, out = (
        ctx.Value("q", 0, lock=False),
        ctx.Event(),
        ctx.Event(),
        ctx.Queue(),
    )
    job = {
        "url": server.url,
        "key": key,
        "endpoint": endpoint,
        "clients": clients,
        "warmup": min(3.0, max(0.5, seconds / 10)),
        "seconds": seconds,
        "seed": 1_000 + clients + (500 if endpoint.startswith("remember") else 0),
    }
    proc = ctx.Process(target=_loadgen, args=(job, done, measuring, finished, out))
    cpu0: dict[str, float] = {}
    cpu1: dict[str, float] = {}
    proc.start()

    def sample() -> dict[str, float]:
        return {
            "server": cpu_seconds([server.process.pid]),  # type: ignore[union-attr]
            "db": cpu_seconds([db_pid]) if db_pid else 0.0,
            "switches": context_switches([server.process.pid]),  # type: ignore[union-attr]
        }

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=seconds)
        started = None
        while proc.is_alive() and out.empty():
            if not cpu0 and measuring.is_set():
                cpu0, started = sample(), time.perf_counter()
            if cpu0 and not cpu1 and finished.is_set():
                cpu1 = sample()
            elapsed = time.perf_counter() - started if started else 0.0
            progress.update(
                task,
                completed=min(seconds, elapsed),
                description=f"{label}: {done.value:,} requests"
                + (f", {done.value / elapsed:,.0f}/s" if elapsed > 0.5 else ""),
            )
            time.sleep(0.1)
    result = receive(out, [proc], REQUEST_TIMEOUT + 60)
    proc.join(30)
    samples, errors = result["latencies"], result["errors"]
    if errors:
        for message, count in sorted(errors.items(), key=lambda e: -e[1])[:3]:
            console.print(f"[red]{label}: {count} × {message}[/]")
    cpu1 = cpu1 or sample()
    cpu0 = cpu0 or cpu1
    return {
        "req_per_s": round(len(samples) / seconds, 1),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "errors": sum(errors.values()),
        "server_cpu": round((cpu1["server"] - cpu0["server"]) / seconds, 2),
        "db_cpu": round((cpu1["db"] - cpu0["db"]) / seconds, 2) if db_pid else None,
        "loadgen_cpu": round(result["cpu"], 2),
        "switches_per_request": round(
            (cpu1["switches"] - cpu0["switches"]) / max(1, len(samples) + sum(errors.values()))
        ),
        "error_messages": errors,
    }


# -- setup ----------------------------------------------------------------------------------


def uvicorn_version() -> str:
    from importlib.metadata import version

    return version("uvicorn")


def uvicorn_nagle() -> bool:
    """Whether this uvicorn leaves Nagle's algorithm on under ``--workers`` > 1: it binds the
    shared listener with ``proto`` 0, and asyncio sets ``TCP_NODELAY`` on accepted sockets
    only when ``proto`` is TCP, so each keep-alive response waits for the client's delayed
    ACK, about 40 ms on Linux (github.com/Kludex/uvicorn/issues/3149)."""
    from uvicorn.config import Config

    config = Config("engramdb.server.app:app_from_environment", port=0, log_config=None)
    sock = config.bind_socket()
    try:
        return sock.proto != socket.IPPROTO_TCP
    finally:
        sock.close()


def preload(server: LiveServer, key: str, n: int, label: str) -> float:
    """Store n corpus memories through ``POST /v1/memories/batch``; returns memories/s."""
    corpus = Corpus()
    start = time.perf_counter()
    with (
        httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=300) as client,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task(label, total=n)
        for at in range(0, n, BATCH):
            texts = corpus.texts(min(BATCH, n - at))
            entries = [
                {"content": t, "user_id": f"user-{(at + i) % 50}"} for i, t in enumerate(texts)
            ]
            response = client.post("/v1/memories/batch", json={"memories": entries})
            if response.status_code != 201:
                raise RuntimeError(f"preload failed: {response.status_code} {response.text[:500]}")
            progress.advance(task, len(texts))
    return n / (time.perf_counter() - start)


def kept_store(backend: str, target: str, n: int) -> tuple[Path, Path] | None:
    """Where ``ENGRAMDB_BENCH_KEEP`` keeps the backend's loaded store of ``n`` memories and
    its key (SQLite only: a PostgreSQL schema lives in its own server); ``None`` if unset."""
    keep = os.environ.get("ENGRAMDB_BENCH_KEEP")
    if not keep or backend != "sqlite":
        return None
    kept = Path(keep) / f"sqlite-{n}"
    return kept, kept.with_suffix(".key")


def load_or_reuse(server: LiveServer, backend: str, target: str, n: int) -> tuple[str, float]:
    """Preload ``n`` memories through the running server, or (a kept copy was copied into
    ``target`` before it started) reuse it: the namespace key and memories/s (0: reused)."""
    kept = kept_store(backend, target, n)
    if kept is not None and kept[1].exists():
        console.print(f"{backend}: reusing the {n:,} memories kept in {kept[0]}")
        return kept[1].read_text().strip(), 0.0
    key = server.register("bench")
    rate = preload(server, key, n, f"{backend}: storing {n:,} memories via the API")
    if kept is not None:  # a consistent copy: the server is stopped while it is taken
        server.stop()
        shutil.copytree(target, kept[0], dirs_exist_ok=True)
        kept[1].write_text(key)
    return key, rate


@contextmanager
def backend_store(backend: str, tmp: Path) -> Iterator[tuple[str, int | None]]:
    """A fresh store target for the backend and the pid of its database server, if any."""
    if backend == "sqlite":
        target = tmp / "sqlite"
        kept = kept_store(backend, str(target), int(setting("MEMORIES")))
        if kept is not None and kept[1].exists():
            shutil.copytree(kept[0], target)
        yield str(target), None
        return
    if backend != "postgres":
        raise SystemExit(f"unknown backend {backend!r}; choose sqlite or postgres")
    from bench.postgres import start_postgres

    pg = start_postgres()
    try:
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        yield pg.new_schema(), postmaster
    finally:
        pg.destroy()


# -- where a request's time goes ------------------------------------------------------------

LIBRARY_CALL = {"recall": "recall", "remember": "remember_many"}


class _InlineExecutor(Executor):
    """Runs what is submitted at once, on the submitting thread."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _inline_threadpool(app: Any) -> list[Any]:
    """Patches that make the app run its store work (the store executor's one hop per
    request) and any sync endpoint or dependency inline, on the event loop's thread, so
    cProfile (which follows one thread) sees the whole request."""
    from dataclasses import replace
    from unittest import mock

    import fastapi.dependencies.utils
    import fastapi.routing

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    patches = [
        mock.patch.object(fastapi.routing, "run_in_threadpool", inline),
        mock.patch.object(fastapi.dependencies.utils, "run_in_threadpool", inline),
    ]
    if hasattr(app.state.services, "executor"):  # (an engramdb before issue 14 has none)
        services = replace(app.state.services, executor=_InlineExecutor())
        patches.append(mock.patch.object(app.state, "services", services))
    return patches


def _cumulative(stats: dict[Any, Any], where: str, name: str) -> float:
    """Cumulative seconds in function ``name`` of a file ending with ``where``."""
    return sum(v[3] for (f, _, func), v in stats.items() if f.endswith(where) and func == name)


def _callees(stats: dict[Any, Any], where: str, name: str) -> dict[tuple[str, str], float]:
    """Cumulative seconds of each direct callee (file, function) of function ``name`` in a
    file ending with ``where``, counted from that caller only."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for (file, _, func), (*_, callers) in stats.items():
        for (caller_file, _, caller), timing in callers.items():
            if caller_file.endswith(where) and caller == name:
                out[file, func] += timing[3]
    return out


def _shares(stats: dict[Any, Any], endpoint: str) -> dict[str, float]:
    """Split the profiled request time into the store, engramdb's Python, the server's own
    steps and the framework."""
    call = LIBRARY_CALL[endpoint]
    total = _cumulative(stats, "fastapi/applications.py", "__call__")
    library = _cumulative(stats, "engramdb/memory.py", call)
    parts: dict[str, float] = defaultdict(float)
    for (file, func), seconds in _callees(stats, "engramdb/memory.py", call).items():
        if "engramdb/store/" in file:
            big = seconds >= 0.05 * total
            parts[f"store: {func}" if big else "store: other calls"] += seconds
    library_python = library - sum(parts.values())
    parts[f"engramdb Python in Memory.{call}"] = library_python
    # the stored-data quota is checked by the store inside the write (a "store:" part)
    parts["recall quota (Limiter)"] = _cumulative(
        stats, "engramdb/server/quotas.py", "count_recall"
    )
    parts["key lookup (KeyRing.authenticate)"] = _cumulative(
        stats, "engramdb/server/auth.py", "authenticate"
    )
    parts["response models (MemoryOut/HitOut + serialize_response)"] = _cumulative(
        stats, "engramdb/server/models.py", "of"
    ) + _cumulative(stats, "fastapi/routing.py", "serialize_response")
    parts["FastAPI/Starlette/middleware: the rest (routing, JSON, validation)"] = total - sum(
        parts.values()
    )
    return {name: round(seconds / total, 3) for name, seconds in parts.items()}


def profile(target: str, key: str, n: int = PROFILED) -> dict[str, Any]:
    """Per-request time of each endpoint three ways, one request at a time: the library call
    alone, the ASGI app in this process (no HTTP, no thread hop), and a cProfile breakdown of
    the app's request path."""
    from engramdb.server.app import create_app
    from engramdb.server.settings import ServerSettings

    app = create_app(settings=ServerSettings(store=target, embedder="none", admin_keys=[ADMIN_KEY]))
    corpus = Corpus(seed=99)
    queries, contents = corpus.texts(n, 2, 5), corpus.texts(3 * n)
    run = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {}
    patches = _inline_threadpool(app)
    for p in patches:
        p.start()
    try:

        async def go() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers={"X-API-Key": key}
            ) as client:
                namespace = (await client.get("/v1/stats")).json()["namespace"]
                library = Memory(
                    app.state.services.memory.store, namespace=namespace, embedder=None
                )
                for endpoint in ("recall", "remember"):
                    texts = iter(queries if endpoint == "recall" else contents)

                    def library_call(text: str, endpoint: str = endpoint) -> None:
                        if endpoint == "recall":
                            library.recall(text, limit=10, mode="text")
                        else:
                            library.remember_many([{"content": f"{text} p{run}l"}])

                    async def app_call(text: str, endpoint: str = endpoint) -> None:
                        if endpoint == "recall":
                            body = {"query": text, "limit": 10, "mode": "text"}
                            r = await client.post("/v1/memories/recall", json=body)
                        else:
                            body = {"content": f"{text} p{run}a"}
                            r = await client.post("/v1/memories", json=body)
                        r.raise_for_status()

                    library_ms, app_ms = [], []
                    for _ in range(n):  # interleaved, so drift hits both alike
                        text = next(texts)
                        start = time.perf_counter()
                        library_call(text)
                        library_ms.append((time.perf_counter() - start) * 1000)
                        start = time.perf_counter()
                        await app_call(text)
                        app_ms.append((time.perf_counter() - start) * 1000)
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for i in range(n):
                        await app_call(queries[i] if endpoint == "recall" else next(texts))
                    profiler.disable()
                    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
                    out[endpoint] = {
                        "library_p50_ms": round(percentile(library_ms, 50), 2),
                        "app_in_process_p50_ms": round(percentile(app_ms, 50), 2),
                        "profile_share": _shares(stats, endpoint),
                    }

        asyncio.run(go())
    finally:
        for p in patches:
            p.stop()
        app.state.services.memory.close()
    return out


# -- the run --------------------------------------------------------------------------------


SERVER_START_TIMEOUT = 300.0
"""Seconds a server may take to answer after it starts: a machine shared with other work can
take minutes to open a store of 100k memories."""


def start_server(target: str, *, log_path: Path, **settings: Any) -> LiveServer:
    """``engramdb serve`` over ``target`` (as ``tests.live_server.start_live_server``, with
    :data:`SERVER_START_TIMEOUT`)."""
    return LiveServer(target, free_port(), settings, log_path=log_path).start(
        timeout=SERVER_START_TIMEOUT
    )


def load_backend(
    backend: str, target: str, db_pid: int | None, log: Path, payload: dict[str, Any]
) -> str:
    """Preload, then every phase of one backend; returns the namespace key used."""
    seconds, n = payload["seconds"], payload["memories"]
    embedder = setting("EMBEDDER")
    server = start_server(target, log_path=log, embedder=embedder)
    try:
        key, rate = load_or_reuse(server, backend, target, n)
        if rate:
            payload["preload_per_s"][backend] = round(rate, 1)
            console.print(
                f"{backend}: stored {n:,} memories through POST /v1/memories/batch "
                f"(1,000 per request) at {rate:,.0f}/s"
            )
        for endpoint in words("ENDPOINTS"):
            for w in numbers("WORKERS"):  # a fresh server for each worker count and endpoint
                server.stop()
                extra = {"embed_batching": "false"} if endpoint == "remember_unbatched" else {}
                server = start_server(target, log_path=log, workers=w, embedder=embedder, **extra)
                for c in numbers("CLIENTS"):
                    label = f"{backend}, {w} worker{'s' if w > 1 else ''}, {c} clients, {endpoint}"
                    got = phase(server, key, endpoint, c, seconds, label, db_pid)
                    if not got["error_messages"]:
                        del got["error_messages"]
                    row = {"backend": backend, "workers": w, "clients": c, "endpoint": endpoint}
                    payload["rows"].append({**row, **got})
                    with_ratios(payload["rows"])
                    console.print(_line(payload["rows"][-1]))
        server.stop()
    finally:
        server.kill()
    if "Traceback" in server.log():
        console.print(f"[yellow]{backend}: the server log has tracebacks:[/]\n{server.log()}")
    return key


def run() -> dict[str, Any]:
    payload: dict[str, Any] = {
        "rows": [],
        "profiles": {},
        "preload_per_s": {},
        "memories": int(setting("MEMORIES")),
        "embedder": setting("EMBEDDER"),
        "seconds": float(setting("SECONDS")),
        "uvicorn": uvicorn_version(),
        "uvicorn_workers_nagle": uvicorn_nagle(),
        "date": today(),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for backend in words("BACKENDS"):
            with backend_store(backend, Path(tmp)) as (target, db_pid):
                key = load_backend(backend, target, db_pid, Path(tmp) / f"{backend}.log", payload)
                if os.environ.get("ENGRAMDB_BENCH_PROFILE", "1") == "0":
                    continue  # load phases only (repeated runs)
                with console.status(f"{backend}: profiling one request at a time, in-process"):
                    payload["profiles"][backend] = profile(target, key)
    return payload


def with_ratios(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``vs_baseline``: its req/s over the baseline row's at the same backend,
    workers and clients (``None`` until that baseline is measured)."""
    base = {
        (r["backend"], r["workers"], r["clients"]): r["req_per_s"]
        for r in rows
        if r["endpoint"] == "baseline"
    }
    for r in rows:
        ceiling = base.get((r["backend"], r["workers"], r["clients"]))
        r["vs_baseline"] = round(r["req_per_s"] / ceiling, 3) if ceiling else None


def _ratio(row: dict[str, Any]) -> str:
    return "–" if row.get("vs_baseline") is None else f"{row['vs_baseline']:.2f}×"


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['backend']} w{row['workers']} c{row['clients']} {row['endpoint']}: "
        f"{row['req_per_s']:,.0f} req/s ({_ratio(row)} baseline), "
        f"p50 {row['p50_ms']:.1f} / p95 {row['p95_ms']:.1f} / "
        f"p99 {row['p99_ms']:.1f} ms, {row['errors']} errors; CPU cores: server "
        f"{row['server_cpu']:.2f}, db {row['db_cpu'] or 0:.2f}, load generator "
        f"{row['loadgen_cpu']:.2f}; server context switches per request "
        f"{row.get('switches_per_request', '–')}"
    )


def full_matrix() -> bool:
    return all(setting(name) == DEFAULTS[name] for name in DEFAULTS)


def main() -> None:
    console.print(
        f"[bold]server[/]: engramdb serve under load, {int(setting('MEMORIES')):,} memories, "
        f"{setting('BACKENDS')}, workers {setting('WORKERS')}, clients {setting('CLIENTS')}, "
        f"{setting('SECONDS')} s per phase"
    )
    payload = run()
    directory = RESULTS if full_matrix() else Path(tempfile.mkdtemp(prefix="engramdb-bench-"))
    if directory != RESULTS:
        console.print(f"partial run: results go to {directory}, not bench/results")
    report(payload, directory)


def report(payload: dict[str, Any], directory: Path = RESULTS) -> None:
    """Write ``server.json`` and ``server.md`` into ``directory`` and print the tables."""
    write_results(
        "server",
        payload,
        [
            "backend",
            "workers",
            "clients",
            "endpoint",
            "req/s",
            "× baseline",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "CPU srv/db/gen",
            "ctx sw/req",
        ],
        [
            [
                r["backend"],
                str(r["workers"]),
                str(r["clients"]),
                r["endpoint"],
                f"{r['req_per_s']:,.0f}",
                _ratio(r),
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                str(r["errors"]),
                f"{r['server_cpu']:.2f}/"
                + ("–" if r["db_cpu"] is None else f"{r['db_cpu']:.2f}")
                + f"/{r['loadgen_cpu']:.2f}",
                str(r.get("switches_per_request", "–")),
            ]
            for r in payload["rows"]
        ],
        f"Server: engramdb serve over HTTP, {payload['memories']:,} memories, "
        f"text recall (embedder {payload.get('embedder', 'none')})",
        notes=_notes(payload),
        directory=directory,
    )
    _print_profiles(payload["profiles"])


def _notes(payload: dict[str, Any]) -> str:
    preload = ", ".join(f"{b} {r:,.0f}/s" for b, r in payload["preload_per_s"].items())
    lines = [
        f"Load from a second process on loopback: N virtual users (asyncio, one keep-alive "
        f"httpx.AsyncClient each, closed loop), {payload['seconds']:g} s per phase after a "
        "short warm-up. recall = `POST /v1/memories/recall {query, limit: 10, mode: text}` "
        "with 2-5-word queries from the corpus vocabulary; remember = `POST /v1/memories` "
        "with one unique 12-24-word text; baseline = `GET /v1/keys` with the namespace key (the "
        "cheapest authenticated route: key lookup, the key listed back), the ceiling each "
        "row's × baseline is measured against (same backend, workers and clients). req/s counts "
        "successful requests; errors are non-2xx "
        f"answers and exceptions. The server runs with embedder `{payload.get('embedder', 'none')}`"
        " (remember_unbatched: with `embed_batching=false`), default (unlimited) "
        "quotas, log level warning; memories were stored through `POST /v1/memories/batch` "
        f"(1,000 per request; {preload}); all recall phases ran before the remember phases. "
        "CPU srv/db/gen: cores used during the window by the engramdb server (all its worker "
        "processes), by PostgreSQL, and by the load generator — all on the same "
        f"{os.cpu_count()}-core machine. ctx sw/req: context switches of the server's threads "
        "per request (threads waking each other for the GIL show here). PostgreSQL 18 + "
        "pgvector on loopback with durable defaults (fsync, synchronous_commit on). "
        "Reproduce: `.venv/bin/python -m bench server`.",
    ]
    if payload.get("uvicorn_workers_nagle"):
        lines.append(
            f"\n`--workers 2` rows: uvicorn {payload['uvicorn']} leaves Nagle's algorithm on "
            "when it runs several workers (its shared listening socket has proto 0, so asyncio "
            "does not set TCP_NODELAY; github.com/Kludex/uvicorn/issues/3149): every "
            "keep-alive response waits for the client's delayed ACK, about 40 ms, which "
            "dominates the 1-client rows."
        )
    for backend, profiles in payload["profiles"].items():
        for endpoint, prof in profiles.items():
            shares = "; ".join(
                f"{name} {share:.0%}" for name, share in prof["profile_share"].items()
            )
            lines.append(
                f"\nOne {endpoint} at a time, {backend} (same store, after the load phases): "
                f"the library call alone p50 {prof['library_p50_ms']:.1f} ms; the ASGI app "
                f"in-process (no HTTP, no thread hop) p50 {prof['app_in_process_p50_ms']:.1f} "
                f"ms; shares of the app's request time under cProfile (which inflates "
                f"Python-heavy parts): {shares}."
            )
    return "\n".join(lines)


def _print_profiles(profiles: dict[str, Any]) -> None:
    for backend, by_endpoint in profiles.items():
        for endpoint, prof in by_endpoint.items():
            table = Table("", "", title=f"Where one {endpoint} request's time goes: {backend}")
            table.add_row("library call alone, p50 ms", f"{prof['library_p50_ms']:.2f}")
            table.add_row(
                "ASGI app in-process (no HTTP), p50 ms", f"{prof['app_in_process_p50_ms']:.2f}"
            )
            for name, share in prof["profile_share"].items():
                table.add_row(f"cProfile share: {name}", f"{share:.0%}")
            console.print(table)


if __name__ == "__main__":
    main()
