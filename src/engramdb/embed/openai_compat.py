"""Embeddings from any OpenAI-compatible endpoint: OpenAI, Ollama, vLLM, LM Studio, TEI.

>>> OpenAIEmbedder("text-embedding-3-small")                                   # doctest: +SKIP
>>> OpenAIEmbedder("nomic-embed-text", base_url="http://localhost:11434/v1")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EngramError
from .base import Vectors, normalize


class EmbeddingError(EngramError):
    """The embedding provider failed or answered something unusable."""


class OpenAIEmbedder:
    """Calls ``POST {base_url}/embeddings`` through the ``openai`` package, in batches."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_tokens: int = 8191,
    ) -> None:
        from .._extras import require

        openai = require("openai", "openai", "OpenAI-compatible embeddings")
        self._client = openai.OpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._model_name = model
        self._dimensions = dimensions
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        host = base_url or "openai"
        self.model = f"openai:{host}:{model}" + (f":{dimensions}" if dimensions else "")
        self.dim = dimensions or 0  # learned from the first answer when not given

    def _call(self, texts: Sequence[str]) -> Vectors:
        import openai

        kwargs: dict[str, Any] = {"model": self._model_name, "input": list(texts)}
        if self._dimensions:
            kwargs["dimensions"] = self._dimensions
        try:
            response = self._client.embeddings.create(**kwargs)
        except openai.OpenAIError as exc:
            raise EmbeddingError(f"embedding request to {self.model} failed: {exc}") from exc
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise EmbeddingError(
                f"{self.model} returned {len(data)} vectors for {len(texts)} texts"
            )
        vectors = normalize(np.array([d.embedding for d in data], dtype=np.float32))
        if not self.dim:
            self.dim = int(vectors.shape[1])
        elif vectors.shape[1] != self.dim:
            raise EmbeddingError(
                f"{self.model} returned {vectors.shape[1]}-d vectors, not {self.dim}"
            )
        return vectors

    def chunk_spans(self, text: str) -> list[tuple[int, int]]:
        """Overlapping chunks within the endpoint's input limit of ``max_tokens`` tokens
        (8,191 for OpenAI's models), counted as :data:`~engramdb.embed.chunking.CHARS_PER_TOKEN`
        characters per token: no tokenizer is assumed to match the remote model's."""
        from .chunking import CHARS_PER_TOKEN, OVERLAP_TOKENS, char_windows

        window = self.max_tokens * CHARS_PER_TOKEN
        return char_windows(text, window, min(OVERLAP_TOKENS * CHARS_PER_TOKEN, window // 4))

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._call(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        out: Vectors = np.concatenate(parts)
        return out

    def embed_query(self, text: str) -> Vectors:
        out: Vectors = self._call([text])[0]
        return out
