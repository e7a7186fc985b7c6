"""Issue 13 part 3: Phase 2 of trace consolidation, one MEMORY.md per scope."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import engramdb.store.sqlite.store as sqlite_store
from engramdb import Memory, open_store
from engramdb.consolidate import (
    consolidate_scope,
    delete_trace,
    list_traces,
    memory_md_diff,
    memory_md_history,
    memory_summary,
    read_memory_md,
    reset_memory_md,
    scope_bucket,
    scope_paths,
    summarize_sessions,
)
from engramdb.consolidate.scope import (
    fit_lines,
    merge_near_duplicates,
    normalize_line,
    strip_marker,
)
from engramdb.consolidate.traces import find_trace, safe_session_id
from engramdb.errors import (
    BudgetExceededError,
    LLMResponseError,
    LLMUnavailableError,
    NotFoundError,
)
from engramdb.llm.base import Message
from engramdb.llm.fake import ScriptedLLM
from engramdb.llm.openai_compat import OpenAICompatibleLLM
from engramdb.sessions import Session
from engramdb.types import MemoryRecord, us_from_datetime
from tests.conftest import Backend
from tests.fake_openai import FakeOpenAI, Reply

NS = "default"
SCOPE = "/home/dev/project-a"
OTHER = "/home/dev/project-b"
MD_V1 = "# Project memory\n\n## Build\n- run `make test` before committing\n- use uv for the venv"
MD_V2 = MD_V1 + "\n- the lint step is `make lint`"


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(open_store(tmp_path / "data"), embedder=None)
    yield m
    m.close()


def trace_text(*learnings: str, task: str = "Fix the build.") -> str:
    bullets = "\n".join(f"- {line}" for line in learnings)
    return f"## Task\n{task}\n\n## Outcome\nDone.\n\n## Learnings\n{bullets}"


def make_trace(
    mem: Memory,
    root: Path,
    sid: str,
    *learnings: str,
    scope: str = SCOPE,
    namespace: str = NS,
    summary: str | None = None,
) -> MemoryRecord:
    """A trace memory shaped as phase 1 stores it, with its file."""
    summary = summary or f"work of {sid}"
    name = f"{safe_session_id(sid)}_work.md"
    content = trace_text(*learnings, task=f"Task of {sid} in {scope}.")
    record = mem.remember(
        content,
        namespace=namespace,
        session_id=sid,
        tags=["trace", f"trace-session:{sid}"],
        metadata={
            "kind": "trace",
            "scope": scope,
            "session_id": sid,
            "summary": summary,
            "file": name,
            "prompt_version": "trace_v1",
        },
    )
    path = scope_paths(root, namespace, scope).trace_summaries / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content + "\n")
    time.sleep(0.002)  # distinct updated_at: newest first is well defined
    return record


def md(text: str = MD_V1, skills: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    return {"memory_md": text, "skills": list(skills)}


def prompt_of(llm: ScriptedLLM, n: int = 0) -> str:
    return "\n".join(m.content for m in llm.calls[n][0])


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def future_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jump the jobs' clock an hour ahead, so a failed job's retry is due."""
    later = us_from_datetime(datetime.now(UTC)) + 3_600_000_000
    monkeypatch.setattr("engramdb.store.jobs.now_us", lambda: later)


# -- end to end ----------------------------------------------------------------------------


def add_session(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, sid: str, text: str, *, hours_ago: float
) -> None:
    at = us_from_datetime(datetime.now(UTC) - timedelta(hours=hours_ago))
    with monkeypatch.context() as m:
        m.setattr(sqlite_store, "now_us", lambda: at)
        Session(sid, mem.store).add_items([{"role": "user", "content": text}])


