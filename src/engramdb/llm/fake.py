"""A scripted LLM for tests: answers come from a list, calls are recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import LLMError
from .base import Completion, Message, Usage

Answer = Mapping[str, Any] | Exception | Callable[[Sequence[Message]], Mapping[str, Any]]


class ScriptedLLM:
    """Answers each call with the next scripted answer: a dict (returned), an exception
    (raised) or a function of the messages (called). Running out raises ``LLMError``.

    ``calls`` keeps every call's messages, schema name and schema, for assertions."""

    def __init__(self, answers: Iterable[Answer] = (), *, model: str = "scripted") -> None:
        self.model = model
        self._answers = list(answers)
        self._lock = threading.Lock()
        self.calls: list[tuple[list[Message], str, dict[str, Any]]] = []

    def add(self, *answers: Answer) -> None:
        with self._lock:
            self._answers.extend(answers)

    def complete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        with self._lock:
            self.calls.append((list(messages), name, dict(schema)))
            if not self._answers:
                raise LLMError("the scripted LLM has no answer left")
            answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        data = answer(messages) if callable(answer) else answer
        text = sum(len(m.content) for m in messages)
        return Completion(dict(data), self.model, Usage(text // 4, len(str(data)) // 4))

    async def acomplete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        return self.complete_json(messages, schema, name=name)
