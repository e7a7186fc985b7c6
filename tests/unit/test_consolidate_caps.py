"""Issue 13 part 5: cost caps per run and per day; what was spent is recorded per job and per
day, and a cap reached stops the run cleanly (the job given back, no attempt used)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import BudgetExceededError, InvalidInputError, Memory, open_store
from engramdb.consolidate import summarize_sessions
from engramdb.consolidate.budget import Budget, Caps, CostCaps, estimate_input_tokens
from engramdb.consolidate.traces import trace_job_key
from engramdb.llm.base import Message
from engramdb.llm.fake import ScriptedLLM
from engramdb.types import Spend, utc_day
from tests.unit.test_consolidate_traces import NS, SCOPE, add, answer, msg


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(open_store(tmp_path / "data"), embedder=None)
    yield m
    m.close()


def three_sessions(mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, sid in enumerate(["s1", "s2", "s3"]):
        add(mem, monkeypatch, sid, [msg(f"task number {n} " * 20)], hours_ago=5 + n)


def test_issue13_caps_run_session_cap_stops_the_run_and_gives_the_job_back(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    three_sessions(mem, monkeypatch)
    llm = ScriptedLLM([answer("one"), answer("two"), answer("three")])
    budget = Budget(mem.store, NS, SCOPE, CostCaps(run=Caps(max_sessions=2), day=Caps()))
    run = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE, budget=budget)
    assert run.summarized == ["s1", "s2"]
    assert run.stopped is not None and "run cap max_sessions=2" in run.stopped
    assert len(llm.calls) == 2  # the third session was never sent
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s3"))
    assert job is None or (job.status == "pending" and job.attempts == 0)
    # per job: one session, one call, the tokens the model reported
    done = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s1"))
    assert done is not None and done.spend.sessions == 1 and done.spend.llm_calls == 1
    assert done.spend.input_tokens > 0 and done.spend.output_tokens > 0
    # the day's ledger holds the whole run
    [day] = mem.store.spend_list(NS)
    assert day.scope == SCOPE and day.day == utc_day()
    assert day.spend.sessions == 2 and day.spend.llm_calls == 2
    assert day.spend == budget.spent
    # the next run (a fresh budget) finishes the rest
    again = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE)
    assert again.summarized == ["s3"] and again.stopped is None


def test_issue13_caps_input_token_cap_refuses_the_call_before_sending(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    three_sessions(mem, monkeypatch)
    llm = ScriptedLLM([answer("one"), answer("two"), answer("three")])
    budget = Budget(mem.store, NS, SCOPE, CostCaps(run=Caps(max_input_tokens=10), day=Caps()))
    run = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE, budget=budget)
    assert run.summarized == [] and llm.calls == []
    assert run.stopped is not None and "input_tokens" in run.stopped
    assert budget.spent == Spend()  # nothing counted for a refused call or session
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s1"))
    assert job is not None and job.status == "pending" and job.attempts == 0
    assert job.last_error is None


def test_issue13_caps_day_cap_counts_every_run_and_scope_of_the_namespace(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    three_sessions(mem, monkeypatch)
    caps = CostCaps(run=Caps(), day=Caps(max_llm_calls=2))
    mem.store.spend_add(NS, utc_day(), "another-scope", Spend(1, 1, 50, 5))
    mem.store.spend_add("other-namespace", utc_day(), SCOPE, Spend(9, 9, 9, 9))  # not counted
    llm = ScriptedLLM([answer("one"), answer("two"), answer("three")])
    run = summarize_sessions(
        mem, llm, root=tmp_path / "m", scope=SCOPE, budget=Budget(mem.store, NS, SCOPE, caps)
    )
    assert run.summarized == ["s1"] and "day cap max_llm_calls=2" in str(run.stopped)
    second = summarize_sessions(
        mem, llm, root=tmp_path / "m", scope=SCOPE, budget=Budget(mem.store, NS, SCOPE, caps)
    )
    assert second.summarized == [] and second.stopped is not None and len(llm.calls) == 1
    # tomorrow the cap is fresh
    tomorrow = Budget(mem.store, NS, SCOPE, caps, day="2999-01-01")
    third = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE, budget=tomorrow)
    assert third.summarized == ["s2", "s3"]


def test_issue13_caps_a_failed_call_is_still_counted(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engramdb.errors import LLMUnavailableError

    add(mem, monkeypatch, "s1", [msg("fix it")], hours_ago=5)
    llm = ScriptedLLM([LLMUnavailableError("timed out")])
    run = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE)
    assert "LLMUnavailableError" in run.failed["s1"]
    job = mem.store.job_get(NS, "trace", trace_job_key(SCOPE, "s1"))
    assert job is not None and job.status == "pending" and job.spend.llm_calls == 1
    assert job.spend.input_tokens > 0  # the estimate: a timed-out call may have been billed


def test_issue13_caps_dry_run_estimates_and_sends_nothing(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    three_sessions(mem, monkeypatch)
    llm = ScriptedLLM([])
    run = summarize_sessions(mem, llm, root=tmp_path / "m", scope=SCOPE, dry_run=True)
    assert sorted(run.planned) == ["s1", "s2", "s3"]
    assert all(tokens > 100 for tokens in run.planned.values())
    assert llm.calls == [] and not (tmp_path / "m").exists()
    assert mem.store.job_list(NS) == [] and mem.store.spend_list(NS) == []


def test_issue13_caps_session_prefix_keeps_a_scope_to_its_sessions(
    mem: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add(mem, monkeypatch, "a:1", [msg("project a work")], hours_ago=5)
    add(mem, monkeypatch, "b:1", [msg("project b work")], hours_ago=5)
    llm = ScriptedLLM([answer("a work")])
    run = summarize_sessions(mem, llm, root=tmp_path / "m", scope="a", session_prefix="a:")
    assert run.summarized == ["a:1"]
    assert all("project b" not in m.content for call in llm.calls for m in call[0])


def test_issue13_caps_bad_caps_and_estimates() -> None:
    with pytest.raises(InvalidInputError):
        Caps(max_sessions=-1)
    assert estimate_input_tokens([Message("user", "x" * 9)]) == 3
    err = BudgetExceededError("over", cap="run.max_llm_calls", limit=1, used=1)
    assert err.cap == "run.max_llm_calls" and err.limit == 1