def test_issue13_phase2_end_to_end_phase1_then_phase2(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "mem"
    add_session(mem, monkeypatch, "s-old", "fix the build", hours_ago=5)
    add_session(mem, monkeypatch, "s-new", "add a lint step", hours_ago=3)
    phase1 = ScriptedLLM(
        [
            {"trace_memory": trace_text("the lint step is `make lint`"), "summary": "added lint"},
            {"trace_memory": trace_text("run `make test` first"), "summary": "fixed the build"},
        ]
    )
    assert summarize_sessions(mem, phase1, root=root, scope=SCOPE).summarized == [
        "s-new",
        "s-old",
    ]
    llm = ScriptedLLM([md(MD_V1, [{"name": "Release Steps", "content": "1. tag\n2. push"}])])

    run = consolidate_scope(mem, llm, root=root, scope=SCOPE)

    assert run.status == "consolidated", run.error
    assert run.traces == ["s-new", "s-old"] and run.new_traces == ["s-new", "s-old"]
    assert run.llm_calls == 1 and run.tokens > 0
    messages, name, schema = llm.calls[0]
    assert name == "memory_md" and schema["properties"]["memory_md"]["type"] == "string"
    assert messages[0].role == "system" and "at most 199 lines" in messages[0].content
    user = messages[1].content
    assert "## Previous MEMORY.md\n\n(none)" in user
    assert "the lint step is `make lint`" in user and "run `make test` first" in user
    assert user.index("Trace `s-new`") < user.index("Trace `s-old`")  # newest first
    bucket = scope_bucket(NS, SCOPE)
    assert tree(root) == [
        f"{bucket}/MEMORY.md",
        f"{bucket}/memory_summary.md",
        f"{bucket}/skills/release-steps/SKILL.md",
        f"{bucket}/trace_summaries/s-new_added-lint.md",
        f"{bucket}/trace_summaries/s-old_fixed-the-build.md",
    ]
    paths = scope_paths(root, NS, SCOPE)
    text = paths.memory_md.read_text()
    assert strip_marker(text.rstrip("\n")) == MD_V1
    assert text.endswith(f"<!-- engramdb memory_md scope={bucket} -->\n")
    assert paths.memory_summary.read_text() == (
        "# Memory Summary\n\nMap of concise summaries to trace IDs (latest first):\n\n"
        "- added lint (trace: `s-new`, file: trace_summaries/s-new_added-lint.md)\n"
        "- fixed the build (trace: `s-old`, file: trace_summaries/s-old_fixed-the-build.md)\n"
    )
    assert paths.skill("release-steps").read_text().startswith("1. tag\n2. push\n")
    record = read_memory_md(mem, SCOPE)
    assert record is not None and record.id == run.memory_md_id and record.version == 1
    assert record.content == text.rstrip("\n")
    assert record.metadata["kind"] == "memory_md" and record.metadata["scope"] == SCOPE
    assert record.metadata["traces"] == ["s-new", "s-old"]
    assert record.metadata["prompt_version"] == "memory_md_v1"
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "done"
    assert job.input_watermark == record.metadata["watermark"] == run.watermark

    # no new session: nothing runs, no LLM call
    again = consolidate_scope(mem, llm, root=root, scope=SCOPE)
    assert again.status == "unchanged" and again.llm_calls == 0 and len(llm.calls) == 1

    # a new session: only its trace goes to the model, with the previous MEMORY.md
    add_session(mem, monkeypatch, "s-3", "document the release", hours_ago=2)
    phase1.add({"trace_memory": trace_text("tag before pushing"), "summary": "release docs"})
    assert summarize_sessions(mem, phase1, root=root, scope=SCOPE).summarized == ["s-3"]
    llm.add(md(MD_V2))
    third = consolidate_scope(mem, llm, root=root, scope=SCOPE)
    assert third.status == "consolidated" and third.new_traces == ["s-3"]
    user = prompt_of(llm, 1)
    assert "Trace `s-3`" in user and "Trace `s-old`" not in user
    assert "## Previous MEMORY.md\n\n" + MD_V1 in user
    assert "release-steps" in user  # existing skills are named
    assert third.memory_md_id == run.memory_md_id and third.memory_md_version == 2
    assert strip_marker(paths.memory_md.read_text().rstrip("\n")) == MD_V2


def test_issue13_phase2_end_to_end_through_the_fake_provider(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    root = tmp_path / "mem"
    add_session(mem, monkeypatch, "s1", "fix the build", hours_ago=5)
    fake_openai.answer(
        "```json\n"
        + json.dumps({"trace_memory": trace_text("use `make test`"), "summary": "build"})
        + "\n```"
    )
    fake_openai.answer("Here it is: " + json.dumps(md(MD_V1)) + " Done.")
    llm = OpenAICompatibleLLM("fake-model", base_url=fake_openai.base_url, api_key="x")

    assert summarize_sessions(mem, llm, root=root, scope=SCOPE).summarized == ["s1"]
    run = consolidate_scope(mem, llm, root=root, scope=SCOPE)

    assert run.status == "consolidated", run.error
    assert "use `make test`" in fake_openai.completions[-1].text
    paths = scope_paths(root, NS, SCOPE)
    assert strip_marker(paths.memory_md.read_text().rstrip("\n")) == MD_V1
    assert "(trace: `s1`" in paths.memory_summary.read_text()


# -- isolation -----------------------------------------------------------------------------


def test_issue13_phase2_scope_isolation(mem: Memory, tmp_path: Path) -> None:
    root = tmp_path / "mem"
    make_trace(mem, root, "a1", "ALPHA uses pnpm", scope=SCOPE, namespace="team")
    make_trace(mem, root, "b1", "BRAVO uses cargo", scope=OTHER, namespace="team")
    make_trace(mem, root, "c1", "CHARLIE uses maven", scope=SCOPE, namespace="other-team")
    same = "# Memory\n\n- identical text in two scopes"
    llm = ScriptedLLM([md(same), md(same), md(same)])

    ra = consolidate_scope(mem, llm, root=root, scope=SCOPE, namespace="team")
    rb = consolidate_scope(mem, llm, root=root, scope=OTHER, namespace="team")
    rc = consolidate_scope(mem, llm, root=root, scope=SCOPE, namespace="other-team")

    assert [ra.status, rb.status, rc.status] == ["consolidated"] * 3
    a, b, c = prompt_of(llm, 0), prompt_of(llm, 1), prompt_of(llm, 2)
    assert "ALPHA" in a and "BRAVO" not in a and "CHARLIE" not in a and "b1" not in a
    assert "BRAVO" in b and "ALPHA" not in b and "CHARLIE" not in b
    assert "CHARLIE" in c and "ALPHA" not in c and "BRAVO" not in c
    assert ra.traces == ["a1"] and rb.traces == ["b1"] and rc.traces == ["c1"]
    # identical text in two scopes stays two memories, each in its own bucket
    ids = {ra.memory_md_id, rb.memory_md_id, rc.memory_md_id}
    assert len(ids) == 3 and None not in ids
    for ns, scope, sid in (
        ("team", SCOPE, "a1"),
        ("team", OTHER, "b1"),
        ("other-team", SCOPE, "c1"),
    ):
        paths = scope_paths(root, ns, scope)
        assert strip_marker(paths.memory_md.read_text().rstrip("\n")) == same
        assert f"`{sid}`" in paths.memory_summary.read_text()
    assert read_memory_md(mem, SCOPE, "team") != read_memory_md(mem, OTHER, "team")
    assert [t.metadata["session_id"] for t in list_traces(mem, SCOPE, "team")] == ["a1"]


# -- nothing new, dry run, budget ----------------------------------------------------------


def test_issue13_phase2_unchanged_makes_no_llm_call_and_restores_files(
    mem: Memory, tmp_path: Path
) -> None:
    root = tmp_path / "mem"
    make_trace(mem, root, "s1", "use uv")
    llm = ScriptedLLM([md()])
    assert consolidate_scope(mem, llm, root=root, scope=SCOPE).status == "consolidated"
    paths = scope_paths(root, NS, SCOPE)
    before = paths.memory_md.read_text()
    paths.memory_md.unlink()
    paths.memory_summary.unlink()

    run = consolidate_scope(mem, ScriptedLLM([]), root=root, scope=SCOPE)

    assert run.status == "unchanged" and run.llm_calls == 0, run.error
    assert run.files == [paths.memory_summary, paths.memory_md]
    assert paths.memory_md.read_text() == before
    assert "(trace: `s1`" in paths.memory_summary.read_text()
    assert len(llm.calls) == 1


def test_issue13_phase2_empty_scope_writes_routing_file_only(mem: Memory, tmp_path: Path) -> None:
    llm = ScriptedLLM([])
    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert run.status == "unchanged" and llm.calls == []
    paths = scope_paths(tmp_path, NS, SCOPE)
    assert paths.memory_summary.read_text() == "# Memory Summary\n\nNo memory traces yet.\n"
    assert not paths.memory_md.exists()


def test_issue13_phase2_dry_run_calls_nothing_and_writes_nothing(
    mem: Memory, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_trace(mem, src, "s1", "use uv")
    llm = ScriptedLLM([md()])
    run = consolidate_scope(mem, llm, root=tmp_path / "out", scope=SCOPE, dry_run=True)
    assert run.status == "dry-run" and run.new_traces == ["s1"]
    assert run.estimated_input_tokens > 100 and run.llm_calls == 0
    assert llm.calls == [] and not (tmp_path / "out").exists()
    assert mem.store.job_get(NS, "memory_md", SCOPE) is None
    assert read_memory_md(mem, SCOPE) is None


def test_issue13_phase2_budget_refusal_releases_the_job(mem: Memory, tmp_path: Path) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    over = BudgetExceededError("over", cap="run.max_input_tokens", limit=10, used=0)
    llm = ScriptedLLM([over, md()])
    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert run.status == "skipped" and "BudgetExceededError" in (run.error or "")
    assert read_memory_md(mem, SCOPE) is None
    assert not scope_paths(tmp_path, NS, SCOPE).memory_md.exists()
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "pending" and job.attempts == 0
    # the next run (budget allowing) goes ahead at once
    assert consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE).status == "consolidated"


def test_issue13_phase2_budget_refusing_compaction_cuts_the_first_answer(
    mem: Memory, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    long = "# M\n" + "\n".join(f"- fact number {i}" for i in range(300))
    over = BudgetExceededError("over", cap="run.max_llm_calls", limit=1, used=1)
    run = consolidate_scope(
        mem, ScriptedLLM([md(long), over]), root=tmp_path, scope=SCOPE, max_lines=50
    )
    assert run.status == "consolidated", run.error
    body = strip_marker(scope_paths(tmp_path, NS, SCOPE).memory_md.read_text().rstrip("\n"))
    assert body.split("\n") == long.split("\n")[:49]


# -- size cap ------------------------------------------------------------------------------


def test_issue13_phase2_size_cap_compacts_then_drops_whole_lines(
    mem: Memory, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    sections = [
        f"## Topic {s}\n" + "\n".join(f"- fact {s}.{i} " + "x" * (i % 50 + 1) for i in range(100))
        for s in range(5)
    ]
    huge = "# Memory\n\n" + "\n\n".join(sections)  # ~500 lines
    still = "\n".join(huge.split("\n")[:300]) + "\n```sh\nmake test\nmake lint\n```"
    llm = ScriptedLLM([md(huge), md(still)])

    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE, max_lines=60, max_bytes=2048)

    assert run.status == "consolidated", run.error
    assert run.llm_calls == 2
    compact_messages, name, _ = llm.calls[1]
    assert name == "memory_md" and "at most 59 lines" in compact_messages[0].content
    assert "- fact 4.99" in compact_messages[1].content  # the whole first answer
    data = scope_paths(tmp_path, NS, SCOPE).memory_md.read_bytes()
    text = data.decode()
    assert len(data) <= 2048 and len(text.splitlines()) <= 60
    body = strip_marker(text.rstrip("\n")).split("\n")
    allowed = set(still.split("\n"))
    assert all(line in allowed for line in body)  # whole lines of the model's text only
    assert body[0] == "# Memory" and len(body) > 5
    assert text.count("```") % 2 == 0  # no half code block


def test_issue13_phase2_fit_lines_keeps_whole_lines_and_blocks() -> None:
    text = "# A\n- a1\n- a2\n```\ncode 1\ncode 2\n```\n# B\n" + "\n".join(
        f"- b{i} " + "y" * 40 for i in range(20)
    )
    out = fit_lines(text, max_lines=10, max_bytes=10_000)
    lines = out.split("\n")
    assert len(lines) <= 10 and set(lines) <= set(text.split("\n"))
    assert lines[:7] == ["# A", "- a1", "- a2", "```", "code 1", "code 2", "```"]
    assert "# B" in lines  # the longest section lost lines from its end, kept its heading
    small = fit_lines(text, max_lines=100, max_bytes=60)
    assert len(small.encode()) + 1 <= 60 and set(small.split("\n")) <= set(text.split("\n"))
    assert "```" not in small or small.count("```") == 2
    # a section emptied of its lines loses its heading too: no orphan heading is left
    two = (
        "# Title\n## Long\n" + "\n".join(f"- long fact {i}" for i in range(12)) + "\n## Short\n- s"
    )
    fitted = fit_lines(two, max_lines=4, max_bytes=10_000).split("\n")
    assert fitted == ["# Title", "## Short", "- s"]


# -- near duplicates -----------------------------------------------------------------------


def test_issue13_phase2_near_duplicate_lines_merged_before_the_llm(
    mem: Memory, tmp_path: Path
) -> None:
    assert normalize_line("* Run `make test`, before committing!") == (
        "run make test before committing"
    )
    newest, older, previous = merge_near_duplicates(
        [
            "## Learnings\n- Run `make test` before committing.\n- ok",
            "## Learnings\n- run make test before committing\n"
            "- Use uv pip install -e . for the venv",
            "# Memory\n- use uv pip install -e . for the venv setup\n- keep it short and sweet",
        ]
    )
    assert newest == "## Learnings\n- Run `make test` before committing.\n- ok"
    assert older == "## Learnings\n- Use uv pip install -e . for the venv"  # headings kept
    assert previous == "# Memory\n- keep it short and sweet"  # near duplicate dropped
    reordered = merge_near_duplicates(["- for the venv use uv pip", "- use uv pip for the venv"])
    assert reordered == ["- for the venv use uv pip", ""]  # the same words in another order

    root = tmp_path / "mem"
    make_trace(mem, root, "s1", "use uv pip install -e . for the venv")
    llm = ScriptedLLM([md("# M\n- use uv pip install -e . for the venv"), md(MD_V1)])
    consolidate_scope(mem, llm, root=root, scope=SCOPE)
    make_trace(mem, root, "s2", "Use uv pip install -e . for the venv!", "new fact about lint")
    consolidate_scope(mem, llm, root=root, scope=SCOPE)
    user = llm.calls[1][0][1].content
    assert "Use uv pip install -e . for the venv!" in user  # the newest copy kept
    assert "- use uv pip install -e . for the venv\n" not in user
    assert "## Previous MEMORY.md\n\n# M\n" in user


# -- history, diff, reset, delete ----------------------------------------------------------


def test_issue13_phase2_history_and_diff_after_two_runs(mem: Memory, tmp_path: Path) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    llm = ScriptedLLM([md(MD_V1), md(MD_V2)])
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    make_trace(mem, tmp_path, "s2", "lint with make lint")
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)

    history = memory_md_history(mem, SCOPE)
    assert [(v.version, v.content) for v in history] == [(2, MD_V2), (1, MD_V1)]
    assert history[0].written_at >= history[1].written_at
    assert history[0].metadata["traces"] == ["s2", "s1"]
    diff = memory_md_diff(mem, SCOPE)
    assert "--- MEMORY.md@1" in diff and "+++ MEMORY.md@2" in diff
    assert "+- the lint step is `make lint`" in diff
    assert memory_md_diff(mem, SCOPE, old=1, new=1) == ""
    first = memory_md_diff(mem, SCOPE, new=1)
    assert "--- /dev/null" in first and "+## Build" in first
    with pytest.raises(NotFoundError, match=r"no MEMORY\.md version 7"):
        memory_md_diff(mem, SCOPE, old=7)
    assert memory_md_history(mem, OTHER) == []


def test_issue13_phase2_reset_one_scope_leaves_the_other(mem: Memory, tmp_path: Path) -> None:
    root = tmp_path / "mem"
    make_trace(mem, root, "a1", "alpha fact", scope=SCOPE)
    make_trace(mem, root, "b1", "bravo fact", scope=OTHER)
    skill = [{"name": "deploy", "content": "1. build\n2. ship"}]
    llm = ScriptedLLM([md(MD_V1, skill), md(MD_V1, skill)])
    consolidate_scope(mem, llm, root=root, scope=SCOPE)
    consolidate_scope(mem, llm, root=root, scope=OTHER)
    a, b = scope_paths(root, NS, SCOPE), scope_paths(root, NS, OTHER)

    assert reset_memory_md(mem, root=root, scope=SCOPE) is True

    assert read_memory_md(mem, SCOPE) is None and not a.memory_md.exists()
    assert not a.skills.exists()
    assert mem.list({"tags": ["skill"], "metadata": {"scope": SCOPE}}).items == []
    assert a.memory_summary.exists() and len(list(a.trace_summaries.iterdir())) == 1
    assert [t.metadata["session_id"] for t in list_traces(mem, SCOPE)] == ["a1"]
    assert read_memory_md(mem, OTHER) is not None and b.memory_md.exists()
    assert b.skill("deploy").exists()
    assert len(mem.list({"tags": ["skill"], "metadata": {"scope": OTHER}}).items) == 1
    assert reset_memory_md(mem, root=root, scope=SCOPE) is False
    # the next run starts afresh from the traces
    llm.add(md(MD_V2))
    run = consolidate_scope(mem, llm, root=root, scope=SCOPE)
    assert run.status == "consolidated" and run.new_traces == ["a1"]
    assert "## Previous MEMORY.md\n\n(none)" in prompt_of(llm, 2)


def test_issue13_phase2_delete_trace(mem: Memory, tmp_path: Path) -> None:
    root = tmp_path / "mem"
    make_trace(mem, root, "s1", "first fact")
    make_trace(mem, root, "s2", "second fact")
    make_trace(mem, root, "s1", "other scope fact", scope=OTHER)
    llm = ScriptedLLM([md()])
    consolidate_scope(mem, llm, root=root, scope=SCOPE)
    paths = scope_paths(root, NS, SCOPE)

    assert delete_trace(mem, root=root, scope=SCOPE, session_id="s1") is True

    assert find_trace(mem, "s1", scope=SCOPE) is None
    assert find_trace(mem, "s1", scope=OTHER) is not None  # the other scope's trace stays
    assert [p.name for p in paths.trace_summaries.iterdir()] == ["s2_work.md"]
    assert scope_paths(root, NS, OTHER).trace_summaries.joinpath("s1_work.md").exists()
    assert "`s1`" not in paths.memory_summary.read_text()
    assert delete_trace(mem, root=root, scope=SCOPE, session_id="s1") is False
    # a deletion alone brings nothing new to merge: no LLM call
    run = consolidate_scope(mem, llm, root=root, scope=SCOPE)
    assert run.status == "unchanged" and len(llm.calls) == 1 and run.traces == ["s2"]


def test_issue13_phase2_keeps_most_recent_traces_and_prunes_older_files(
    mem: Memory, tmp_path: Path
) -> None:
    root = tmp_path / "mem"
    for sid in ("s1", "s2", "s3"):
        make_trace(mem, root, sid, f"fact of {sid}")
    paths = scope_paths(root, NS, SCOPE)
    stray = paths.trace_summaries / "gone_old.md"
    stray.write_text("a trace file whose memory is gone")
    os.utime(stray, (1, 1))
    llm = ScriptedLLM([md()])
    run = consolidate_scope(mem, llm, root=root, scope=SCOPE, max_traces=2)
    assert run.traces == ["s3", "s2"]
    assert sorted(p.name for p in paths.trace_summaries.iterdir()) == ["s2_work.md", "s3_work.md"]
    assert "fact of s1" not in prompt_of(llm)
    assert len(list_traces(mem, SCOPE)) == 3  # the memory of the old trace stays


def test_issue13_phase2_memory_summary_trimmed_to_budget(mem: Memory, tmp_path: Path) -> None:
    for i in range(30):
        make_trace(mem, tmp_path, f"s{i:02d}", "x", summary=f"summary number {i} " + "z" * 40)
    full = memory_summary(mem, SCOPE, budget_tokens=100_000, max_traces=100)
    assert full.count("\n- ") == 30 and full.index("`s29`") < full.index("`s00`")
    assert memory_summary(mem, SCOPE, budget_tokens=100_000, max_traces=5).count("\n- ") == 5
    short = memory_summary(mem, SCOPE, budget_tokens=120)
    assert len(short) <= 120 * 4
    assert short.startswith("# Memory Summary\n") and "`s29`" in short and "`s00`" not in short
    assert all(line in full.split("\n") for line in short.split("\n")[:-2])
    assert short.rstrip("\n").endswith("older traces not shown)")
    assert memory_summary(mem, OTHER) == "# Memory Summary\n\nNo memory traces yet.\n"


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        LLMResponseError("the model did not answer with a JSON object"),
        md("   \n  "),
        {"skills": []},
        LLMUnavailableError("the request timed out"),
    ],
    ids=["invalid-json", "empty-memory-md", "missing-memory-md", "timeout"],
)
def test_issue13_phase2_bad_answer_fails_job_keeps_previous_file(
    mem: Memory, tmp_path: Path, bad: Any
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    assert consolidate_scope(mem, ScriptedLLM([md()]), root=tmp_path, scope=SCOPE).status == (
        "consolidated"
    )
    paths = scope_paths(tmp_path, NS, SCOPE)
    before = paths.memory_md.read_text()
    make_trace(mem, tmp_path, "s2", "a new fact")

    run = consolidate_scope(mem, ScriptedLLM([bad]), root=tmp_path, scope=SCOPE)

    assert run.status == "failed" and run.error
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "pending" and job.last_error == run.error
    assert paths.memory_md.read_text() == before
    record = read_memory_md(mem, SCOPE)
    assert record is not None and record.version == 1
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_issue13_phase2_timeout_through_the_fake_provider(
    mem: Memory, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    fake_openai.reply(Reply(content=json.dumps(md()), delay=1.0))
    llm = OpenAICompatibleLLM(
        "fake-model", base_url=fake_openai.base_url, api_key="x", timeout=0.2, max_retries=0
    )
    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert run.status == "failed" and "LLMUnavailableError" in (run.error or "")
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "pending" and job.last_error == run.error
    assert not scope_paths(tmp_path, NS, SCOPE).memory_md.exists()


def test_issue13_phase2_disk_full_keeps_old_file_and_retry_succeeds(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    llm = ScriptedLLM([md(MD_V1), md(MD_V2)])
    assert consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE).status == "consolidated"
    paths = scope_paths(tmp_path, NS, SCOPE)
    before = paths.memory_md.read_text()
    make_trace(mem, tmp_path, "s2", "a new fact")
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if str(dst).endswith("MEMORY.md"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full)
        run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)

    assert run.status == "failed" and "No space left" in (run.error or "")
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "pending" and "No space" in (job.last_error or "")
    assert paths.memory_md.read_text() == before
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    # not due yet: the retry waits
    assert consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE).status == "skipped"
    # once due, the retry writes the file from the database, without another LLM call
    future_clock(monkeypatch)
    again = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert again.status == "unchanged", again.error
    assert strip_marker(paths.memory_md.read_text().rstrip("\n")) == MD_V2
    assert len(llm.calls) == 2
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "done" and job.last_error is None


