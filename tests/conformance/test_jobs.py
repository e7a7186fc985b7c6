"""Issue 13, part 1: lease-locked jobs in the store, the same contract on every backend.

A job is one row per (namespace, kind, job_key); a claim takes its lease in one transaction
and hands back an ownership token that every later write of the run must present."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from engramdb import InvalidInputError
from engramdb.store import Store, open_store
from tests.conftest import Backend

KIND, KEY = "consolidate", "scope-a"


def wait_past(seconds: float) -> None:
    """Sleep until ``seconds`` have surely passed (a bounded wait, no timing assert)."""
    time.sleep(seconds + 0.02)


def test_issue13_jobs_two_owners_cannot_both_hold_a_lease(store: Store) -> None:
    first = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert first is not None and first.token
    assert first.status == "running" and first.owner == "worker-a" and first.attempts == 1
    assert store.job_claim("ns", KIND, KEY, "worker-b", 60) is None
    assert store.job_claim("ns", KIND, KEY, "worker-a", 60) is None  # not re-entrant either
    got = store.job_get("ns", KIND, KEY)
    assert got is not None and got.owner == "worker-a" and got.status == "running"
    assert got.token is None  # a record read back never carries the token


def test_issue13_jobs_owner_renews_and_a_stale_token_cannot_write(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "worker-a", 0.05)
    assert job is not None and job.token and job.lease_expires_at is not None
    assert store.job_heartbeat("ns", KIND, KEY, job.token, 60)
    renewed = store.job_get("ns", KIND, KEY)
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > job.lease_expires_at
    wait_past(0.05)  # past the first ttl: the renewed lease still holds
    assert store.job_claim("ns", KIND, KEY, "worker-b", 60) is None
    assert not store.job_heartbeat("ns", KIND, KEY, "not-the-token", 60)
    assert not store.job_complete("ns", KIND, KEY, "not-the-token", input_watermark="9")
    assert not store.job_fail("ns", KIND, KEY, "not-the-token", "x", retry_in=0)
    assert store.job_complete("ns", KIND, KEY, job.token, input_watermark="41")
    done = store.job_get("ns", KIND, KEY)
    assert done is not None and done.status == "done" and done.input_watermark == "41"
    assert not store.job_heartbeat("ns", KIND, KEY, job.token, 60)  # the run is over


def test_issue13_jobs_non_owner_release_is_a_no_op(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert job is not None and job.token
    assert not store.job_release("ns", KIND, KEY, "someone-else")
    assert store.job_claim("ns", KIND, KEY, "worker-b", 60) is None
    held = store.job_get("ns", KIND, KEY)
    assert held is not None and held.status == "running" and held.owner == "worker-a"
    assert store.job_heartbeat("ns", KIND, KEY, job.token, 60)  # still the owner


def test_issue13_jobs_release_then_another_owner_acquires(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert job is not None and job.token
    assert store.job_release("ns", KIND, KEY, job.token)
    assert not store.job_release("ns", KIND, KEY, job.token)  # once
    released = store.job_get("ns", KIND, KEY)
    assert released is not None and released.status == "pending" and released.attempts == 0
    other = store.job_claim("ns", KIND, KEY, "worker-b", 60)
    assert other is not None and other.owner == "worker-b" and other.token != job.token
    assert not store.job_complete("ns", KIND, KEY, job.token, input_watermark="1")


def test_issue13_jobs_expired_lease_is_taken_over(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "crashed", 0.05)
    assert job is not None and job.token
    taken = None
    deadline = time.monotonic() + 5
    while taken is None and time.monotonic() < deadline:  # bounded poll past the ttl
        wait_past(0.05)
        taken = store.job_claim("ns", KIND, KEY, "rescuer", 60)
    assert taken is not None and taken.owner == "rescuer" and taken.attempts == 2
    # the crashed owner's late writes are refused: its token no longer owns the job
    assert not store.job_complete("ns", KIND, KEY, job.token, input_watermark="stale")
    assert not store.job_heartbeat("ns", KIND, KEY, job.token, 60)
    assert not store.job_release("ns", KIND, KEY, job.token)
    assert taken.token and store.job_complete("ns", KIND, KEY, taken.token, input_watermark="7")
    done = store.job_get("ns", KIND, KEY)
    assert done is not None and done.status == "done" and done.input_watermark == "7"


def test_issue13_jobs_exhausted_retries_are_visible_as_failed(store: Store) -> None:
    for attempt in range(1, 4):
        job = store.job_claim("ns", KIND, KEY, "w", 60, max_attempts=3)
        assert job is not None and job.token and job.attempts == attempt
        assert store.job_fail("ns", KIND, KEY, job.token, f"boom {attempt}", retry_in=0)
        after = store.job_get("ns", KIND, KEY)
        assert after is not None and after.last_error == f"boom {attempt}"
        assert after.status == ("failed" if attempt == 3 else "pending")
    assert store.job_claim("ns", KIND, KEY, "w", 60, max_attempts=3) is None
    failed = store.job_list("ns", status="failed")
    assert [(j.job_key, j.status, j.last_error) for j in failed] == [(KEY, "failed", "boom 3")]
    assert store.job_list("ns", status="pending") == []


def test_issue13_jobs_retry_waits_for_retry_at(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "w", 60)
    assert job is not None and job.token
    assert store.job_fail("ns", KIND, KEY, job.token, "rate limited", retry_in=3600)
    pending = store.job_get("ns", KIND, KEY)
    assert pending is not None and pending.status == "pending" and pending.retry_at is not None
    assert store.job_claim("ns", KIND, KEY, "w", 60) is None  # not before retry_at


def test_issue13_jobs_lease_expired_on_last_attempt_becomes_failed(store: Store) -> None:
    job = store.job_claim("ns", KIND, KEY, "crashed", 0.05, max_attempts=1)
    assert job is not None
    wait_past(0.05)
    assert store.job_claim("ns", KIND, KEY, "rescuer", 60, max_attempts=1) is None
    failed = store.job_get("ns", KIND, KEY)
    assert failed is not None and failed.status == "failed" and failed.last_error


def test_issue13_jobs_namespaces_are_isolated(store: Store) -> None:
    job = store.job_claim("ns-a", KIND, KEY, "w", 60)
    assert job is not None and job.token
    assert store.job_get("ns-b", KIND, KEY) is None
    assert store.job_list("ns-b") == []
    assert not store.job_complete("ns-b", KIND, KEY, job.token, input_watermark="x")
    assert not store.job_release("ns-b", KIND, KEY, job.token)
    other = store.job_claim("ns-b", KIND, KEY, "w", 60)  # its own job, not ns-a's lease
    assert other is not None and other.namespace == "ns-b" and other.attempts == 1
    assert [j.namespace for j in store.job_list("ns-a")] == ["ns-a"]
    mine = store.job_get("ns-a", KIND, KEY)
    assert mine is not None and mine.status == "running" and mine.owner == "w"


def test_issue13_jobs_list_filters_by_kind_and_status(store: Store) -> None:
    for kind, key in [("trace", "s2"), ("trace", "s1"), ("consolidate", "p")]:
        assert store.job_claim("ns", kind, key, "w", 60) is not None
    first = store.job_claim("ns", "trace", "s3", "w", 60)
    assert first is not None and first.token
    store.job_complete("ns", "trace", "s3", first.token, input_watermark=None)
    assert [j.job_key for j in store.job_list("ns", kind="trace")] == ["s1", "s2", "s3"]
    assert [j.job_key for j in store.job_list("ns", status="done")] == ["s3"]
    assert [j.kind for j in store.job_list("ns")] == ["consolidate", "trace", "trace", "trace"]


def test_issue13_jobs_bad_arguments_are_typed_errors(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.job_claim("ns", KIND, KEY, "w", 0)
    with pytest.raises(InvalidInputError):
        store.job_claim("ns", KIND, KEY, "w", 60, max_attempts=0)
    job = store.job_claim("ns", KIND, KEY, "w", 60)
    assert job is not None and job.token
    with pytest.raises(InvalidInputError):
        store.job_fail("ns", KIND, KEY, job.token, "x", retry_in=-1)
    assert store.job_get("ns", KIND, KEY) is not None


# -- concurrent processes --------------------------------------------------------------------

ROUNDS = 15


def _claimer(target: str, worker: int, barrier: Any, holding: Any, results: Any) -> None:
    """Claim the same job ROUNDS times; while holding it, count holders (must stay 1)."""
    claims = overlaps = lost = 0
    store = open_store(target)
    try:
        barrier.wait()
        for _ in range(ROUNDS * 20):
            if claims >= ROUNDS:
                break
            job = store.job_claim("ns", KIND, KEY, f"p{worker}", 30, max_attempts=1)
            if job is None or job.token is None:
                continue
            claims += 1
            with holding.get_lock():
                holding.value += 1
                if holding.value != 1:  # another process holds it at the same time
                    overlaps += 1
            time.sleep(0.002)  # hold it a moment: a double claim would land in this window
            with holding.get_lock():
                holding.value -= 1
            if not store.job_release("ns", KIND, KEY, job.token):
                lost += 1  # someone else's claim replaced ours while we held it
    finally:
        store.close()
        results.put((worker, claims, overlaps + lost))


def test_issue13_jobs_four_processes_never_double_claim(backend: Backend) -> None:
    setup = backend.open()  # create the schema before the processes race
    setup.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, holding, results = ctx.Barrier(4), ctx.Value("i", 0), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(backend.target, n, barrier, holding, results))
        for n in range(4)
    ]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(overlaps for _, _, overlaps in outcome) == 0, outcome
    total = sum(claims for _, claims, _ in outcome)
    assert total >= ROUNDS, outcome  # the job kept being claimed and released
    check = backend.open()
    try:
        job = check.job_get("ns", KIND, KEY)
        assert job is not None and job.status == "pending" and job.attempts == 0
    finally:
        check.close()


def test_issue13_caps_job_spend_adds_up_over_runs(store: Store) -> None:
    from engramdb.types import Spend

    job = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert job is not None and job.token and job.spend == Spend()
    assert store.job_fail(
        "ns", KIND, KEY, job.token, "boom", retry_in=0, spend=Spend(1, 2, 300, 40)
    )
    job = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert job is not None and job.token
    assert store.job_release("ns", KIND, KEY, job.token, spend=Spend(0, 1, 10, 0))
    job = store.job_claim("ns", KIND, KEY, "worker-a", 60)
    assert job is not None and job.token
    assert store.job_complete(
        "ns", KIND, KEY, job.token, input_watermark="w", spend=Spend(1, 1, 5, 5)
    )
    done = store.job_get("ns", KIND, KEY)
    assert done is not None and done.spend == Spend(2, 4, 315, 45)
    assert done.spend.tokens == 360
    # a stale token adds nothing
    assert not store.job_complete(
        "ns", KIND, KEY, job.token, input_watermark="x", spend=Spend(9, 9, 9, 9)
    )
    again = store.job_get("ns", KIND, KEY)
    assert again is not None and again.spend == Spend(2, 4, 315, 45)


def test_issue13_caps_spend_ledger_per_day_scope_and_namespace(store: Store) -> None:
    from engramdb.types import Spend

    store.spend_add("ns", "2026-12-01", "proj-a", Spend(1, 1, 100, 10))
    store.spend_add("ns", "2026-12-02", "proj-a", Spend(1, 2, 200, 20))
    store.spend_add("ns", "2026-12-02", "proj-a", Spend(0, 1, 50, 5))
    store.spend_add("ns", "2026-12-02", "proj-b", Spend(2, 2, 20, 2))
    store.spend_add("other", "2026-12-02", "proj-a", Spend(7, 7, 7, 7))
    rows = store.spend_list("ns")
    assert [(r.day, r.scope) for r in rows] == [
        ("2026-12-02", "proj-a"),
        ("2026-12-02", "proj-b"),
        ("2026-12-01", "proj-a"),
    ]
    assert rows[0].spend == Spend(1, 3, 250, 25)
    assert [r.scope for r in store.spend_list("ns", since="2026-12-02")] == ["proj-a", "proj-b"]
    assert [r.day for r in store.spend_list("ns", scope="proj-a")] == ["2026-12-02", "2026-12-01"]
    assert [r.spend for r in store.spend_list("other")] == [Spend(7, 7, 7, 7)]
    with pytest.raises(InvalidInputError):
        store.spend_add("ns", "2026-13-40", "proj-a", Spend())
    with pytest.raises(InvalidInputError):
        store.spend_add("ns", "yesterday", "proj-a", Spend())


def test_issue13_control_scope_settings_per_namespace(store: Store) -> None:
    assert store.scope_get("ns", "proj-a") is None and store.scope_list("ns") == []
    first = store.scope_put("ns", "proj-a", enabled=False, session_prefix="a:")
    assert first.enabled is False and first.session_prefix == "a:" and first.scope == "proj-a"
    store.scope_put("ns", "proj-b", enabled=True, session_prefix=None)
    store.scope_put("other", "proj-a", enabled=True, session_prefix=None)
    again = store.scope_put("ns", "proj-a", enabled=True, session_prefix="a:")
    assert again.enabled is True and again.created_at == first.created_at
    assert again.updated_at >= first.updated_at
    assert [(s.scope, s.enabled, s.session_prefix) for s in store.scope_list("ns")] == [
        ("proj-a", True, "a:"),
        ("proj-b", True, None),
    ]
    got = store.scope_get("other", "proj-a")
    assert got is not None and got.session_prefix is None
