"""A dependency-free embedder: hashed word and character-trigram features.

It captures lexical overlap only (no synonyms), needs no model files and is deterministic,
which makes it the embedder of choice for tests and a usable fallback where nothing else can
be installed. Prefer a real model for retrieval quality.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .base import Vectors, normalize

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class HashingEmbedder:
    """Feature-hashing embedder (words weighted 1.0, character trigrams 0.3)."""

    def __init__(self, dim: int = 256, *, window: int | None = None) -> None:
        self.dim = dim
        self.window = window
        """Characters per chunk (``None``: a text is one vector however long; set it to try
        chunked embeddings without a model)."""
        self.model = f"hashing-v1-{dim}" + (f"-w{window}" if window else "")

    def chunk_spans(self, text: str) -> list[tuple[int, int]]:
        """Whole, or overlapping windows of ``window`` characters cut between words."""
        if self.window is None:
            return [(0, len(text))]
        from .chunking import char_windows

        return char_windows(text, self.window, self.window // 4)

    def _vector(self, text: str) -> Vectors:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            self._add(vec, "w:" + word, 1.0)
            padded = f"#{word}#"
            for i in range(len(padded) - 2):
                self._add(vec, "t:" + padded[i : i + 3], 0.3)
        return vec

    def _add(self, vec: Vectors, feature: str, weight: float) -> None:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % self.dim
        sign = 1.0 if digest[4] & 1 else -1.0
        vec[index] += sign * weight

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize(np.stack([self._vector(t) for t in texts]))

    def embed_query(self, text: str) -> Vectors:
        return normalize(self._vector(text))