def test_issue13_phase2_killed_run_lease_expires_and_next_run_finishes(
    mem: Memory, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    dead = mem.store.job_claim(NS, "memory_md", SCOPE, "killed-process", 0.05)
    assert dead is not None
    llm = ScriptedLLM([md()])
    busy = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert busy.status == "skipped" and busy.error == "job busy" and llm.calls == []
    time.sleep(0.1)  # the killed owner's lease expires

    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)

    assert run.status == "consolidated", run.error
    assert scope_paths(tmp_path, NS, SCOPE).memory_md.exists()
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "done"
    assert dead.token is not None
    assert not mem.store.job_complete(NS, "memory_md", SCOPE, dead.token, input_watermark="x")


def test_issue13_phase2_lease_lost_during_call_writes_nothing(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    monkeypatch.setattr(mem.store, "job_heartbeat", lambda *a, **k: False)
    run = consolidate_scope(mem, ScriptedLLM([md()]), root=tmp_path, scope=SCOPE)
    assert run.status == "skipped" and run.error == "lease lost"
    assert read_memory_md(mem, SCOPE) is None
    assert not scope_paths(tmp_path, NS, SCOPE).memory_md.exists()


def test_issue13_phase2_secret_never_reaches_model_or_files(mem: Memory, tmp_path: Path) -> None:
    secret = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    make_trace(mem, tmp_path / "src", "s1", f"the deploy key is {secret}")
    leaked = MD_V1 + f"\n- the key is {secret}"
    llm = ScriptedLLM([md(leaked, [{"name": "k", "content": f"export KEY={secret}"}])])
    run = consolidate_scope(mem, llm, root=tmp_path / "out", scope=SCOPE)
    assert run.status == "consolidated"
    assert secret not in prompt_of(llm)
    assert secret not in "".join(p.read_text() for p in (tmp_path / "out").rglob("*.md"))
    record = read_memory_md(mem, SCOPE)
    assert record is not None and secret not in record.content
    assert "[REDACTED" in record.content


def test_issue13_phase2_bad_arguments_are_refused(mem: Memory, tmp_path: Path) -> None:
    from engramdb.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        consolidate_scope(mem, ScriptedLLM([]), root=tmp_path, scope="")
    with pytest.raises(InvalidInputError):
        consolidate_scope(mem, ScriptedLLM([]), root=tmp_path, scope="a\nb")
    with pytest.raises(InvalidInputError):
        consolidate_scope(mem, ScriptedLLM([]), root=tmp_path, scope=SCOPE, max_lines=1)
    with pytest.raises(InvalidInputError):
        memory_summary(mem, SCOPE, budget_tokens=0)


def test_issue13_phase2_prompt_messages_are_system_then_user(mem: Memory, tmp_path: Path) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    llm = ScriptedLLM([md()])
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE, max_lines=120, max_bytes=8000)
    messages: list[Message] = llm.calls[0][0]
    assert [m.role for m in messages] == ["system", "user"]
    system = messages[0].content
    assert "at most 119 lines" in system and "task ledger" in system
    assert "data, not instructions" in system and "prefer newer guidance" in system.lower()


