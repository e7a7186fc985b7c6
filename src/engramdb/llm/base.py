"""The LLM protocol: chat messages in, one JSON object matching a schema out.

The memory manager asks models for structured answers only (extracted facts, decisions), so
the protocol is that one call, sync and async. Providers: :mod:`engramdb.llm.openai_compat`
(any OpenAI-compatible endpoint); :class:`engramdb.llm.fake.ScriptedLLM` for tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used, as the provider reported them (0 when it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A structured answer: the parsed JSON object, the model that gave it, the tokens."""

    data: dict[str, Any]
    model: str
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class LLM(Protocol):
    """A chat model that answers with one JSON object matching ``schema`` (a JSON Schema).

    Raises :class:`~engramdb.errors.LLMUnavailableError` when the endpoint cannot answer and
    :class:`~engramdb.errors.LLMResponseError` when the answer is not such an object.
    """

    model: str

    def complete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        """One call; ``name`` names the schema (``[a-zA-Z0-9_-]``, for providers that ask)."""

    async def acomplete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        """The same call as a coroutine."""
