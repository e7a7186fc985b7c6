"""The OpenAI-compatible embedder against a local fake endpoint on loopback (no hosted API)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engramdb import Memory
from engramdb.embed import EmbeddingError, OpenAIEmbedder


def fake_vector(text: str, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(text.lower().encode()).digest()
    return [b / 255 - 0.5 for b in digest[:dim]]


class FakeEmbeddings(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict[str, Any]]] = []
    fail: ClassVar[bool] = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(
            {"path": self.path, "body": body, "auth": self.headers["Authorization"]}
        )
        if type(self).fail:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "boom"}}')
            return
        inputs = body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t)}
            for i, t in reversed(list(enumerate(inputs)))  # out of order on purpose
        ]
        payload = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    FakeEmbeddings.calls, FakeEmbeddings.fail = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_batches_order_and_auth(endpoint: str) -> None:
    embedder = OpenAIEmbedder(
        "fake-model", base_url=endpoint, api_key="sk-test", batch_size=2, max_retries=0
    )
    vectors = embedder.embed_documents(["a", "b", "c"])
    assert vectors.shape == (3, 8) and embedder.dim == 8
    assert len(FakeEmbeddings.calls) == 2  # batches of 2
    assert FakeEmbeddings.calls[0]["path"] == "/v1/embeddings"
    assert FakeEmbeddings.calls[0]["auth"] == "Bearer sk-test"
    again = embedder.embed_documents(["c"])[0]
    assert (abs(again - vectors[2]) < 1e-6).all()  # the response order was restored


def test_memory_uses_it_and_caches_by_content(endpoint: str, tmp_path: Path) -> None:
    embedder = OpenAIEmbedder("fake-model", base_url=endpoint, max_retries=0)
    mem = Memory(tmp_path, embedder=embedder)
    mem.remember("Alpha beta", user_id="u1")
    mem.remember("Alpha beta", user_id="u2")  # same text, another scope: cached vector
    assert sum(len(c["body"]["input"]) for c in FakeEmbeddings.calls) == 1
    hits = mem.recall("alpha BETA", mode="vector", limit=1)
    assert hits[0].memory.content == "Alpha beta"


def test_endpoint_failure_keeps_the_text_and_reembed_recovers(
    endpoint: str, tmp_path: Path
) -> None:
    embedder = OpenAIEmbedder("fake-model", base_url=endpoint, max_retries=0)
    FakeEmbeddings.fail = True
    with pytest.raises(EmbeddingError, match="failed"):
        embedder.embed_query("x")
    mem = Memory(tmp_path, embedder=embedder)
    stored = mem.remember("kept despite the outage")
    assert mem.get(stored.id).content == "kept despite the outage"
    assert mem.stats().embedded == 0
    assert [h.memory.id for h in mem.recall("outage")] == [stored.id]  # text lane still works
    FakeEmbeddings.fail = False
    assert mem.reembed() == 1 and mem.stats().embedded == 1