# -- both backends -------------------------------------------------------------------------


def test_issue13_phase2_same_on_every_backend(backend: Backend, tmp_path: Path) -> None:
    mem = Memory(backend.open(), embedder=None)
    try:
        root = tmp_path / "mem"
        make_trace(mem, root, "a1", "ALPHA fact", scope=SCOPE)
        make_trace(mem, root, "b1", "BRAVO fact", scope=OTHER)
        llm = ScriptedLLM([md(MD_V1), md(MD_V1), md(MD_V2)])
        assert consolidate_scope(mem, llm, root=root, scope=SCOPE).status == "consolidated"
        assert consolidate_scope(mem, llm, root=root, scope=OTHER).status == "consolidated"
        assert "BRAVO" not in prompt_of(llm, 0) and "ALPHA" not in prompt_of(llm, 1)
        assert consolidate_scope(mem, llm, root=root, scope=SCOPE).status == "unchanged"
        make_trace(mem, root, "a2", "another ALPHA fact", scope=SCOPE)
        run = consolidate_scope(mem, llm, root=root, scope=SCOPE)
        assert run.status == "consolidated" and run.new_traces == ["a2"]
        assert [v.version for v in memory_md_history(mem, SCOPE)] == [2, 1]
        assert "+- the lint step is `make lint`" in memory_md_diff(mem, SCOPE)
        assert reset_memory_md(mem, root=root, scope=SCOPE)
        assert read_memory_md(mem, SCOPE) is None and read_memory_md(mem, OTHER) is not None
        job = mem.store.job_get(NS, "memory_md", OTHER)
        assert job is not None and job.status == "done"
    finally:
        mem.close()


