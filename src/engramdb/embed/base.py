"""The Embedder protocol: text in, unit-length float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into vectors. ``model`` names the model *and* its settings: vectors stored
    under one name are never compared with vectors of another."""

    model: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for stored texts, shape ``(len(texts), dim)``, each of unit length."""

    def embed_query(self, text: str) -> Vectors:
        """The vector for a search query, shape ``(dim,)``, unit length."""


def normalize(vectors: npt.ArrayLike) -> Vectors:
    """Scale rows to unit length (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    out: Vectors = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return out
