"""Issue 15 item 6: the rerank providers — an OpenAI-compatible ``/rerank`` endpoint (the fake
server on loopback) and a chat model as the judge (the scripted LLM)."""

from __future__ import annotations

import pytest

from engramdb.errors import LLMUnavailableError
from engramdb.llm import ScriptedLLM
from engramdb.search.rerank import (
    MAX_DOCUMENT_CHARS,
    EndpointReranker,
    LLMReranker,
    Reranker,
    RerankError,
)
from tests.fake_openai import FakeOpenAI

DOCS = ["the cat sat", "a dog barked at the cat", "nothing here"]


def test_issue15_rerank_endpoint_scores_in_document_order(fake_openai: FakeOpenAI) -> None:
    reranker = EndpointReranker("rerank-small", base_url=fake_openai.base_url, api_key="k1")
    assert isinstance(reranker, Reranker)
    scores = reranker.rerank("dog cat", DOCS)
    # the fake answers best first; the scores come back in the documents' order
    assert scores == pytest.approx([0.5, 1.0, 0.0])
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/rerank"
    assert sent.body == {
        "model": "rerank-small",
        "query": "dog cat",
        "documents": DOCS,
        "top_n": 3,
    }
    assert sent.headers["authorization"] == "Bearer k1"
    # long documents are cut before they are sent
    reranker.rerank("x", ["y" * (MAX_DOCUMENT_CHARS + 50)])
    assert len(fake_openai.requests[-1].body["documents"][0]) == MAX_DOCUMENT_CHARS
    assert reranker.rerank("x", []) == []


def test_issue15_rerank_endpoint_failures_are_rerank_errors(fake_openai: FakeOpenAI) -> None:
    reranker = EndpointReranker("m", base_url=fake_openai.base_url)
    fake_openai.rerank_errors.append(503)
    with pytest.raises(RerankError, match="HTTP 503"):
        reranker.rerank("q", DOCS)
    fake_openai.rerank_scores = lambda q, docs: [1.0, 3.0, 2.0]
    assert reranker.rerank("q", ["a", "b", "c"]) == [1.0, 3.0, 2.0]  # the fake is used
    with pytest.raises(RerankError, match="failed"):
        EndpointReranker("m", base_url="http://127.0.0.1:9/v1", timeout=2).rerank("q", DOCS)
    with pytest.raises(RerankError, match="base_url"):
        EndpointReranker("m", base_url="")


def test_issue15_rerank_endpoint_malformed_answers() -> None:
    from engramdb.search.rerank import _scores

    # a document the answer leaves out scores below every scored one
    assert _scores({"results": [{"index": 1, "score": 2}]}, 2, "x") == [1.0, 2.0]
    for bad in (
        [],
        {"results": "no"},
        {"results": [{"index": 5, "relevance_score": 1.0}]},
        {"results": [{"index": True, "relevance_score": 1.0}]},
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"results": ["x"]},
        {"results": []},
    ):
        with pytest.raises(RerankError):
            _scores(bad, 2, "x")


def test_issue15_rerank_llm_judge() -> None:
    llm = ScriptedLLM([{"scores": [2, 9, 0]}])
    reranker = LLMReranker(llm)
    assert isinstance(reranker, Reranker) and reranker.model == "llm:scripted"
    assert reranker.rerank("who barked?", DOCS) == [2.0, 9.0, 0.0]
    ((messages, name, schema),) = llm.calls
    assert name == "rerank_scores" and schema["required"] == ["scores"]
    assert "who barked?" in messages[1].content
    assert "[1] a dog barked at the cat" in messages[1].content
    # one score per passage, or an error; a model failure is a rerank error
    llm.add({"scores": [1, 2]}, {"scores": [1, "x", 3]}, LLMUnavailableError("down"))
    for _ in range(3):
        with pytest.raises(RerankError):
            reranker.rerank("q", DOCS)
    assert reranker.rerank("q", []) == []
