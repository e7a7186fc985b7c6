"""Issue 13 part 2: Phase 1 of trace consolidation, a trace memory (and file) per session."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import engramdb.store.sqlite.store as sqlite_store
from engramdb import Memory, open_store
from engramdb.consolidate import scope_bucket, summarize_sessions
from engramdb.consolidate.traces import find_trace, trace_job_key
from engramdb.llm.base import Message
from engramdb.llm.fake import ScriptedLLM
from engramdb.llm.openai_compat import OpenAICompatibleLLM
from engramdb.sessions import Session
from engramdb.types import us_from_datetime
from tests.fake_openai import FakeOpenAI

NS = "default"
SCOPE = "/home/dev/project-a"
SECRET = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789ABCD"
TRACE = "## Task\nFix the build.\n\n## Outcome\nFixed.\n\n## Learnings\n- run `make test`\n"


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(open_store(tmp_path / "data"), embedder=None)
    yield m
    m.close()


def add(
    mem: Memory,
    monkeypatch: pytest.MonkeyPatch,
    sid: str,
    items: Sequence[dict[str, Any]],
    *,
    hours_ago: float,
    namespace: str = NS,
) -> None:
    """Add items to a session as if ``hours_ago`` hours ago (the store's clock patched)."""
    at = us_from_datetime(datetime.now(UTC) - timedelta(hours=hours_ago))
    with monkeypatch.context() as m:
        m.setattr(sqlite_store, "now_us", lambda: at)
        Session(sid, mem.store, namespace=namespace).add_items(list(items))


def msg(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def answer(summary: str = "fixed the build", trace: str = TRACE) -> dict[str, Any]:
    return {"trace_memory": trace, "summary": summary}


def trace_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.md"))


def prompt_text(messages: Sequence[Message]) -> str:
    return "\n".join(m.content for m in messages)


def test_issue13_phase1_end_to_end_idle_sessions_become_traces(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "traces"
    add(mem, monkeypatch, "s-old", [msg("fix the build"), msg("done", "assistant")], hours_ago=5)
    add(mem, monkeypatch, "s-new", [msg("add a test")], hours_ago=3)
    add(mem, monkeypatch, "s-current", [msg("current work")], hours_ago=4)
    add(mem, monkeypatch, "s-busy", [msg("still going")], hours_ago=0)
    llm = ScriptedLLM([answer("added a test"), answer("fixed the build")])

    run = summarize_sessions(mem, llm, root=root, scope=SCOPE, current_session="s-current")

    assert run.summarized == ["s-new", "s-old"]  # newest first
    assert run.skipped["s-current"] == "current session"
    assert run.skipped["s-busy"] == "not idle yet"
    assert run.failed == {}
    assert run.tokens > 0
    messages, schema_name, schema = llm.calls[0]
    assert messages[0].role == "system" and "trace_memory" in messages[0].content
    assert "add a test" in messages[1].content and "fix the build" not in messages[1].content
    assert schema_name == "trace_memory" and schema["required"] == ["trace_memory", "summary"]
    bucket = root / scope_bucket(NS, SCOPE) / "trace_summaries"
    assert [p.name for p in trace_files(root)] == [
        "s-new_added-a-test.md",
        "s-old_fixed-the-build.md",
    ]
    assert all(p.parent == bucket for p in trace_files(root))
    record = find_trace(mem, "s-old", scope=SCOPE)
    assert record is not None, [(r.tags, r.metadata) for r in mem.list().items]
    assert record.content == TRACE.strip()
    assert "trace" in record.tags and "trace-session:s-old" in record.tags
    assert record.metadata["kind"] == "trace"
    assert record.metadata["scope"] == SCOPE
    assert record.metadata["session_id"] == "s-old"
    assert record.metadata["last_seq"] == 1
    assert record.metadata["summary"] == "fixed the build"
    assert record.metadata["prompt_version"] == "trace_v1"
    assert mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s-old")).status == "done"  # type: ignore[union-attr]

    # running again does nothing: no call, no new file
    again = summarize_sessions(mem, llm, root=root, scope=SCOPE, current_session="s-current")
    assert again.summarized == [] and again.failed == {}
    assert len(llm.calls) == 2

    # a new item in s-old: only it is re-summarized, its file replaced (no orphan)
    add(mem, monkeypatch, "s-old", [msg("also bump the version")], hours_ago=2)
    llm.add(answer("bumped the version"))
    third = summarize_sessions(mem, llm, root=root, scope=SCOPE, current_session="s-current")
    assert third.summarized == ["s-old"]
    assert len(llm.calls) == 3
    assert [p.name for p in trace_files(root)] == [
        "s-new_added-a-test.md",
        "s-old_bumped-the-version.md",
    ]
    updated = find_trace(mem, "s-old", scope=SCOPE)
    assert updated is not None and updated.id == record.id
    assert updated.metadata["last_seq"] == 2
    assert len(mem.history(record.id)) == 1  # the previous version is kept
    assert len(mem.list({"tags": ["trace"]}).items) == 2


def test_issue13_phase1_fenced_and_prose_json_through_the_provider(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    add(mem, monkeypatch, "a", [msg("first")], hours_ago=5)
    add(mem, monkeypatch, "b", [msg("second")], hours_ago=6)
    fake_openai.answer("```json\n" + json.dumps(answer("fenced answer")) + "\n```")
    fake_openai.answer("Here is the trace: " + json.dumps(answer("prose answer")) + " Done.")
    llm = OpenAICompatibleLLM("fake-model", base_url=fake_openai.base_url, api_key="x")

    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)

    assert run.summarized == ["a", "b"], run.failed
    assert [p.name for p in trace_files(tmp_path / "r")] == [
        "a_fenced-answer.md",
        "b_prose-answer.md",
    ]


def test_issue13_phase1_session_without_items_is_skipped(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "empty", [msg("x")], hours_ago=5)
    at = us_from_datetime(datetime.now(UTC) - timedelta(hours=5))
    with monkeypatch.context() as m:
        m.setattr(sqlite_store, "now_us", lambda: at)
        Session("empty", mem.store).clear_session()
    assert [s.session_id for s in mem.store.session_list(NS)] == ["empty"]
    llm = ScriptedLLM([answer()])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)
    assert run.skipped == {"empty": "no items"}
    assert run.summarized == [] and llm.calls == []
    assert trace_files(tmp_path / "r") == []


def test_issue13_phase1_tool_noise_only_is_skipped(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    noise = {"type": "function_call_output", "call_id": "c1", "output": "ok"}
    add(mem, monkeypatch, "noise", [noise], hours_ago=5)
    llm = ScriptedLLM([answer()])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE, tools="drop")
    assert run.skipped == {"noise": "no items"}
    assert llm.calls == []


def test_issue13_phase1_huge_session_truncated_head_and_tail(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    big = "HEAD-MARK " + "x" * (5 * 1024 * 1024) + " TAIL-MARK"
    add(mem, monkeypatch, "big", [{"role": "user", "content": big}], hours_ago=5)
    llm = ScriptedLLM([answer()])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE, byte_budget=20_000)
    assert run.summarized == ["big"]
    sent = llm.calls[0][0][-1].content
    assert len(sent.encode()) < 21_000
    assert "HEAD-MARK" in sent and "TAIL-MARK" in sent
    assert "bytes omitted ...]" in sent and "[... " in sent


def test_issue13_phase1_secret_never_reaches_model_or_trace(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "sec", [msg(f"my key is OPENAI_API_KEY={SECRET}")], hours_ago=5)
    leaked = TRACE + f"- the key is {SECRET}\n"
    llm = ScriptedLLM([answer(f"used key {SECRET}", leaked)])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)
    assert run.summarized == ["sec"]
    assert SECRET not in prompt_text(llm.calls[0][0])
    record = find_trace(mem, "sec", scope=SCOPE)
    assert record is not None
    assert SECRET not in record.content and SECRET not in json.dumps(record.metadata)
    (path,) = trace_files(tmp_path / "r")
    assert SECRET not in path.read_text() and SECRET not in path.name


@pytest.mark.parametrize(
    "bad",
    [
        answer(summary=""),
        answer(trace="   "),
        ValueError("not JSON"),
    ],
    ids=["empty-summary", "empty-trace", "error"],
)
def test_issue13_phase1_bad_answer_fails_job_and_writes_nothing(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bad: Any
) -> None:
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)
    run = summarize_sessions(mem, ScriptedLLM([bad]), root=tmp_path / "r", scope=SCOPE)
    assert list(run.failed) == ["s"]
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s"))
    assert job is not None and job.status == "pending" and job.last_error
    assert job.last_error == run.failed["s"]
    assert find_trace(mem, "s", scope=SCOPE) is None
    assert trace_files(tmp_path / "r") == []


