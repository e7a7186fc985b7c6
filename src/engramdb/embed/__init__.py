"""Embedders: the protocol and its providers.

Pick one with a spec string (the CLI and server use the same ones):

- ``"auto"`` (default): the bundled local model when installed (``engramdb[local]``), else
  none: engramdb then works text-only.
- ``"local"``: the bundled local ONNX model (offline, no PyTorch).
- ``"openai:MODEL"``: an OpenAI-compatible endpoint (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``).
- ``"st:NAME_OR_PATH"``: a sentence-transformers model.
- ``"hashing"`` / ``"hashing:DIM"``: dependency-free lexical hashing (tests, fallbacks).
- ``"none"``: text-only.

``$ENGRAMDB_EMBEDDER`` replaces ``"auto"``.
"""

from __future__ import annotations

import os

from ..errors import InvalidInputError
from .base import Embedder, Vectors, normalize
from .batching import EmbedBatcher
from .hashing import HashingEmbedder
from .openai_compat import EmbeddingError, OpenAIEmbedder


def resolve_embedder(spec: Embedder | str | None) -> Embedder | None:
    """An embedder from an instance, a spec string, or None (text-only)."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        if isinstance(spec, Embedder):
            return spec
        raise InvalidInputError(f"embedder must be an Embedder or a spec string, got {spec!r}")
    if spec == "auto":
        spec = os.environ.get("ENGRAMDB_EMBEDDER", "auto")
        if spec == "auto":
            try:
                from .local import LocalEmbedder
            except ImportError:
                return None
            local: Embedder = LocalEmbedder()
            return local
    name, _, arg = spec.partition(":")
    if name == "none":
        return None
    if name == "local":
        from .local import LocalEmbedder

        chosen: Embedder = LocalEmbedder()
        return chosen
    if name == "hashing":
        return HashingEmbedder(int(arg) if arg else 256)
    if name == "openai" and arg:
        return OpenAIEmbedder(arg)
    if name == "st" and arg:
        from .sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(arg)
    raise InvalidInputError(
        f"unknown embedder {spec!r}; use auto, local, none, hashing[:DIM], openai:MODEL or st:MODEL"
    )


__all__ = [
    "EmbedBatcher",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "Vectors",
    "normalize",
    "resolve_embedder",
]
