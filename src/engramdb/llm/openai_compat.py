"""An :class:`~engramdb.llm.LLM` on any OpenAI-compatible chat completions endpoint.

OpenAI itself, Ollama (``http://localhost:11434/v1``), vLLM, LM Studio, llama.cpp's server:
anything that serves ``POST /v1/chat/completions``. Built on the ``openai`` package
(``pip install 'engramdb[openai]'``), with the retry policy implemented here so it is bounded
and tested: the SDK's own retries are off.

One core, two faces: :meth:`OpenAICompatibleLLM.complete_json` and
:meth:`~OpenAICompatibleLLM.acomplete_json` build the same request, classify failures the
same way and parse answers with the same code; only the sleeping and the client differ.

Structured output: the request asks for ``response_format={"type": "json_schema", ...}``.
An endpoint that rejects it (HTTP 400/422 naming ``response_format`` / ``json_schema``, or
saying it is unsupported) is asked again, then and for the rest of this instance's life, with
the schema in the system message and an instruction to answer with a JSON object only; either
way the answer is parsed loosely (fences, prose around the object) and validated strictly by
:mod:`engramdb.llm.parse`.

Every message is passed through :func:`engramdb.redact.redact` before it is sent (on by
default): a secret in a conversation never reaches a model.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..errors import InvalidInputError, LLMError, LLMResponseError, LLMUnavailableError
from ..redact import redact
from ..retrying import backoff_delay, parse_retry_after
from .base import Completion, Message, Usage
from .parse import parse_json_answer

if TYPE_CHECKING:  # pragma: no cover
    import openai

__all__ = ["JsonMode", "OpenAICompatibleLLM"]

JsonMode = Literal["auto", "json_schema", "prompt"]
"""``auto``: ask for ``json_schema`` structured output, fall back to a plain JSON prompt if
the endpoint rejects it; ``json_schema``: never fall back; ``prompt``: never ask for it."""

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_REJECTION_WORDS = (
    "response_format",
    "json_schema",
    "structured output",
    "not supported",
    "unsupported",
)
_PROMPT_INSTRUCTION = (
    "Answer with one JSON object only: no prose, no code fences, no comments. "
    "The object must match this JSON Schema (named {name!r}):\n{schema}"
)

# Looked up at call time so tests can record waits instead of sleeping.
_sleep: Callable[[float], None] = time.sleep
_asleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class _Failure:
    """How one failed attempt is handled: retry after ``wait`` seconds, fall back to the
    prompt mode, or raise ``error``."""

    error: LLMError
    wait: float | None = None
    fallback: bool = False


class OpenAICompatibleLLM:
    """A chat model behind an OpenAI-compatible endpoint, answering with JSON objects.

    Arguments not given come from the environment: ``ENGRAMDB_LLM_MODEL``;
    ``ENGRAMDB_LLM_BASE_URL`` then ``OPENAI_BASE_URL`` (default: OpenAI's API);
    ``ENGRAMDB_LLM_API_KEY`` then ``OPENAI_API_KEY`` (local servers need none).

    ``timeout`` bounds each HTTP attempt (seconds). Failures that may pass (429, 408, 409,
    425, 5xx, a refused or dropped connection, a timeout) are retried up to ``max_retries``
    times with exponential back-off from ``backoff`` seconds plus jitter, or after the
    server's ``Retry-After`` (seconds or an HTTP date), every wait capped at ``max_wait``;
    then :class:`~engramdb.errors.LLMUnavailableError`. A 401/403/404 (bad key, unknown model)
    is :class:`~engramdb.errors.LLMUnavailableError` at once, another 4xx
    :class:`~engramdb.errors.LLMError`, and an answer that is not a JSON object matching the
    schema :class:`~engramdb.errors.LLMResponseError` (not retried: the caller decides).

    ``calls``, ``retries``, ``prompt_tokens``, ``completion_tokens`` and ``tokens_used`` are
    running totals over the instance's life (thread-safe): every answered request counts,
    including answers that then fail to parse.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        temperature: float | None = 0.0,
        json_mode: JsonMode = "auto",
        max_tokens: int | None = None,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        redact_messages: bool = True,
    ) -> None:
        from .._extras import require

        openai_module = require("openai", "openai", "the OpenAI-compatible LLM")
        model = model or _env("ENGRAMDB_LLM_MODEL")
        if not model:
            raise InvalidInputError("no LLM model given: pass model=... or set ENGRAMDB_LLM_MODEL")
        if json_mode not in ("auto", "json_schema", "prompt"):
            raise InvalidInputError(
                f"json_mode must be 'auto', 'json_schema' or 'prompt', not {json_mode!r}"
            )
        if timeout <= 0 or max_retries < 0 or backoff < 0 or max_wait < 0:
            raise InvalidInputError(
                "timeout must be positive; max_retries, backoff and max_wait not negative"
            )
        self.model = model
        self.base_url = base_url or _env("ENGRAMDB_LLM_BASE_URL", "OPENAI_BASE_URL")
        # Local servers (Ollama, vLLM, LM Studio) accept any key; the SDK insists on one.
        self._api_key = api_key or _env("ENGRAMDB_LLM_API_KEY", "OPENAI_API_KEY") or "unused"
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.temperature = temperature
        self.json_mode: JsonMode = json_mode
        self.max_tokens = max_tokens
        self.backoff = float(backoff)
        self.max_wait = float(max_wait)
        self.redact_messages = redact_messages
        self._openai: Any = openai_module
        self._client: openai.OpenAI | None = None
        self._aclient: openai.AsyncOpenAI | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._fallback = json_mode == "prompt"
        self._lock = threading.Lock()
        self.calls = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- accounting -------------------------------------------------------------------------

    @property
    def tokens_used(self) -> int:
        """Prompt plus completion tokens of every answered call so far."""
        with self._lock:
            return self.prompt_tokens + self.completion_tokens

    @property
    def uses_prompt_fallback(self) -> bool:
        """Whether this instance asks for JSON in the prompt instead of ``response_format``
        (``json_mode="prompt"``, or the endpoint rejected ``json_schema``)."""
        return self._fallback

    def _count(self, usage: Usage | None = None, *, retry: bool = False) -> None:
        with self._lock:
            if retry:
                self.retries += 1
            if usage is not None:
                self.calls += 1
                self.prompt_tokens += usage.prompt_tokens
                self.completion_tokens += usage.completion_tokens

    # -- clients ----------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "api_key": self._api_key,
            "timeout": self.timeout,
            "max_retries": 0,  # retried here, with our policy
        }
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return kwargs

    def _sync_client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = self._openai.OpenAI(**self._client_kwargs())
            return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        # An async HTTP client's connections belong to the event loop that opened them: a
        # caller that runs each call in a fresh loop (asyncio.run) gets a client per loop.
        # The HTTP client is our own: the SDK's default one closes itself when collected, in
        # whatever loop runs then, which fails for a client whose loop has closed (and an
        # async test runner reports that failure as the running test's error).
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aclient is None or self._aclient_loop is not loop:
                self._aclient = self._openai.AsyncOpenAI(
                    **self._client_kwargs(), http_client=self._openai.DefaultAsyncHttpxClient()
                )
                self._aclient_loop = loop
            return self._aclient

    def close(self) -> None:
        """Close the synchronous HTTP client (the async one: :meth:`aclose`)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        aclient, self._aclient = self._aclient, None
        if aclient is not None and self._aclient_loop is asyncio.get_running_loop():
            await aclient.close()
        self.close()

    def __enter__(self) -> OpenAICompatibleLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> OpenAICompatibleLLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the shared core: request, failure classification, answer ---------------------------

    def _request(
        self, messages: Sequence[Message], schema: Mapping[str, Any], name: str, *, prompt: bool
    ) -> dict[str, Any]:
        if not messages:
            raise InvalidInputError("an LLM call needs at least one message")
        sent = [
            {"role": m.role, "content": redact(m.content) if self.redact_messages else m.content}
            for m in messages
        ]
        request: dict[str, Any] = {"model": self.model, "messages": sent}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        if prompt:
            instruction = _PROMPT_INSTRUCTION.format(
                name=name, schema=orjson.dumps(dict(schema)).decode()
            )
            if sent[0]["role"] == "system":
                sent[0] = {"role": "system", "content": f"{sent[0]['content']}\n\n{instruction}"}
            else:
                sent.insert(0, {"role": "system", "content": instruction})
        else:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": dict(schema), "strict": False},
            }
        return request

    def _classify(self, exc: Exception, attempt: int, *, prompt: bool) -> _Failure:
        """What to do after ``exc`` on attempt number ``attempt`` (0-based)."""
        openai = self._openai
        where = self.base_url or "the OpenAI API"
        can_retry = attempt < self.max_retries
        if isinstance(exc, openai.APITimeoutError):
            error: LLMError = LLMUnavailableError(
                f"the model endpoint {where} did not answer within {self.timeout:g} s"
            )
            return _Failure(error, self._backoff(attempt) if can_retry else None)
        if isinstance(exc, openai.APIConnectionError):
            error = LLMUnavailableError(f"cannot reach the model endpoint {where}: {exc}")
            return _Failure(error, self._backoff(attempt) if can_retry else None)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _error_detail(exc)
            if (
                status in (400, 422)
                and not prompt
                and self.json_mode == "auto"
                and any(word in detail.lower() for word in _REJECTION_WORDS)
            ):
                return _Failure(LLMError(detail), fallback=True)
            message = f"HTTP {status} from the model endpoint {where}: {detail}"
            if status in RETRY_STATUSES:
                error = LLMUnavailableError(message)
                if not can_retry:
                    return _Failure(error)
                told = parse_retry_after(exc.response.headers.get("retry-after"))
                wait = self._backoff(attempt) if told is None else min(told, self.max_wait)
                return _Failure(error, wait)
            if status in (401, 403, 404):
                return _Failure(LLMUnavailableError(message))
            return _Failure(LLMError(message))
        if isinstance(exc, openai.OpenAIError):
            return _Failure(LLMError(f"the model endpoint {where} failed: {exc}"))
        raise exc

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(self.backoff, attempt, self.max_wait)

    def _answer(self, response: Any, schema: Mapping[str, Any]) -> Completion:
        raw_usage = getattr(response, "usage", None)
        usage = Usage(
            int(getattr(raw_usage, "prompt_tokens", 0) or 0),
            int(getattr(raw_usage, "completion_tokens", 0) or 0),
        )
        self._count(usage)
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMResponseError("the model endpoint answered without any choice")
        choice = choices[0]
        content = getattr(choice.message, "content", None)
        if not content:
            refusal = getattr(choice.message, "refusal", None)
            why = f"a refusal: {refusal!r}" if refusal else "no content"
            raise LLMResponseError(f"the model answered with {why}")
        if getattr(choice, "finish_reason", None) == "length":
            try:
                return Completion(parse_json_answer(content, schema), self._model(response), usage)
            except LLMResponseError as exc:
                raise LLMResponseError(
                    f"the model's answer was cut at its token limit: {exc}"
                ) from None
        return Completion(parse_json_answer(content, schema), self._model(response), usage)

    def _model(self, response: Any) -> str:
        model = getattr(response, "model", None)
        return model if isinstance(model, str) and model else self.model

    # -- the two faces ----------------------------------------------------------------------

    def complete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        """Ask the model; return its answer as a JSON object matching ``schema``."""
        client = self._sync_client()
        attempt = 0
        while True:
            prompt = self._fallback
            request = self._request(messages, schema, name, prompt=prompt)
            try:
                response = client.chat.completions.create(**request)
            except Exception as exc:
                failure = self._classify(exc, attempt, prompt=prompt)
                if failure.fallback:
                    self._fallback = True
                    continue
                if failure.wait is None:
                    raise failure.error from exc
                self._count(retry=True)
                _sleep(failure.wait)
                attempt += 1
                continue
            return self._answer(response, schema)

    async def acomplete_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], *, name: str
    ) -> Completion:
        """:meth:`complete_json` as a coroutine (on ``openai.AsyncOpenAI``)."""
        client = self._async_client()
        attempt = 0
        while True:
            prompt = self._fallback
            request = self._request(messages, schema, name, prompt=prompt)
            try:
                response = await client.chat.completions.create(**request)
            except Exception as exc:
                failure = self._classify(exc, attempt, prompt=prompt)
                if failure.fallback:
                    self._fallback = True
                    continue
                if failure.wait is None:
                    raise failure.error from exc
                self._count(retry=True)
                await _asleep(failure.wait)
                attempt += 1
                continue
            return self._answer(response, schema)


def _error_detail(exc: Any) -> str:
    """The endpoint's error message (OpenAI's ``{"error": {"message"}}`` or plain text)."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            parts = [str(inner.get(k)) for k in ("message", "param") if inner.get(k)]
            if parts:
                return " ".join(parts)[:500]
        elif isinstance(inner, str):
            return inner[:500]
    text = str(getattr(exc, "message", "") or exc)
    return text[:500]