def test_issue13_phase1_invalid_json_from_provider_fails_job(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)
    for _ in range(5):  # the provider may retry a malformed answer
        fake_openai.answer("{not json at all")
    llm = OpenAICompatibleLLM("fake-model", base_url=fake_openai.base_url, api_key="x")
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)
    assert list(run.failed) == ["s"]
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s"))
    assert job is not None and "LLMResponseError" in (job.last_error or "")
    assert find_trace(mem, "s", scope=SCOPE) is None
    assert trace_files(tmp_path / "r") == []


def test_issue13_phase1_db_write_failure_leaves_no_file(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(mem, "remember", boom)
    run = summarize_sessions(mem, ScriptedLLM([answer()]), root=tmp_path / "r", scope=SCOPE)
    assert run.failed == {"s": "RuntimeError: database is gone"}
    assert not (tmp_path / "r").exists() or trace_files(tmp_path / "r") == []
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s"))
    assert job is not None and job.last_error == "RuntimeError: database is gone"


def test_issue13_phase1_file_write_failure_fails_job_and_retries(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a directory should be")
    root = blocker / "root"  # its parent is a file: nothing can be created under it
    run = summarize_sessions(mem, ScriptedLLM([answer()]), root=root, scope=SCOPE)
    assert list(run.failed) == ["s"]
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s"))
    assert job is not None and job.status == "pending"
    assert job.last_error is not None and "Error" in job.last_error
    # once the retry is due, a later run with a writable root finishes the job
    monkeypatch.setattr(
        "engramdb.store.jobs.now_us", lambda: us_from_datetime(datetime.now(UTC)) + 3_600_000_000
    )
    good = tmp_path / "good"
    again = summarize_sessions(mem, ScriptedLLM([answer()]), root=good, scope=SCOPE)
    assert again.summarized == ["s"], (again.skipped, again.failed)
    assert len(trace_files(good)) == 1


def test_issue13_phase1_scope_isolation(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "r"
    add(mem, monkeypatch, "a1", [msg("project A work")], hours_ago=5, namespace="team-a")
    add(mem, monkeypatch, "b1", [msg("project B work")], hours_ago=5, namespace="team-b")

    def echo(messages: Sequence[Message]) -> dict[str, Any]:
        text = prompt_text(messages)
        which = "A" if "project A" in text else "B"
        assert ("project A" in text) != ("project B" in text)
        return answer(f"work on {which}", TRACE + f"- project {which}\n")

    llm = ScriptedLLM([echo, echo])
    ra = summarize_sessions(mem, llm, root=root, scope="/p/a", namespace="team-a")
    rb = summarize_sessions(mem, llm, root=root, scope="/p/b", namespace="team-b")
    assert ra.summarized == ["a1"] and rb.summarized == ["b1"]
    bucket_a = root / scope_bucket("team-a", "/p/a") / "trace_summaries"
    bucket_b = root / scope_bucket("team-b", "/p/b") / "trace_summaries"
    assert bucket_a != bucket_b
    assert [p.name for p in bucket_a.iterdir()] == ["a1_work-on-a.md"]
    assert [p.name for p in bucket_b.iterdir()] == ["b1_work-on-b.md"]
    assert "project B" not in (bucket_a / "a1_work-on-a.md").read_text()
    assert find_trace(mem, "b1", scope="/p/b", namespace="team-a") is None
    # the same namespace under another scope has its own bucket and trace
    assert scope_bucket("team-a", "/p/a") != scope_bucket("team-a", "/p/b")
    assert find_trace(mem, "a1", scope="/p/b", namespace="team-a") is None


def test_issue13_phase1_normalise_and_size_limits(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s/odd id", [msg("hello")], hours_ago=5)
    long_trace = "just prose without sections\n" + "\n".join(f"line {i} " * 20 for i in range(400))
    llm = ScriptedLLM([answer("word " * 300, long_trace)])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)
    assert run.summarized == ["s/odd id"], run.failed
    record = find_trace(mem, "s/odd id", scope=SCOPE)
    assert record is not None
    assert record.content.startswith("## Task\n")
    assert "## Learnings\njust prose without sections" in record.content
    assert len(record.content.encode()) <= 16_384
    assert record.content.endswith("[... cut to fit the size limit ...]")
    assert len(record.metadata["summary"]) <= 500
    (path,) = trace_files(tmp_path / "r")
    assert path.name.startswith("s-odd-id-") and "/" not in path.name[len("s-odd-id") :]


def test_issue13_phase1_disk_full_on_resummary_then_retry_leaves_no_orphan(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "r"
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)
    assert summarize_sessions(
        mem, ScriptedLLM([answer("first")]), root=root, scope=SCOPE
    ).summarized
    add(mem, monkeypatch, "s", [msg("more")], hours_ago=4)

    def full(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("engramdb.consolidate.traces._write_atomic", full)
        run = summarize_sessions(mem, ScriptedLLM([answer("second")]), root=root, scope=SCOPE)
    assert run.failed == {"s": "OSError: [Errno 28] No space left on device"}
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s"))
    assert job is not None and job.status == "pending" and "No space" in (job.last_error or "")
    assert [p.name for p in trace_files(root)] == ["s_first.md"]
    # the retry (once due) writes the new file and removes the old one, though the database
    # already holds the new trace
    monkeypatch.setattr(
        "engramdb.store.jobs.now_us", lambda: us_from_datetime(datetime.now(UTC)) + 3_600_000_000
    )
    again = summarize_sessions(mem, ScriptedLLM([answer("third")]), root=root, scope=SCOPE)
    assert again.summarized == ["s"], (again.skipped, again.failed)
    assert [p.name for p in trace_files(root)] == ["s_third.md"]


def test_issue13_phase1_lease_lost_during_llm_call_writes_nothing(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s", [msg("hello")], hours_ago=5)
    monkeypatch.setattr(mem.store, "job_heartbeat", lambda *a, **k: False)
    run = summarize_sessions(mem, ScriptedLLM([answer()]), root=tmp_path / "r", scope=SCOPE)
    assert run.skipped == {"s": "lease lost"} and run.summarized == []
    assert find_trace(mem, "s", scope=SCOPE) is None
    assert trace_files(tmp_path / "r") == []


def test_issue13_phase1_identical_trace_text_of_two_sessions_stays_two_traces(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s1", [msg("one")], hours_ago=5)
    add(mem, monkeypatch, "s2", [msg("two")], hours_ago=6)
    llm = ScriptedLLM([answer(), answer()])
    run = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE)
    assert run.summarized == ["s1", "s2"]
    one, two = find_trace(mem, "s1", scope=SCOPE), find_trace(mem, "s2", scope=SCOPE)
    assert one is not None and two is not None and one.id != two.id
    assert "trace-session:s2" not in one.tags


def test_issue13_phase1_at_most_max_sessions_newest_first(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for i, sid in enumerate(["s-a", "s-b", "s-c"]):
        add(mem, monkeypatch, sid, [msg(sid)], hours_ago=5 + i)  # s-a is the newest
    llm = ScriptedLLM([answer("one"), answer("two"), answer("three")])
    first = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE, max_sessions=2)
    assert first.summarized == ["s-a", "s-b"]
    second = summarize_sessions(mem, llm, root=tmp_path / "r", scope=SCOPE, max_sessions=2)
    assert second.summarized == ["s-c"]
    assert len(llm.calls) == 3
