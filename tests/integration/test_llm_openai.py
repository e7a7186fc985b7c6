"""The OpenAI-compatible LLM end to end against the fake server on loopback (real HTTP)."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from engramdb.errors import InvalidInputError, LLMError, LLMResponseError, LLMUnavailableError
from engramdb.llm import LLM, Message, OpenAICompatibleLLM, ScriptedLLM, openai_compat, resolve_llm
from tests.fake_openai import FakeOpenAI, Reply

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "kind": {"enum": ["fact", "preference"]},
                },
                "required": ["text", "kind"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["facts"],
    "additionalProperties": False,
}
GOOD = {"facts": [{"text": "Ana lives in Lisbon", "kind": "fact"}]}
MESSAGES = [
    Message("system", "Extract facts."),
    Message("user", "I live in Lisbon."),
]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off waits are recorded instead of slept (no timing in the tests)."""
    recorded: list[float] = []

    async def asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(openai_compat, "_sleep", recorded.append)
    monkeypatch.setattr(openai_compat, "_asleep", asleep)
    return recorded


def make(fake: FakeOpenAI, **kwargs: Any) -> OpenAICompatibleLLM:
    kwargs.setdefault("backoff", 0.001)
    kwargs.setdefault("max_wait", 5.0)
    kwargs.setdefault("timeout", 5.0)
    return OpenAICompatibleLLM("fake-model", base_url=fake.base_url, api_key="k-test", **kwargs)


def test_issue11_llm_json_schema_request_and_answer(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer(GOOD, usage=(120, 30))
    llm = make(fake_openai)
    assert isinstance(llm, LLM)
    done = llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert done.data == GOOD
    assert done.model == "fake-model"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (120, 30)
    (sent,) = fake_openai.completions
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "facts", "schema": SCHEMA, "strict": False},
    }
    assert sent.body["messages"] == [
        {"role": "system", "content": "Extract facts."},
        {"role": "user", "content": "I live in Lisbon."},
    ]
    assert sent.body["temperature"] == 0.0
    assert sent.headers["authorization"] == "Bearer k-test"
    assert llm.calls == 1 and llm.tokens_used == 150 and llm.retries == 0


