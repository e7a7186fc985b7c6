"""Issue 13 parts 4-6 on the server: ``/v1`` consolidation routes (run with the server's
model, status and spend, scope settings, MEMORY.md show/history/diff/reset, traces, the
routing summary) and ``/v1/context`` with a scope's MEMORY.md first; each namespace sees only
its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engramdb.store import Store
from tests.fake_openai import FakeOpenAI
from tests.server.conftest import Api
from tests.server.test_manager_api import _api

SCOPE = "/home/dev/project-a"
TRACE = "## Task\nFix the build.\n\n## Outcome\nFixed.\n\n## Learnings\n- run `make test`\n"
MD = "# Project memory\n\n## Build\n- run `make test` before committing\n- use uv for the venv"


@pytest.fixture
def llm_api(store: Store, fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[Api]:
    api = _api(store, fake_openai, memory_root=str(tmp_path / "memories"))
    yield api
    api.client.close()


def _session(call: Any, sid: str, text: str) -> None:
    r = call(
        "POST", f"/v1/sessions/{sid}/items", json={"items": [{"role": "user", "content": text}]}
    )
    assert r.status_code in (200, 201), r.text


def _consolidate(call: Any, **body: Any) -> Any:
    return call("POST", "/v1/consolidate", json={"scope": SCOPE, "idle_seconds": 0, **body})


def test_issue13_api_consolidate_then_read_everything_back(
    llm_api: Api, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    call = llm_api.as_key(llm_api.key())
    _session(call, "s1", "the build fails until make test runs")
    # dry run: nothing sent, an estimate
    dry = _consolidate(call, dry_run=True)
    assert dry.status_code == 200, dry.text
    assert list(dry.json()["planned"]) == ["s1"] and dry.json()["estimated_input_tokens"] > 0
    assert fake_openai.completions == []

    fake_openai.answer({"trace_memory": TRACE, "summary": "fixed the build"}, usage=(120, 30))
    fake_openai.answer({"memory_md": MD, "skills": []}, usage=(200, 40))
    r = _consolidate(call)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["summarized"] == ["s1"] and out["failed"] == {} and out["stopped"] is None
    assert out["memory_md"]["status"] == "consolidated" and out["memory_md"]["version"] == 1
    assert out["spent"] == {
        "sessions": 1,
        "llm_calls": 2,
        "input_tokens": 320,
        "output_tokens": 70,
    }

    md = call("GET", "/v1/memory-md", params={"scope": SCOPE}).json()
    assert md["content"] == MD and md["version"] == 1 and "engramdb" not in md["content"]
    traces = call("GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"]
    assert [(t["session_id"], t["summary"]) for t in traces] == [("s1", "fixed the build")]
    one = call("GET", "/v1/traces/s1", params={"scope": SCOPE}).json()
    assert one["content"] == TRACE.strip()
    summary = call("GET", "/v1/memory-summary", params={"scope": SCOPE}).json()["text"]
    assert "fixed the build" in summary and "s1" in summary
    status = call("GET", "/v1/consolidate/status").json()
    [scope] = status["scopes"]
    assert scope["scope"] == SCOPE and scope["traces"] == 1 and scope["memory_md_version"] == 1
    assert scope["spent_today"]["llm_calls"] == 2 and scope["spent_total"]["input_tokens"] == 320
    assert scope["open_jobs"] == [] and status["spent_today"]["sessions"] == 1
    assert status["caps"]["run"]["max_llm_calls"] == 40

    # the scope's files exist on the server's disk
    files = sorted(p.name for p in (tmp_path / "memories").rglob("*.md"))
    assert files == ["MEMORY.md", "memory_summary.md", "s1_fixed-the-build.md"]

    # nothing new: no model call
    again = _consolidate(call).json()
    assert again["summarized"] == [] and again["memory_md"]["status"] == "unchanged"
    assert len(fake_openai.completions) == 2

    # context puts MEMORY.md first
    block = call("POST", "/v1/context", json={"query": "build", "scope": SCOPE}).json()
    assert "- run `make test` before committing" in block["text"] and md["id"] in block["ids"]
    assert "MEMORY.md" in block["text"].splitlines()[0]

    # a second session changes MEMORY.md: history and diff
    _session(call, "s2", "the lint step is make lint")
    fake_openai.answer({"trace_memory": TRACE, "summary": "added lint"}, usage=(50, 10))
    fake_openai.answer({"memory_md": MD + "\n- lint with `make lint`", "skills": []})
    assert _consolidate(call).json()["memory_md"]["version"] == 2
    history = call("GET", "/v1/memory-md/history", params={"scope": SCOPE}).json()["versions"]
    assert [v["version"] for v in history] == [2, 1]
    diff = call("GET", "/v1/memory-md/diff", params={"scope": SCOPE}).json()["diff"]
    assert "+- lint with `make lint`" in diff

    # delete one trace; reset the scope
    gone = call("DELETE", "/v1/traces/s1", params={"scope": SCOPE}).json()
    assert gone["deleted"] is True
    assert call("GET", "/v1/traces/s1", params={"scope": SCOPE}).status_code == 404
    assert call("POST", "/v1/memory-md/reset", json={"scope": SCOPE}).json()["reset"] is True
    assert call("GET", "/v1/memory-md", params={"scope": SCOPE}).status_code == 404
    assert not list((tmp_path / "memories").rglob("MEMORY.md"))


def test_issue13_api_another_namespace_sees_nothing(llm_api: Api, fake_openai: FakeOpenAI) -> None:
    mine, theirs = llm_api.as_key(llm_api.key("a")), llm_api.as_key(llm_api.key("b"))
    _session(mine, "s1", "secret project detail")
    fake_openai.answer({"trace_memory": TRACE, "summary": "secret work"})
    fake_openai.answer({"memory_md": MD, "skills": []})
    assert _consolidate(mine).json()["memory_md"]["status"] == "consolidated"
    assert theirs("GET", "/v1/memory-md", params={"scope": SCOPE}).status_code == 404
    assert theirs("GET", "/v1/traces", params={"scope": SCOPE}).json()["traces"] == []
    assert theirs("GET", "/v1/consolidate/status").json()["scopes"] == []
    assert theirs("GET", "/v1/consolidate/status").json()["spent_today"]["llm_calls"] == 0
    assert "secret" not in theirs("GET", "/v1/memory-summary", params={"scope": SCOPE}).text
    # their run of the same scope finds no session of theirs: no model call
    out = _consolidate(theirs).json()
    assert out["summarized"] == [] and len(fake_openai.completions) == 2


def test_issue13_api_opt_out_and_session_prefix(llm_api: Api, fake_openai: FakeOpenAI) -> None:
    call = llm_api.as_key(llm_api.key())
    _session(call, "a:1", "project a")
    _session(call, "b:1", "project b")
    r = call("PUT", "/v1/consolidate/scopes", json={"scope": SCOPE, "enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    out = _consolidate(call).json()
    assert out["stopped"] == "scope is opted out" and fake_openai.completions == []
    r = call(
        "PUT",
        "/v1/consolidate/scopes",
        json={"scope": SCOPE, "enabled": True, "session_prefix": "a:"},
    )
    assert r.json() == {**r.json(), "enabled": True, "session_prefix": "a:"}
    listed = call("GET", "/v1/consolidate/scopes").json()["scopes"]
    assert [(s["scope"], s["session_prefix"]) for s in listed] == [(SCOPE, "a:")]
    fake_openai.answer({"trace_memory": TRACE, "summary": "a work"})
    fake_openai.answer({"memory_md": MD, "skills": []})
    assert _consolidate(call).json()["summarized"] == ["a:1"]
    assert "project b" not in "".join(r.text for r in fake_openai.completions)


def test_issue13_api_caps_stop_a_run_and_status_shows_it(
    store: Store, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    api = _api(
        store,
        fake_openai,
        memory_root=str(tmp_path / "m"),
        consolidate_run_max_llm_calls=1,
    )
    try:
        call = api.as_key(api.key())
        _session(call, "s1", "one")
        _session(call, "s2", "two")
        fake_openai.answer({"trace_memory": TRACE, "summary": "one"})
        out = _consolidate(call).json()
        assert len(out["summarized"]) == 1
        assert "max_llm_calls=1" in out["stopped"] and len(fake_openai.completions) == 1
        status = call("GET", "/v1/consolidate/status", params={"scope": SCOPE}).json()
        assert status["caps"]["run"]["max_llm_calls"] == 1
        [scope] = status["scopes"]
        # the session that did not fit waits as a pending job with no error, not a failure
        assert all(j["status"] == "pending" and j["last_error"] is None for j in scope["open_jobs"])
    finally:
        api.client.close()


def test_issue13_api_without_a_model_is_409_and_bad_scopes_are_422(
    store: Store, tmp_path: Path
) -> None:
    api = _api(store, None, memory_root=str(tmp_path / "m"))
    try:
        call = api.as_key(api.key())
        r = _consolidate(call)
        assert r.status_code == 409 and r.json()["error"]["code"] == "llm_not_configured"
        assert _consolidate(call, dry_run=True).status_code == 200  # a dry run needs no model
        for bad in ["", " ", "a\nb", "x" * 513]:
            r = call("POST", "/v1/consolidate", json={"scope": bad})
            assert r.status_code == 422, (bad, r.text)
            r = call("GET", "/v1/memory-md", params={"scope": bad})
            assert r.status_code in (400, 422), (bad, r.text)
        assert call("GET", "/v1/memory-md/diff", params={"scope": SCOPE}).status_code == 404
        assert call("DELETE", "/v1/traces/nope", params={"scope": SCOPE}).json()["deleted"] is False
    finally:
        api.client.close()


def test_issue13_api_consolidation_writes_count_toward_the_key_quota(
    llm_api: Api, fake_openai: FakeOpenAI
) -> None:
    call = llm_api.as_key(llm_api.key("small", max_memories=1))
    _session(call, "s1", "one")
    _session(call, "s2", "two")
    fake_openai.answer({"trace_memory": TRACE, "summary": "two"})
    fake_openai.answer({"trace_memory": TRACE + "\n- more", "summary": "one"})
    out = _consolidate(call).json()
    assert len(out["summarized"]) == 1
    [error] = out["failed"].values()
    assert error.startswith("QuotaExceededError")  # kept on the job, retried later
    assert call("GET", "/v1/stats").json()["memories"] == 1
