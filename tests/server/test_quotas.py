"""Stored-data quotas under concurrent clients of a real server, on SQLite and PostgreSQL
(issue 10, item 8): the quota is checked inside the write transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.live_server import LiveServer, start_live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def quota_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server with two worker processes, max_memories=5 and max_facts=3 (each test
    registers its own namespace)."""
    where = tmp_path_factory.mktemp("quota-server")
    if request.param == "sqlite":
        target = str(where / "data")
    else:
        target = request.getfixturevalue("pg_server").new_schema()
    server = start_live_server(
        target, log_path=where / "server.log", workers=2, max_memories=5, max_facts=3
    )
    yield server
    server.stop()


def together(
    n: int, call: Callable[[httpx.Client, int], httpx.Response], key: str, url: str
) -> list[httpx.Response]:
    """Run ``call`` from ``n`` threads released at once; the responses, in thread order."""
    start = threading.Barrier(n)
    out: list[httpx.Response | None] = [None] * n

    def run(i: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            start.wait()
            out[i] = call(c, i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def test_item_08_concurrent_http_writers_store_exactly_the_quota(quota_server: LiveServer) -> None:
    url = quota_server.url
    key = quota_server.register()
    answers = together(
        24, lambda c, i: c.post("/v1/memories", json={"content": f"writer {i}"}), key, url
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 5 + [429] * 19
    for r in answers:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "quota_exceeded"
            assert "memory quota of 5" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) > 0
    with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
        assert len(c.get("/v1/memories").json()["memories"]) == 5
        stats = c.get("/v1/stats").json()
        assert stats["usage"]["memories"] == 5 and stats["remaining"]["memories"] == 0
        compat = c.get("/api/memory/stats").json()
        assert compat["quota_remaining"]["memories"] == 0


def test_item_08_batches_are_checked_whole_and_concurrently(quota_server: LiveServer) -> None:
    url = quota_server.url
    key = quota_server.register()
    with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
        batch = {"memories": [{"content": f"entry {n}"} for n in range(100)]}
        r = c.post("/v1/memories/batch", json=batch)
        assert r.status_code == 429 and "memory quota of 5" in r.json()["error"]["message"]
        assert c.get("/v1/memories").json()["memories"] == []  # nothing stored
    # concurrent batches of 3 under a limit of 5: exactly one fits
    answers = together(
        8,
        lambda c, i: c.post(
            "/v1/memories/batch",
            json={"memories": [{"content": f"batch {i} entry {n}"} for n in range(3)]},
        ),
        key,
        url,
    )
    assert sorted(r.status_code for r in answers) == [201] + [429] * 7
    with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
        assert len(c.get("/v1/memories").json()["memories"]) == 3


def test_item_08_concurrent_learns_count_toward_the_fact_quota(quota_server: LiveServer) -> None:
    url = quota_server.url
    key = quota_server.register()
    answers = together(
        8,
        lambda c, i: c.post(
            "/v1/triples", json={"subject": f"s{i}", "predicate": "is", "object": "o"}
        ),
        key,
        url,
    )
    assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 5
    refused = next(r for r in answers if r.status_code == 429)
    assert "fact quota of 3" in refused.json()["error"]["message"]
    with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
        assert len(c.get("/v1/triples").json()["triples"]) == 3
        r = c.post("/api/memory/learn", json={"subject": "x", "predicate": "y", "object": "z"})
        assert r.status_code == 429
        stats = c.get("/v1/stats").json()
        assert stats["usage"]["facts"] == 3 and stats["remaining"]["facts"] == 0
        # each learned fact's searchable memory counts as a memory: 3 of 5 used
        assert stats["usage"]["memories"] == 3


def test_issue14_quota_two_workers_never_overrun_a_recall_limit(quota_server: LiveServer) -> None:
    # each worker process keeps its own in-memory recall counts: a key with a limit must
    # still be checked against one exact count
    url = quota_server.url
    r = httpx.post(
        f"{url}/v1/keys",
        json={"name": "limited", "limits": {"recalls_per_day": 6}},
        headers={"X-API-Key": quota_server.admin_key},
    )
    r.raise_for_status()
    key = r.json()["api_key"]
    answers = together(
        20, lambda c, i: c.post("/v1/memories/recall", json={"query": f"q {i}"}), key, url
    )
    assert sorted(r.status_code for r in answers) == [200] * 6 + [429] * 14
    with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
        stats = c.get("/v1/stats").json()
    assert stats["usage"]["recalls_today"] == 6 and stats["remaining"]["recalls_today"] == 0
