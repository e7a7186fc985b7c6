"""Issue 14: one loaded local model per process; the server's embedding micro-batcher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import Memory, open_store
from engramdb.embed import EmbedBatcher, EmbeddingError, HashingEmbedder, Vectors


class GatedEmbedder:
    """A hashing embedder whose first call waits until the other ``expected`` texts are
    queued behind it (``waiting()``) and ``hold`` is set, counting calls; texts in ``bad``
    fail."""

    def __init__(self, bad: frozenset[str] = frozenset()) -> None:
        self.inner = HashingEmbedder(64)
        self.model, self.dim = self.inner.model, self.inner.dim
        self.bad = bad
        self.calls: list[list[str]] = []
        self.expected = 0  # texts the test sends; the first call waits until all are queued
        self.waiting: Callable[[], int] = lambda: 0
        self.hold = threading.Event()
        self.blocked = 0  # texts of the first call, while it waits
        self.hold.set()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not self.calls:
            self.blocked = len(texts)
            wait_until(lambda: self.waiting() + len(texts) >= self.expected)
            self.hold.wait(20)
        self.calls.append(list(texts))
        if self.bad & set(texts):
            raise ValueError(f"cannot embed {sorted(self.bad & set(texts))}")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


def gate(inner: GatedEmbedder, batcher: EmbedBatcher, requests: Sequence[Sequence[str]]) -> None:
    inner.expected = sum(len(texts) for texts in requests)
    inner.waiting = lambda: batcher._waiting


def test_issue14_embed_local_model_loaded_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from engramdb.embed import local

    try:
        local._model_file(local.MODELS[local.DEFAULT_MODEL])
    except ImportError:
        pytest.skip("the local model package is not installed")
    loads = []
    real = local.onnxruntime.InferenceSession

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "_LOADED", {})
    monkeypatch.setattr(local.onnxruntime, "InferenceSession", counting)
    monkeypatch.delenv("ENGRAMDB_EMBEDDER", raising=False)
    first = Memory(open_store(tmp_path / "a"), embedder="auto")
    second = Memory(open_store(tmp_path / "b"), embedder="local")
    assert isinstance(first.embedder, local.LocalEmbedder)
    assert isinstance(second.embedder, local.LocalEmbedder)
    assert first.embedder._session is second.embedder._session
    assert len(loads) == 1
    # and the shared model answers both as it would answer one
    assert np.array_equal(
        first.embedder.embed_documents(["a shared model"]),
        second.embedder.embed_documents(["a shared model"]),
    )


def test_issue14_embed_batcher_concurrent_calls_share_model_calls() -> None:
    inner = GatedEmbedder()
    batcher = EmbedBatcher(inner, max_wait=0)
    n = 12
    requests = [[f"text {i}"] if i % 3 else [f"text {i}", f"more {i}"] for i in range(n)]
    gate(inner, batcher, requests)
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(batcher.embed_documents, requests))
    assert len(inner.calls) < n
    assert batcher.calls == len(inner.calls)
    direct = HashingEmbedder(64)
    for texts, vectors in zip(requests, results, strict=True):
        assert np.array_equal(vectors, direct.embed_documents(texts))
    batcher.close()


def test_issue14_embed_batcher_error_reaches_only_its_caller() -> None:
    inner = GatedEmbedder(bad=frozenset({"poison"}))
    batcher = EmbedBatcher(inner, max_wait=0)
    requests = [["first"], ["ok 1"], ["poison", "ok 2"], ["ok 3"], ["ok 4"], ["ok 5"]]
    n = len(requests)
    gate(inner, batcher, requests)

    def call(texts: list[str]) -> Vectors | BaseException:
        try:
            return batcher.embed_documents(texts)
        except BaseException as exc:  # the test looks at which caller got what
            return exc

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(call, requests))
    direct = HashingEmbedder(64)
    for texts, result in zip(requests, results, strict=True):
        if "poison" in texts:
            assert isinstance(result, EmbeddingError)
            assert isinstance(result.__cause__, ValueError)
            assert "poison" in str(result)
        else:
            assert isinstance(result, np.ndarray)
            assert np.array_equal(result, direct.embed_documents(texts))
    batcher.close()


def test_issue14_embed_batcher_close_drains_waiting_calls() -> None:
    inner = GatedEmbedder()
    batcher = EmbedBatcher(inner, max_wait=0)
    n = 5
    gate(inner, batcher, [[f"t{i}"] for i in range(n)])
    inner.hold.clear()
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(batcher.embed_documents, [f"t{i}"]) for i in range(n)]
        wait_until(lambda: inner.blocked + batcher._waiting == n)
        closer = threading.Thread(target=batcher.close)  # while calls wait in the queue
        closer.start()
        inner.hold.set()
        closer.join(20)
        assert not closer.is_alive()
        results = [f.result(timeout=20) for f in futures]
    assert sorted(t for call in inner.calls for t in call) == sorted(f"t{i}" for i in range(n))
    for i, vectors in enumerate(results):
        assert np.array_equal(vectors, HashingEmbedder(64).embed_documents([f"t{i}"]))
    # after close, calls embed directly
    assert np.array_equal(batcher.embed_documents(["late"]), inner.embed_documents(["late"]))


def test_issue14_embed_server_batches_concurrent_remembers(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from engramdb.server import create_app
    from engramdb.server.settings import ServerSettings
    from tests.live_server import ADMIN_KEY

    inner = GatedEmbedder(bad=frozenset({"poison"}))
    memory = Memory(open_store(tmp_path), embedder=inner)
    app = create_app(
        settings=ServerSettings(admin_keys=[ADMIN_KEY], embed_batch_ms=0), memory=memory
    )
    batcher = app.state.services.memory.embedder
    assert isinstance(batcher, EmbedBatcher) and batcher.inner is inner
    n = 8
    texts = [f"memory number {i}" for i in range(n - 1)] + ["poison"]
    gate(inner, batcher, [[t] for t in texts])
    with TestClient(app) as client:
        made = client.post("/v1/keys", json={"name": "t"}, headers={"X-API-Key": ADMIN_KEY})
        key = made.json()["api_key"]

        def remember(text: str) -> Any:
            return client.post("/v1/memories", json={"content": text}, headers={"X-API-Key": key})

        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(remember, texts))
        assert [a.status_code for a in answers] == [201] * n
        # texts of several requests went to the model in one call
        assert max(len(call) for call in inner.calls) > 1
        namespace = made.json()["key"]["namespace"]
        for text, answer in zip(texts, answers, strict=True):
            record = memory.get(answer.json()["id"], namespace=namespace)
            assert record.content == text
    # the poisoned text was kept, without a vector; the others carry theirs
    stats = memory.store.memory_stats(namespace)
    assert (stats.memories, stats.embedded) == (n, n - 1)
    assert batcher._closed  # the server's shutdown closed (drained) it