def test_issue11_llm_falls_back_to_prompt_when_json_schema_rejected(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.reject_json_schema = True
    fake_openai.answer("Here you go:\n```json\n" + '{"facts": []}' + "\n```\nAnything else?")
    fake_openai.answer({"facts": []})
    llm = make(fake_openai)
    assert llm.complete_json(MESSAGES, SCHEMA, name="facts").data == {"facts": []}
    rejected, fallback = fake_openai.completions
    assert rejected.body["response_format"]["type"] == "json_schema"
    assert "response_format" not in fallback.body
    system = fallback.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Extract facts.")
    assert "one JSON object only" in system["content"]
    assert '"additionalProperties":false' in system["content"]  # the schema itself
    assert llm.uses_prompt_fallback and llm.retries == 0
    # remembered: the next call goes straight to the prompt form
    assert llm.complete_json(MESSAGES, SCHEMA, name="facts").data == {"facts": []}
    assert len(fake_openai.completions) == 3
    assert "response_format" not in fake_openai.completions[-1].body


def test_issue11_llm_prompt_fallback_adds_a_system_message(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer({"facts": []})
    llm = make(fake_openai, json_mode="prompt")
    llm.complete_json([Message("user", "hi")], SCHEMA, name="facts")
    messages = fake_openai.completions[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "JSON Schema" in messages[0]["content"]


def test_issue11_llm_json_schema_mode_does_not_fall_back(fake_openai: FakeOpenAI) -> None:
    fake_openai.reject_json_schema = True
    llm = make(fake_openai, json_mode="json_schema")
    with pytest.raises(LLMError, match=r"HTTP 400.*json_schema"):
        llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert len(fake_openai.completions) == 1


@pytest.mark.parametrize(
    "answer",
    [
        "```json\n" + '{"facts": [{"text": "Ana lives in Lisbon", "kind": "fact"}]}' + "\n```",
        'Sure! {"facts": [{"text": "Ana lives in Lisbon", "kind": "fact"}]} Hope it helps.',
        '```\n{"facts": [{"text": "Ana lives in Lisbon", "kind": "fact"}]}\n```',
    ],
)
def test_issue11_llm_parses_fenced_and_prose_answers(fake_openai: FakeOpenAI, answer: str) -> None:
    fake_openai.answer(answer)
    assert make(fake_openai).complete_json(MESSAGES, SCHEMA, name="facts").data == GOOD


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"facts": [', "no JSON object"),
        ("I cannot help with that.", "no JSON object"),
        ('[{"text": "x", "kind": "fact"}]', "an array, not a JSON object"),
        ('{"facts": [{"text": "x", "kind": "opinion"}]}', r"\$\.facts\[0\]\.kind"),
        ('{"facts": [], "extra": 1}', "Additional properties"),
        ('{"fact": []}', "'facts' is a required property"),
        ("", "no content"),
    ],
)
def test_issue11_llm_bad_answers_are_response_errors(
    fake_openai: FakeOpenAI, answer: str, reason: str
) -> None:
    fake_openai.answer(answer, usage=(7, 3))
    llm = make(fake_openai)
    with pytest.raises(LLMResponseError, match=reason):
        llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert len(fake_openai.completions) == 1  # not retried: the caller decides
    assert llm.calls == 1 and llm.tokens_used == 10  # the tokens were spent all the same


def test_issue11_llm_truncated_answer_says_so(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer('{"facts": [{"text": "Ana', finish_reason="length")
    with pytest.raises(LLMResponseError, match="cut at its token limit"):
        make(fake_openai).complete_json(MESSAGES, SCHEMA, name="facts")


def test_issue11_llm_retries_429_after_retry_after(
    fake_openai: FakeOpenAI, waits: list[float]
) -> None:
    fake_openai.error(429, retry_after="2")
    fake_openai.error(503, retry_after="0.5")
    fake_openai.answer(GOOD)
    llm = make(fake_openai)
    assert llm.complete_json(MESSAGES, SCHEMA, name="facts").data == GOOD
    assert waits == [2.0, 0.5]
    assert llm.retries == 2 and llm.calls == 1
    assert len(fake_openai.completions) == 3


def test_issue11_llm_retry_after_http_date_is_capped_by_max_wait(
    fake_openai: FakeOpenAI, waits: list[float]
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    fake_openai.error(429, retry_after=later)
    fake_openai.error(429, retry_after="600")
    fake_openai.answer(GOOD)
    llm = make(fake_openai, max_wait=3.0)
    llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert waits == [3.0, 3.0]


def test_issue11_llm_backoff_grows_and_exhausting_is_unavailable(
    fake_openai: FakeOpenAI, waits: list[float]
) -> None:
    for _ in range(4):
        fake_openai.error(500, message="overloaded")
    llm = make(fake_openai, max_retries=3, backoff=1.0, max_wait=100.0)
    with pytest.raises(LLMUnavailableError, match=r"HTTP 500.*overloaded"):
        llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert len(fake_openai.completions) == 4 and fake_openai.pending == 0
    assert len(waits) == 3 and llm.retries == 3 and llm.calls == 0
    for attempt, wait in enumerate(waits):  # exponential, half of it jitter
        assert 2**attempt / 2 <= wait <= 2**attempt


def test_issue11_llm_timeout_is_unavailable(fake_openai: FakeOpenAI, waits: list[float]) -> None:
    fake_openai.answer(GOOD, delay=1.0)
    fake_openai.answer(GOOD, delay=1.0)
    llm = make(fake_openai, timeout=0.2, max_retries=1)
    with pytest.raises(LLMUnavailableError, match=r"did not answer within 0\.2 s"):
        llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert len(waits) == 1


def test_issue11_llm_connection_refused_is_unavailable(waits: list[float]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAICompatibleLLM(
        "m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.001
    )
    with pytest.raises(LLMUnavailableError, match="cannot reach"):
        llm.complete_json(MESSAGES, SCHEMA, name="facts")
    assert len(waits) == 2 and llm.retries == 2


def test_issue11_llm_dropped_connection_is_retried(
    fake_openai: FakeOpenAI, waits: list[float]
) -> None:
    fake_openai.reply(Reply(disconnect=True))
    fake_openai.answer(GOOD)
    llm = make(fake_openai)
    assert llm.complete_json(MESSAGES, SCHEMA, name="facts").data == GOOD
    assert len(waits) == 1 and llm.retries == 1 and len(fake_openai.completions) == 2


@pytest.mark.parametrize("status", [401, 404])
def test_issue11_llm_auth_and_unknown_model_fail_at_once(
    fake_openai: FakeOpenAI, waits: list[float], status: int
) -> None:
    fake_openai.error(status, message="nope")
    with pytest.raises(LLMUnavailableError, match=f"HTTP {status}"):
        make(fake_openai).complete_json(MESSAGES, SCHEMA, name="facts")
    assert waits == []


def test_issue11_llm_other_4xx_is_an_llm_error_not_retried(
    fake_openai: FakeOpenAI, waits: list[float]
) -> None:
    fake_openai.error(400, message="context length exceeded")
    with pytest.raises(LLMError, match="context length exceeded") as caught:
        make(fake_openai).complete_json(MESSAGES, SCHEMA, name="facts")
    assert not isinstance(caught.value, (LLMUnavailableError, LLMResponseError))
    assert waits == [] and len(fake_openai.completions) == 1


def test_issue11_llm_usage_totals_are_thread_safe(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = lambda body: Reply('{"facts": []}', usage=(3, 2))
    llm = make(fake_openai)

    def worker() -> None:
        for _ in range(5):
            llm.complete_json(MESSAGES, SCHEMA, name="facts")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert llm.calls == 20 and llm.prompt_tokens == 60 and llm.completion_tokens == 40
    assert llm.tokens_used == 100


def test_issue11_llm_never_sends_a_secret(fake_openai: FakeOpenAI) -> None:
    fake_openai.answer({"facts": []})
    secret = "sk-proj-4f9aZ8c2Lq7XbT1mN3vR6pW0yK5sD8gH"
    llm = make(fake_openai)
    llm.complete_json(
        [Message("system", "Extract."), Message("user", f"my key is {secret}, keep it")],
        SCHEMA,
        name="facts",
    )
    sent = fake_openai.completions[0]
    assert secret not in sent.text
    assert "my key is [REDACTED:openai_key], keep it" in sent.text


@pytest.mark.anyio
async def test_issue11_llm_async_variant(fake_openai: FakeOpenAI, waits: list[float]) -> None:
    fake_openai.reject_json_schema = True
    fake_openai.error(429, retry_after="1")
    fake_openai.answer("```json\n" + '{"facts": []}' + "\n```", usage=(4, 1))
    async with make(fake_openai) as llm:
        done = await llm.acomplete_json(MESSAGES, SCHEMA, name="facts")
        assert done.data == {"facts": []}
        assert waits == [1.0] and llm.uses_prompt_fallback and llm.tokens_used == 5
        fake_openai.answer('{"facts": [1]}')
        with pytest.raises(LLMResponseError, match=r"\$\.facts\[0\]"):
            await llm.acomplete_json(MESSAGES, SCHEMA, name="facts")


def test_issue11_llm_async_calls_from_fresh_event_loops(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = lambda body: Reply('{"facts": []}', usage=(1, 1))
    llm = make(fake_openai)
    for _ in range(3):  # as a sync wrapper running asyncio.run per call would
        done = asyncio.run(llm.acomplete_json(MESSAGES, SCHEMA, name="facts"))
        assert done.data == {"facts": []}
    assert llm.calls == 3


def test_issue11_llm_client_of_a_closed_loop_is_not_closed_on_the_next(
    fake_openai: FakeOpenAI,
) -> None:
    """The client a finished loop leaves behind does not close itself on the next loop (its
    connections belong to the closed one: that close fails there, in a task of the caller's
    loop, and an async test runner reports it as the caller's error)."""
    fake_openai.default = lambda body: Reply('{"facts": []}', usage=(1, 1))
    llm = make(fake_openai)
    gc.collect()  # (what earlier tests left goes now, while no loop runs)
    asyncio.run(llm.acomplete_json(MESSAGES, SCHEMA, name="facts"))  # (a connection, kept)
    reported: list[dict[str, Any]] = []

    async def next_loop() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        await llm.acomplete_json(MESSAGES, SCHEMA, name="facts")  # a client for this loop
        gc.collect()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return await asyncio.gather(*others, return_exceptions=True)

    outcomes = asyncio.run(next_loop())
    assert [o for o in outcomes if isinstance(o, BaseException)] == [] and reported == []
    assert llm.calls == 2


def test_issue11_llm_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-env")
    monkeypatch.setenv("ENGRAMDB_LLM_MODEL", "llama3.2")
    llm = OpenAICompatibleLLM()
    assert (llm.model, llm.base_url) == ("llama3.2", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", "http://127.0.0.1:2/v1")
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "from-engramdb-env")
    llm = OpenAICompatibleLLM("qwen2.5")
    assert (llm.model, llm.base_url) == ("qwen2.5", "http://127.0.0.1:2/v1")
    assert llm._api_key == "from-engramdb-env"
    monkeypatch.delenv("ENGRAMDB_LLM_MODEL")
    with pytest.raises(InvalidInputError, match="ENGRAMDB_LLM_MODEL"):
        OpenAICompatibleLLM()
    with pytest.raises(InvalidInputError, match="json_mode"):
        OpenAICompatibleLLM("m", json_mode="tools")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="timeout"):
        OpenAICompatibleLLM("m", timeout=0)


def test_issue11_llm_resolve_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert resolve_llm(None) is None
    scripted = ScriptedLLM()
    assert resolve_llm(scripted) is scripted
    llm = resolve_llm("openai:llama3.2")
    assert isinstance(llm, OpenAICompatibleLLM) and llm.model == "llama3.2"
    with pytest.raises(InvalidInputError, match="for tests"):
        resolve_llm("scripted")
    with pytest.raises(InvalidInputError, match="unknown LLM"):
        resolve_llm("anthropic:claude")


def test_issue11_llm_missing_openai_package_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openai", None)  # import openai → ImportError
    with pytest.raises(InvalidInputError, match=r"pip install 'engramdb\[openai\]'"):
        OpenAICompatibleLLM("m")


def test_issue11_llm_fake_server_lists_models(fake_openai: FakeOpenAI) -> None:
    import httpx

    models = httpx.get(f"{fake_openai.base_url}/models").json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]
