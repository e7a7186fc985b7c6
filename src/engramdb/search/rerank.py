"""Reranking: a second opinion on the best few candidates of a recall (off by default).

A :class:`Reranker` scores ``(query, document)`` pairs; recall hands it the best
``RecallSettings.rerank_depth`` fused candidates and reorders them by its scores
(``Memory(reranker=...)``). Two providers:

- :class:`EndpointReranker`: an OpenAI-compatible server's ``POST {base_url}/rerank`` (the
  Cohere / Jina / vLLM / TEI shape: ``{"model", "query", "documents"}`` in,
  ``{"results": [{"index", "relevance_score"}]}`` out).
- :class:`LLMReranker`: a chat model through engramdb's LLM layer
  (:class:`~engramdb.llm.LLM`) scoring every passage 0-10 in one call.

There is no local cross-encoder: no package on PyPI ships cross-encoder weights (the ones
that rerank locally download them from a model hub at run time, which engramdb does not do).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import EngramError

if TYPE_CHECKING:
    from ..llm import LLM

MAX_DOCUMENT_CHARS = 4_000
"""Each document is cut to this many characters before it is sent."""


class RerankError(EngramError):
    """The reranker failed or answered something unusable (recall goes on without it)."""


@runtime_checkable
class Reranker(Protocol):
    """Scores documents for a query: higher is more relevant; one score per document, in
    the documents' order. Raises :class:`RerankError` when it cannot."""

    model: str

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]: ...


def _clip(document: str) -> str:
    return document[:MAX_DOCUMENT_CHARS]


def _scores(answer: Any, count: int, source: str) -> list[float]:
    """Scores in document order from a ``{"results": [{"index", "relevance_score"}]}``
    answer; a document the answer leaves out scores below every scored one."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise RerankError(f"{source} answered without a 'results' list")
    scores: dict[int, float] = {}
    for item in results:
        if not isinstance(item, dict):
            raise RerankError(f"{source} answered a result that is not an object")
        index, score = item.get("index"), item.get("relevance_score", item.get("score"))
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < count
            or not isinstance(score, (int, float))
            or isinstance(score, bool)
        ):
            raise RerankError(f"{source} answered a malformed result: {item!r}")
        scores[index] = float(score)
    if not scores:
        raise RerankError(f"{source} scored none of the {count} documents")
    floor = min(scores.values()) - 1.0
    return [scores.get(i, floor) for i in range(count)]


class EndpointReranker:
    """``POST {base_url}/rerank`` on an OpenAI-compatible server (vLLM, TEI, Jina, Cohere).

    ``base_url`` and ``api_key`` default to ``ENGRAMDB_RERANK_BASE_URL`` /
    ``ENGRAMDB_RERANK_API_KEY``. Failures (connection, timeout, a non-2xx status, an answer
    not in the rerank shape) raise :class:`RerankError`."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        url = base_url or os.environ.get("ENGRAMDB_RERANK_BASE_URL")
        if not url:
            raise RerankError("EndpointReranker needs base_url (or ENGRAMDB_RERANK_BASE_URL)")
        self.url = url.rstrip("/") + "/rerank"
        self.model = model
        self._api_key = api_key or os.environ.get("ENGRAMDB_RERANK_API_KEY")
        self.timeout = timeout

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        import httpx

        if not documents:
            return []
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = {
            "model": self.model,
            "query": query,
            "documents": [_clip(d) for d in documents],
            "top_n": len(documents),
        }
        try:
            response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RerankError(f"rerank request to {self.url} failed: {exc}") from exc
        if response.status_code // 100 != 2:
            raise RerankError(
                f"rerank request to {self.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise RerankError(f"{self.url} answered something that is not JSON") from exc
        return _scores(answer, len(documents), self.url)


_JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"scores": {"type": "array", "items": {"type": "number"}}},
    "required": ["scores"],
    "additionalProperties": False,
}
_JUDGE_PROMPT = (
    "You rank memories for a question. For each numbered passage, give a score from 0 "
    "(irrelevant) to 10 (answers the question). Answer with a JSON object "
    '{"scores": [...]} holding exactly one number per passage, in the passages\' order.'
)


class LLMReranker:
    """A chat model as the judge: one call per recall scores every passage 0-10.

    ``llm``: any :class:`~engramdb.llm.LLM` or an ``"openai:MODEL"`` string (as for
    ``Memory(llm=...)``). Model failures and answers without one score per passage raise
    :class:`RerankError`."""

    def __init__(self, llm: LLM | str) -> None:
        from ..llm import resolve_llm

        resolved = resolve_llm(llm)
        if resolved is None:
            raise RerankError("LLMReranker needs a model")
        self.llm = resolved
        self.model = f"llm:{resolved.model}"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        from ..errors import LLMError
        from ..llm import Message

        if not documents:
            return []
        passages = "\n".join(f"[{i}] {_clip(d)}" for i, d in enumerate(documents))
        messages = [
            Message("system", _JUDGE_PROMPT),
            Message("user", f"Question: {query}\n\nPassages:\n{passages}"),
        ]
        try:
            answer = self.llm.complete_json(messages, _JUDGE_SCHEMA, name="rerank_scores")
        except LLMError as exc:
            raise RerankError(f"rerank by {self.llm.model} failed: {exc}") from exc
        scores = answer.data.get("scores")
        if (
            not isinstance(scores, list)
            or len(scores) != len(documents)
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)
        ):
            raise RerankError(
                f"{self.llm.model} gave {len(scores) if isinstance(scores, list) else 'no'} "
                f"scores for {len(documents)} passages"
            )
        return [float(s) for s in scores]


__all__ = ["EndpointReranker", "LLMReranker", "RerankError", "Reranker"]
