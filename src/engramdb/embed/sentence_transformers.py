"""A local sentence-transformers model (optional extra: it brings PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Vectors, normalize


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local path (or the HF cache when allowed)."""

    def __init__(
        self, model_name_or_path: str, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        from .._extras import require

        st = require("sentence_transformers", None, "the st: embedder")
        SentenceTransformer = st.SentenceTransformer
        self._model: Any = SentenceTransformer(model_name_or_path, device=device)
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.model = f"st:{model_name_or_path}"
        self.batch_size = batch_size

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize(self._model.encode(list(texts), batch_size=self.batch_size))

    def embed_query(self, text: str) -> Vectors:
        out: Vectors = self.embed_documents([text])[0]
        return out
