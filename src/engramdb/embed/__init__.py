"""Embedders: the protocol and its providers.

Pick one with a spec string (the CLI and server use the same ones):

- ``"auto"`` (default): the bundled local model when installed (``engramdb[local]``), else
  none: engramdb then works text-only.
- ``"local"``: the bundled local ONNX model (offline, no PyTorch).
- ``"openai:MODEL"``: an OpenAI-compatible endpoint (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``).
- ``"st:NAME_OR_PATH"``: a sentence-transformers model.
- ``"hashing"`` / ``"hashing:DIM"``: dependency-free lexical hashing (tests, fallbacks).
- ``"none"``: text-only.

``$ENGRAMDB_EMBEDDER`` replaces ``"auto"``. ``"auto"`` falling back to text-only warns once;
an explicit spec that cannot load raises, unless ``fallback="text"``.
"""

from __future__ import annotations

import os
import warnings
from typing import Literal

from ..errors import InvalidInputError, MissingExtraError
from .base import Embedder, Vectors, normalize
from .batching import EmbedBatcher
from .hashing import HashingEmbedder
from .openai_compat import EmbeddingError, OpenAIEmbedder

Fallback = Literal["text"] | None
"""``"text"``: an embedder that cannot load leaves engramdb text-only (with a warning)
instead of raising."""

_warned: set[str] = set()


def _text_only(reason: str) -> None:
    """Say once per reason (a :class:`UserWarning`) that recall is text-only."""
    if reason in _warned:
        return
    _warned.add(reason)
    message = f"engramdb: no embedder ({reason}); recall is text-only (vectors off)"
    warnings.warn(message, UserWarning, stacklevel=3)


def resolve_embedder(spec: Embedder | str | None, *, fallback: Fallback = None) -> Embedder | None:
    """An embedder from an instance, a spec string, or None (text-only).

    ``"auto"`` is the local model when ``engramdb[local]`` is installed, else text-only, said
    once by a warning. An explicit spec (``"local"``, ``"openai:MODEL"``, ``"st:NAME"``) that
    cannot load raises :class:`~engramdb.errors.MissingExtraError` (or
    :class:`EmbeddingError`) naming what to install, unless ``fallback="text"``: then it warns
    and returns ``None``.
    """
    if fallback not in (None, "text"):
        raise InvalidInputError(f"fallback must be None or 'text', got {fallback!r}")
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
                return _load("local", "")
            except MissingExtraError as exc:
                _text_only(f"auto: {exc}")
                return None
    name, _, arg = spec.partition(":")
    if name == "none":
        return None
    if name == "hashing":
        return HashingEmbedder(int(arg) if arg else 256)
    if name in ("local", "openai", "st") and (arg or name == "local"):
        try:
            return _load(name, arg)
        except (MissingExtraError, EmbeddingError) as exc:
            if fallback != "text":
                raise
            _text_only(f"{spec}: {exc}")
            return None
    raise InvalidInputError(
        f"unknown embedder {spec!r}; use auto, local, none, hashing[:DIM], openai:MODEL or st:MODEL"
    )


_NEEDS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "local": (("onnxruntime", "local"), ("tokenizers", "local")),
    "openai": (("openai", "openai"),),
    "st": (("sentence_transformers", None),),
}


def check_embedder(spec: str | None) -> None:
    """Raise :class:`~engramdb.errors.MissingExtraError` if the packages an explicit embedder
    spec needs are missing, without loading any model (``engramdb serve`` checks before it
    starts its workers). ``"auto"`` (unless ``$ENGRAMDB_EMBEDDER`` names one), ``"none"``
    and ``"hashing"`` need nothing."""
    if spec == "auto" or spec is None:
        spec = os.environ.get("ENGRAMDB_EMBEDDER", "auto")
    from .._extras import require

    name = spec.partition(":")[0]
    for module, extra in _NEEDS.get(name, ()):
        require(module, extra, f"the {name} embedder")


def _load(name: str, arg: str) -> Embedder:
    check_embedder(name)
    if name == "local":
        from .local import LocalEmbedder

        return LocalEmbedder()
    if name == "openai":
        return OpenAIEmbedder(arg)
    from .sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(arg)


__all__ = [
    "EmbedBatcher",
    "Embedder",
    "EmbeddingError",
    "Fallback",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "Vectors",
    "check_embedder",
    "normalize",
    "resolve_embedder",
]
