"""Issue 13 parts 4-6 in the library: one consolidation run of a scope (both phases under
cost caps), its status, per-scope settings, deleted traces staying deleted, retrying failed
jobs, the serve schedule, and injection (``Memory.context(scope=)``, the file path)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory, open_store
from engramdb.consolidate import (
    Caps,
    CostCaps,
    configure_scope,
    consolidate,
    consolidation_status,
    delete_trace,
    memory_root,
    read_memory_md,
    scope_paths,
)
from engramdb.consolidate.traces import trace_job_key
from engramdb.errors import LLMUnavailableError
from engramdb.llm.fake import ScriptedLLM
from engramdb.server.schedule import ConsolidationSchedule
from tests.fake_openai import FakeOpenAI
from tests.unit.test_consolidate_scope import MD_V1, MD_V2, md
from tests.unit.test_consolidate_traces import NS, SCOPE, add, answer, msg


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(open_store(tmp_path / "data"), embedder=None)
    yield m
    m.close()


def test_issue13_run_both_phases_then_status_shows_files_and_spend(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "memories"
    add(mem, monkeypatch, "s1", [msg("fix the build")], hours_ago=5)
    add(mem, monkeypatch, "s2", [msg("add a lint step")], hours_ago=4)
    llm = ScriptedLLM([answer("added lint"), answer("fixed the build"), md(MD_V1)])
    steps: list[tuple[str, int, int]] = []
    run = consolidate(mem, llm, scope=SCOPE, root=root, progress=lambda *step: steps.append(step))
    assert run.traces.summarized == ["s2", "s1"] and run.stopped is None
    assert run.memory_md is not None and run.memory_md.status == "consolidated"
    assert run.spent.sessions == 2 and run.spent.llm_calls == 3
    assert steps[0] == ("traces", 0, 2) and ("traces", 2, 2) in steps
    assert steps[-1] == ("memory_md", 1, 1)
    paths = scope_paths(root, NS, SCOPE)
    assert paths.memory_md.read_text().startswith(MD_V1)
    assert sorted(p.name for p in paths.trace_summaries.iterdir()) == [
        "s1_fixed-the-build.md",
        "s2_added-lint.md",
    ]

    status = consolidation_status(mem)
    [scope] = status.scopes
    assert scope.scope == SCOPE and scope.enabled and scope.traces == 2
    assert scope.memory_md_version == 1 and scope.memory_md_lines >= 4
    assert scope.open_jobs == [] and scope.last_run_at is not None
    assert scope.spent_today == run.spent == status.spent_today
    assert scope.spent_total == run.spent  # recorded on the jobs too

    # no new session: nothing is sent
    again = consolidate(mem, llm, scope=SCOPE, root=root)
    assert again.traces.summarized == [] and again.memory_md.status == "unchanged"  # type: ignore[union-attr]
    assert len(llm.calls) == 3 and again.spent.llm_calls == 0


def test_issue13_run_dry_run_estimates_both_phases(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s1", [msg("fix the build " * 50)], hours_ago=5)
    llm = ScriptedLLM([])
    run = consolidate(mem, llm, scope=SCOPE, root=tmp_path / "m", dry_run=True)
    assert list(run.traces.planned) == ["s1"] and run.memory_md is not None
    assert run.estimated_input_tokens >= run.traces.planned["s1"] > 100
    assert llm.calls == [] and not (tmp_path / "m").exists()
    assert mem.store.job_list(NS) == [] and mem.store.spend_list(NS) == []


def test_issue13_run_opted_out_scope_sends_nothing(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s1", [msg("fix the build")], hours_ago=5)
    settings = configure_scope(mem, SCOPE, enabled=False)
    assert settings.enabled is False
    llm = ScriptedLLM([answer(), md()])
    run = consolidate(mem, llm, scope=SCOPE, root=tmp_path / "m")
    assert run.stopped == "scope is opted out" and llm.calls == []
    # a prefix set later keeps the opt-out; enabling keeps the prefix
    assert configure_scope(mem, SCOPE, session_prefix="s").enabled is False
    back = configure_scope(mem, SCOPE, enabled=True)
    assert back.enabled and back.session_prefix == "s"
    assert configure_scope(mem, SCOPE, clear_session_prefix=True).session_prefix is None
    [status] = consolidation_status(mem).scopes
    assert status.scope == SCOPE and status.enabled


def test_issue13_run_deleted_trace_stays_deleted_until_the_session_changes(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "m"
    add(mem, monkeypatch, "s1", [msg("fix the build")], hours_ago=5)
    llm = ScriptedLLM([answer("fixed the build"), md(MD_V1)])
    consolidate(mem, llm, scope=SCOPE, root=root)
    assert delete_trace(mem, root=root, scope=SCOPE, session_id="s1")
    run = consolidate(mem, llm, scope=SCOPE, root=root)
    assert run.traces.skipped["s1"] == "trace deleted" and len(llm.calls) == 2
    # the session goes on: its new trace is made
    add(mem, monkeypatch, "s1", [msg("and the docs")], hours_ago=0)
    llm.add(answer("fixed the build and docs"), md(MD_V2))
    run = consolidate(mem, llm, scope=SCOPE, root=root, idle_seconds=0)
    assert run.traces.summarized == ["s1"]


def test_issue13_run_retry_failed_gives_exhausted_jobs_a_new_budget(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "m"
    add(mem, monkeypatch, "s1", [msg("fix the build")], hours_ago=5)
    key = trace_job_key(SCOPE, "s1")
    llm = ScriptedLLM([LLMUnavailableError("down")] * 5)
    for _ in range(5):  # the retry budget: each failure waits retry_in (0 here)
        job = mem.store.job_claim(NS, "trace", key, "test", 60)
        assert job is not None and job.token
        mem.store.job_fail(NS, "trace", key, job.token, "LLMUnavailableError: down", retry_in=0)
    failed = mem.store.job_get(NS, "trace", key)
    assert failed is not None and failed.status == "failed"
    [status] = consolidation_status(mem).scopes
    assert [(j.status, j.last_error) for j in status.open_jobs] == [
        ("failed", "LLMUnavailableError: down")
    ]
    run = consolidate(mem, llm, scope=SCOPE, root=root)
    assert run.traces.summarized == [] and llm.calls == []  # failed jobs are not retried alone
    llm = ScriptedLLM([answer("fixed"), md(MD_V1)])
    run = consolidate(mem, llm, scope=SCOPE, root=root, retry_failed=True)
    assert run.traces.summarized == ["s1"]
    assert mem.store.job_get(NS, "trace", key).status == "done"  # type: ignore[union-attr]


def test_issue13_inject_context_puts_memory_md_first_within_the_budget(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "s1", [msg("fix the build")], hours_ago=5)
    long_md = MD_V1 + "".join(f"\n- guideline number {n} about the build" for n in range(200))
    consolidate(mem, ScriptedLLM([answer(), md(long_md)]), scope=SCOPE, root=tmp_path / "m")
    mem.remember("The build server is called hopper", tags=["infra"])
    block = mem.context("build server", scope=SCOPE, budget_tokens=400)
    record = read_memory_md(mem, SCOPE)
    assert record is not None and block.ids[0] == record.id
    text = block.text
    assert text.index("make test") < text.index("hopper")  # MEMORY.md first
    assert len(text) / 4 <= 400 + 10
    shown = [line for line in text.splitlines() if line.startswith("- guideline number")]
    assert 0 < len(shown) < 200 and all(line.endswith("about the build") for line in shown)
    assert "engramdb memory_md scope=" not in text  # the marker never reaches a prompt
    # traces and MEMORY.md are not repeated among the recalled memories
    assert text.count("## Task") == 0
    # another scope, or none, leaves MEMORY.md out
    assert "make test" not in mem.context("build server", scope="/elsewhere").text
    assert "Consolidated memory" not in mem.context("build server").text


def test_issue13_inject_file_path_is_stable_per_scope(mem: Memory, tmp_path: Path) -> None:
    assert memory_root(mem) == mem.store.path.parent / "memories"  # type: ignore[attr-defined]
    a = scope_paths(tmp_path, NS, SCOPE).memory_md
    assert a == scope_paths(tmp_path, NS, SCOPE).memory_md and a.name == "MEMORY.md"
    assert a != scope_paths(tmp_path, NS, "/home/dev/project-b").memory_md
    assert a != scope_paths(tmp_path, "other", SCOPE).memory_md


def test_issue13_schedule_runs_enabled_scopes_only_within_caps(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "a:1", [msg("project a")], hours_ago=5)
    add(mem, monkeypatch, "a:2", [msg("project a again")], hours_ago=5)
    add(mem, monkeypatch, "b:1", [msg("project b")], hours_ago=5)
    configure_scope(mem, "a", session_prefix="a:")
    configure_scope(mem, "b", session_prefix="b:", enabled=False)
    mem.llm = ScriptedLLM([answer("a one"), answer("a two"), md(MD_V1)])
    caps = CostCaps(run=Caps(max_llm_calls=2), day=Caps(max_llm_calls=2))
    schedule = ConsolidationSchedule(
        mem, every_seconds=3600, caps=caps, root=tmp_path / "m", idle_seconds=0
    )
    assert schedule.run_once() == 1
    calls = mem.llm.calls  # type: ignore[union-attr]
    assert len(calls) == 2  # the day cap: two traces, then MEMORY.md would pass it
    assert all("project b" not in m.content for call in calls for m in call[0])
    [status] = [s for s in consolidation_status(mem).scopes if s.scope == "a"]
    assert status.memory_md_version is None and status.spent_today.llm_calls == 2
    assert schedule.run_once() == 1 and len(calls) == 2  # the day is spent: nothing more
    schedule.stop(1)


def test_issue13_readme_snippet_runs_against_the_fake_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Consolidation: past sessions") :]
    section = section[: section.index("\n## ", 10)]
    [snippet] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    for name in ("ENGRAMDB_LLM", "ENGRAMDB_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ENGRAMDB_MEMORY_ROOT", raising=False)
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "x")
    monkeypatch.chdir(tmp_path)
    fake_openai.answer({"trace_memory": "## Task\nt\n\n## Outcome\no\n\n## Learnings\n- l",
                        "summary": "how the app is tested"})  # fmt: skip
    fake_openai.answer(
        {"memory_md": "# /work/app\n\n- run tests with `uv run pytest -q`", "skills": []}
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {})
    printed = out.getvalue()
    assert printed.startswith("consolidated Spend(sessions=1, llm_calls=2"), printed
    assert "uv run pytest -q" in printed and "MEMORY.md" in printed
    assert [p.name for p in (tmp_path / "data" / "memories").rglob("MEMORY.md")] == ["MEMORY.md"]
