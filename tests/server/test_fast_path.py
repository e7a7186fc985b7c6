"""The server's fast path (issue 14): recall counts of unlimited keys kept in memory and
written in batches (limited keys stay exact), and each request's store work in one hop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import fastapi.dependencies.utils
import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from engramdb.server import create_app
from engramdb.server.quotas import RECALLS, RecallCounts
from engramdb.server.settings import ServerSettings
from engramdb.store import Store, open_store
from engramdb.types import utc_day
from tests.live_server import ADMIN_KEY
from tests.server.conftest import Api, MakeApi

ADMIN = {"X-API-Key": ADMIN_KEY}


def new_key(client: TestClient, headers: dict[str, str] = ADMIN, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/keys", json={"name": "k", **body}, headers=headers)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


def recall(client: TestClient, secret: str) -> int:
    r = client.post("/v1/memories/recall", json={"query": "x"}, headers={"X-API-Key": secret})
    return r.status_code


@contextmanager
def counting_writes(store: Store) -> Iterator[list[str]]:
    """Every write the store makes meanwhile: usage counter writes and (SQLite) each write
    transaction."""
    calls: list[str] = []
    usage_add = store.usage_add

    def counted_usage_add(*args: Any, **kwargs: Any) -> Any:
        calls.append("usage_add")
        return usage_add(*args, **kwargs)

    patches = [mock.patch.object(store, "usage_add", counted_usage_add)]
    write = getattr(store, "_write", None)
    if write is not None:

        @contextmanager
        def counted_write(*args: Any, **kwargs: Any) -> Iterator[Any]:
            calls.append("_write")
            with write(*args, **kwargs) as conn:
                yield conn

        patches.append(mock.patch.object(store, "_write", counted_write))
    for p in patches:
        p.start()
    try:
        yield calls
    finally:
        for p in patches:
            p.stop()


# -- recall counts ----------------------------------------------------------------------------


def test_issue14_quota_unlimited_key_recalls_do_no_store_write(api: Api) -> None:
    key = new_key(api.client)
    secret, namespace, key_id = key["api_key"], key["key"]["namespace"], key["key"]["id"]
    store = api.memory.store
    with counting_writes(store) as writes:
        assert [recall(api.client, secret) for _ in range(5)] == [200] * 5
    assert writes == []
    # not yet in the store, but counted: what the key sees includes this process's count
    assert store.usage_get(namespace, key_id, utc_day()).get(RECALLS, 0) == 0
    stats = api.client.get("/v1/stats", headers={"X-API-Key": secret}).json()
    assert stats["usage"]["recalls_today"] == 5
    assert stats["remaining"]["recalls_today"] is None


def test_issue14_quota_limited_key_refused_at_its_limit(make_api: MakeApi) -> None:
    # two apps over one store: two worker processes, each with its own in-memory counts
    first, second = make_api(), make_api()
    key = new_key(first.client, limits={"recalls_per_day": 4})
    secret = key["api_key"]
    codes = [recall(app.client, secret) for app in (first, second) * 3]
    assert codes == [200, 200, 200, 200, 429, 429]
    stored = first.memory.store.usage_get(key["key"]["namespace"], key["key"]["id"], utc_day())
    assert stored == {RECALLS: 4}


def test_issue14_quota_child_with_limit_counts_its_unlimited_parent(make_api: MakeApi) -> None:
    api = make_api()
    parent = new_key(api.client)  # unlimited: batched
    child = new_key(api.client, {"X-API-Key": parent["api_key"]}, limits={"recalls_per_day": 2})
    codes = [recall(api.client, child["api_key"]) for _ in range(3)]
    assert codes == [200, 200, 429]
    parent_stats = api.client.get("/v1/stats", headers={"X-API-Key": parent["api_key"]}).json()
    assert parent_stats["usage"]["recalls_today"] == 2  # the refused recall counted nowhere
    child_stats = api.client.get("/v1/stats", headers={"X-API-Key": child["api_key"]}).json()
    assert child_stats["usage"]["recalls_today"] == 2
    assert child_stats["remaining"]["recalls_today"] == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_issue14_quota_counts_are_flushed_on_shutdown(tmp_path: Path, backend: Any) -> None:
    target = str(tmp_path / "data")
    settings = ServerSettings(store=target, admin_keys=[ADMIN_KEY], embedder="none")
    with TestClient(create_app(settings=settings)) as client:  # runs the lifespan
        key = new_key(client)
        assert [recall(client, key["api_key"]) for _ in range(7)] == [200] * 7
    store = open_store(target)  # the app closed its store: read what reached the file
    try:
        got = store.usage_get(key["key"]["namespace"], key["key"]["id"], utc_day())
    finally:
        store.close()
    assert got == {RECALLS: 7}
    with TestClient(create_app(settings=settings)) as client:  # a restart sees them
        stats = client.get("/v1/stats", headers={"X-API-Key": key["api_key"]}).json()
    assert stats["usage"]["recalls_today"] == 7


def test_issue14_quota_counts_are_written_every_n_recalls(store: Store) -> None:
    counts = RecallCounts(store, every=3, after=3600.0)
    day = utc_day()
    counts.add("ns", "key_a", day)
    counts.add("ns", "key_b", day)
    assert store.usage_get("ns", "key_a", day) == {}
    assert counts.unwritten("ns", "key_a", day) == 1
    counts.add("ns", "key_a", day)  # the third: all are written, in one transaction
    assert store.usage_get("ns", "key_a", day) == {RECALLS: 2}
    assert store.usage_get("ns", "key_b", day) == {RECALLS: 1}
    assert counts.unwritten("ns", "key_a", day) == 0


def test_issue14_quota_failed_flush_keeps_the_counts(store: Store) -> None:
    counts = RecallCounts(store, every=1_000, after=3600.0)
    day = utc_day()
    counts.add("ns", "key_a", day, 2)
    with (
        mock.patch.object(store, "usage_add", side_effect=OSError("disk gone")),
        pytest.raises(OSError),
    ):
        counts.flush()
    assert counts.unwritten("ns", "key_a", day) == 2
    counts.flush()
    assert store.usage_get("ns", "key_a", day) == {RECALLS: 2}


# -- one hop ----------------------------------------------------------------------------------


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(4)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_issue14_hop_each_request_runs_its_store_work_in_one_hop(make_api: MakeApi) -> None:
    api = make_api()
    secret = new_key(api.client)["api_key"]
    state = api.client.app.state  # type: ignore[attr-defined]
    executor = CountingExecutor()
    hops: list[str] = []

    async def threadpool(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return func(*args, **kwargs)

    store = api.memory.store
    threads: dict[str, set[int]] = {}

    def on_thread(name: str) -> Any:
        real = getattr(store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            threads.setdefault(name, set()).add(threading.get_ident())
            return real(*args, **kwargs)

        return call

    headers = {"X-API-Key": secret}
    requests = [
        ("POST", "/v1/memories", {"content": "the fast path"}),
        ("POST", "/v1/memories/recall", {"query": "fast path", "mode": "text"}),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/keys", None),
    ]
    with (
        mock.patch.object(state, "services", replace(state.services, executor=executor)),
        mock.patch.object(fastapi.routing, "run_in_threadpool", threadpool),
        mock.patch.object(fastapi.dependencies.utils, "run_in_threadpool", threadpool),
        mock.patch.object(store, "key_by_hash", on_thread("key_by_hash")),
        mock.patch.object(store, "memory_text_search", on_thread("memory_text_search")),
    ):
        for i, (method, path, body) in enumerate(requests, start=1):
            r = api.client.request(method, path, json=body, headers=headers)
            assert r.status_code in (200, 201), r.text
            assert executor.submitted == i, path  # one hop per request
    assert hops == []  # no thread-pool hop for dependencies, endpoint or response
    # the key lookup and the search of the recall ran on one executor thread
    assert len(threads["memory_text_search"]) == 1
    assert threads["memory_text_search"] <= threads["key_by_hash"]
    assert threading.get_ident() not in threads["key_by_hash"]
    executor.shutdown()


def test_issue14_hop_key_is_checked_before_the_body(api: Api) -> None:
    bad_body = {"query": 5, "limit": "many"}
    r = api.client.post("/v1/memories/recall", json=bad_body, headers={"X-API-Key": "egm_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = api.client.post("/v1/memories/recall", json=bad_body, headers=ADMIN)
    assert r.status_code == 403  # admin keys reach no data, whatever they send
    secret = new_key(api.client)["api_key"]
    r = api.client.post("/v1/memories/recall", json=bad_body, headers={"X-API-Key": secret})
    assert r.status_code == 422


def test_issue14_hop_schema_keeps_the_routes_parameters(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    recall_op = schema["paths"]["/v1/memories/recall"]["post"]
    body = recall_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/RecallIn"  # a clean name, not a module path
    assert recall_op["summary"] == "Recall"
    assert "Memories ranked for a query" in recall_op["description"]
    listed = schema["paths"]["/v1/memories"]["get"]
    names = {p["name"] for p in listed.get("parameters", [])}
    assert "engramdb_request" not in names and {"limit", "cursor"} <= names


def test_issue14_serve_runs_on_httptools_and_uvloop() -> None:
    import tomllib

    import uvicorn

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("uvicorn[standard]") for dep in extras["server"])
    # engramdb serve leaves uvicorn's loop and http at "auto": they pick these when installed
    config = uvicorn.Config(app=lambda scope, receive, send: None, log_config=None)
    config.load()
    assert config.http_protocol_class.__module__.endswith("httptools_impl")
    loop_factory = config.get_loop_factory()
    assert loop_factory is not None and loop_factory.__module__.startswith("uvloop")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_issue14_quota_failed_flush_at_shutdown_still_closes_the_store(
    tmp_path: Path, backend: Any
) -> None:
    settings = ServerSettings(store=str(tmp_path / "data"), admin_keys=[ADMIN_KEY], embedder="none")
    app = create_app(settings=settings)
    store = app.state.services.memory.store
    with TestClient(app) as client:
        key = new_key(client)
        assert recall(client, key["api_key"]) == 200
        failing = mock.patch.object(store, "usage_add", side_effect=OSError("disk gone"))
        failing.start()
    failing.stop()
    assert store._closed  # type: ignore[attr-defined]  # logged, and the store still closed