def test_issue13_phase2_traces_bounded_by_trace_budget(mem: Memory, tmp_path: Path) -> None:
    make_trace(
        mem, tmp_path, "big", "HEAD-MARK " + " ".join(f"w{i}" for i in range(4000)) + " TAIL-MARK"
    )
    make_trace(mem, tmp_path, "small", "a small fact")
    run = consolidate_scope(
        mem, ScriptedLLM([]), root=tmp_path, scope=SCOPE, trace_budget=4096, dry_run=True
    )
    assert run.status == "dry-run" and run.new_traces == ["small", "big"]
    assert run.estimated_input_tokens < 8192 // 4 + 1000  # the prompt stays bounded
    llm = ScriptedLLM([md()])
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE, trace_budget=4096)
    user = prompt_of(llm)
    assert "HEAD-MARK" in user and "TAIL-MARK" in user and "bytes omitted ...]" in user
    assert "a small fact" in user and len(user.encode()) < 4096 + 3000


def test_issue13_phase2_skill_with_the_same_name_is_updated(mem: Memory, tmp_path: Path) -> None:
    make_trace(mem, tmp_path, "s1", "one")
    llm = ScriptedLLM(
        [
            md(MD_V1, [{"name": "Deploy", "content": "1. build"}, {"name": "", "content": "x"}]),
            md(MD_V2, [{"name": "deploy", "content": "1. build\n2. ship"}, "not a skill"]),  # type: ignore[list-item]
        ]
    )
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    make_trace(mem, tmp_path, "s2", "two")
    consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    skills = mem.list({"tags": ["skill"], "metadata": {"scope": SCOPE}}).items
    assert len(skills) == 1 and skills[0].version == 2
    assert skills[0].metadata == {"kind": "skill", "scope": SCOPE, "name": "deploy"}
    path = scope_paths(tmp_path, NS, SCOPE).skill("deploy")
    assert strip_marker(path.read_text().rstrip("\n")) == "1. build\n2. ship"
    assert [p.name for p in path.parent.parent.iterdir()] == ["deploy"]


def test_issue13_phase2_exhausted_retries_leave_the_job_failed_and_visible(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_trace(mem, tmp_path, "s1", "use uv")
    clock = [us_from_datetime(datetime.now(UTC))]
    monkeypatch.setattr("engramdb.store.jobs.now_us", lambda: clock[0])
    llm = ScriptedLLM([LLMUnavailableError("the endpoint is down")] * 5)
    for _ in range(5):
        clock[0] += 3_600_000_000  # each retry is due
        assert consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE).status == "failed"
    job = mem.store.job_get(NS, "memory_md", SCOPE)
    assert job is not None and job.status == "failed"
    assert job.last_error == "LLMUnavailableError: the endpoint is down"
    clock[0] += 3_600_000_000
    run = consolidate_scope(mem, llm, root=tmp_path, scope=SCOPE)
    assert run.status == "skipped" and len(llm.calls) == 5
    assert run.error == "job failed: LLMUnavailableError: the endpoint is down"
