"""Language models for the memory manager: the :class:`LLM` protocol and its providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from .base import LLM, Completion, Message, Usage
from .fake import ScriptedLLM

if TYPE_CHECKING:  # pragma: no cover
    from .openai_compat import OpenAICompatibleLLM

__all__ = [
    "LLM",
    "Completion",
    "Message",
    "OpenAICompatibleLLM",
    "ScriptedLLM",
    "Usage",
    "resolve_llm",
]


def __getattr__(name: str) -> object:
    if name == "OpenAICompatibleLLM":  # imported on first use: it pulls in jsonschema
        from .openai_compat import OpenAICompatibleLLM

        return OpenAICompatibleLLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_llm(spec: LLM | str | None) -> LLM | None:
    """An :class:`LLM` from configuration.

    ``None`` → ``None`` (no model: the manager's deterministic fallback); an :class:`LLM`
    instance → itself; ``"openai:MODEL"`` → :class:`OpenAICompatibleLLM` for ``MODEL``, with
    base URL and key from the environment (``"openai"`` alone takes the model from
    ``ENGRAMDB_LLM_MODEL``). ``"scripted"`` is refused: the scripted fake is for tests, built
    in code. Anything else is an :class:`~engramdb.errors.InvalidInputError`."""
    if spec is None:
        return None
    if isinstance(spec, str):
        provider, _, model = spec.strip().partition(":")
        if provider == "openai":
            from .openai_compat import OpenAICompatibleLLM

            return OpenAICompatibleLLM(model.strip() or None)
        if provider == "scripted":
            raise InvalidInputError(
                "the scripted LLM is for tests: pass a ScriptedLLM instance, not 'scripted'"
            )
        raise InvalidInputError(
            f"unknown LLM {spec!r}: use 'openai:MODEL' (any OpenAI-compatible endpoint, "
            "configured with ENGRAMDB_LLM_BASE_URL / OPENAI_BASE_URL) or pass an LLM instance"
        )
    if isinstance(spec, LLM):
        return spec
    raise InvalidInputError(f"not an LLM: {type(spec).__name__}")
