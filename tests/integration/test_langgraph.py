"""The LangGraph store (issue 12, part 4) with the real ``langgraph`` package."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    BaseStore,
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)

from engramdb import Memory
from engramdb.errors import InvalidInputError
from engramdb.integrations.langgraph import EngramStore
from tests.fake_openai import Reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(backend: Any) -> Any:
    """An EngramStore on each backend (SQLite and PostgreSQL), fresh and empty."""
    s = EngramStore(backend.target, embedder="hashing")
    yield s
    s.close()


def test_issue12_langgraph_put_get_delete(store: EngramStore) -> None:
    assert isinstance(store, BaseStore)
    assert store.get(("users", "alice"), "tea") is None
    store.put(("users", "alice"), "tea", {"text": "Alice likes oolong", "n": 1})
    item = store.get(("users", "alice"), "tea")
    assert item is not None
    assert (item.namespace, item.key) == (("users", "alice"), "tea")
    assert item.value == {"text": "Alice likes oolong", "n": 1}
    assert item.created_at.tzinfo is not None
    # same key, other namespace: a different item
    assert store.get(("users", "bob"), "tea") is None
    store.delete(("users", "alice"), "tea")
    assert store.get(("users", "alice"), "tea") is None
    assert store.memory.stats().memories == 0  # forgotten, not hidden


def test_issue12_langgraph_update_keeps_history_and_created_at(store: EngramStore) -> None:
    store.put(("prefs",), "drink", {"text": "likes tea"})
    first = store.get(("prefs",), "drink")
    store.put(("prefs",), "drink", {"text": "likes coffee now"})
    second = store.get(("prefs",), "drink")
    assert first is not None and second is not None
    assert second.value == {"text": "likes coffee now"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert store.memory.stats().memories == 1
    (record,) = store.memory.list().items
    assert [v.content for v in store.memory.history(record.id)] == ["likes tea"]


def test_issue12_langgraph_same_text_two_keys_stay_two_items(store: EngramStore) -> None:
    store.put(("a",), "k1", {"text": "same words", "which": 1})
    store.put(("a",), "k2", {"text": "same words", "which": 2})
    store.put(("b",), "k1", {"text": "same words", "which": 3})
    assert store.get(("a",), "k1").value["which"] == 1  # type: ignore[union-attr]
    assert store.get(("a",), "k2").value["which"] == 2  # type: ignore[union-attr]
    assert store.get(("b",), "k1").value["which"] == 3  # type: ignore[union-attr]
    assert store.memory.stats().memories == 3


def test_issue12_langgraph_search_query_prefix_filter_paging(store: EngramStore) -> None:
    store.put(("users", "alice"), "1", {"text": "Alice drinks oolong tea", "kind": "pref"})
    store.put(("users", "alice"), "2", {"text": "Alice flies to Lisbon", "kind": "trip"})
    store.put(("users", "bob"), "1", {"text": "Bob drinks oolong tea too", "kind": "pref"})
    store.put(("usersx",), "1", {"text": "oolong tea elsewhere", "kind": "pref"})
    hits = store.search(("users", "alice"), query="oolong tea")
    assert hits and all(isinstance(h, SearchItem) for h in hits)
    assert hits[0].key == "1" and hits[0].namespace == ("users", "alice")
    assert hits[0].score is not None and hits[0].score > 0
    assert {h.namespace for h in hits} == {("users", "alice")}
    # a prefix is whole labels: ("users",) never reaches ("usersx",)
    under = store.search(("users",), query="oolong tea", limit=10)
    assert {h.namespace for h in under} == {("users", "alice"), ("users", "bob")}
    # filter on value fields, with and without a query
    prefs = store.search(("users",), filter={"kind": "pref"})
    assert [(h.namespace, h.key) for h in prefs] == [
        (("users", "alice"), "1"),
        (("users", "bob"), "1"),
    ]
    assert all(h.score is None for h in prefs)
    trips = store.search(("users",), query="Alice", filter={"kind": "trip"})
    assert [(h.key, h.value["kind"]) for h in trips] == [("2", "trip")]
    numbers = store.search(("users",), query="Alice", filter={"kind": "pref", "n": {"$gt": 0}})
    assert numbers == []  # no value has n: a comparison with a missing field is false
    assert store.search(("users",), filter={"kind": {"$ne": "pref"}})[0].key == "2"
    # paging without a query: stored order
    everything = store.search((), limit=10)
    assert len(everything) == 4
    assert store.search((), limit=2, offset=1) == everything[1:3]


@pytest.mark.parametrize("text", ["same text", "other text"])
def test_issue12_langgraph_put_racing_another_writer_updates(
    store: EngramStore, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    store.put(("race",), "k", {"text": "same text", "who": "first"})
    # a second writer that looked before the first one stored the item
    monkeypatch.setattr(EngramStore, "_find", lambda self, namespace, key: None)
    store.put(("race",), "k", {"text": text, "who": "second"})
    monkeypatch.undo()
    item = store.get(("race",), "k")
    assert item is not None and item.value == {"text": text, "who": "second"}
    assert store.memory.stats().memories == 1


def test_issue12_langgraph_resent_id_is_existing_not_a_store_error(backend: Any) -> None:
    """The store under a racing put: an entry re-sent with a stored memory's id and identity
    is that memory (``existing``), not a second insert (SQLite raised "constraint failed")."""
    memory = Memory(backend.open(), embedder=None)
    entry = {"id": "mem_fixed", "content": "same text", "session_id": "s1", "tags": ["a"]}
    (first,) = memory.remember_results([entry])
    again, twice = memory.remember_results([entry, {**entry, "tags": ["b"]}])
    assert first.created and first.memory.id == "mem_fixed"
    assert again.status == "existing" and again.memory.id == "mem_fixed"
    assert twice.status == "merged" and set(twice.memory.tags) == {"a", "b"}
    assert memory.stats().memories == 1
    assert [h.memory.id for h in memory.recall("same text")] == ["mem_fixed"]
    memory.close()


def test_issue12_langgraph_list_namespaces(store: EngramStore) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]:
        store.put(ns, "k", {"text": "/".join(ns)})
    assert store.list_namespaces() == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "x"),
        ("z", "b", "c"),
    ]
    assert store.list_namespaces(prefix=("a",)) == [("a", "b", "c"), ("a", "b", "d"), ("a", "x")]
    assert store.list_namespaces(suffix=("c",)) == [("a", "b", "c"), ("z", "b", "c")]
    assert store.list_namespaces(prefix=("*", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("z", "b", "c"),
    ]
    assert store.list_namespaces(prefix=("a", "*", "d")) == [("a", "b", "d")]
    assert store.list_namespaces(prefix=("a",), suffix=("b", "c")) == [("a", "b", "c")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("z",)]
    assert store.list_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "x")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "x")]


def test_issue12_langgraph_batch_and_abatch(store: EngramStore) -> None:
    results = store.batch(
        [
            PutOp(("n",), "a", {"text": "apples are red"}),
            GetOp(("n",), "a"),
            SearchOp(("n",), None, 10, 0, "apples"),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("n",)),)),
            PutOp(("n",), "a", None),
            GetOp(("n",), "a"),
        ]
    )
    assert results[0] is None and results[4] is None and results[5] is None
    assert results[1].value == {"text": "apples are red"}  # type: ignore[union-attr]
    assert [i.key for i in results[2]] == ["a"]  # type: ignore[union-attr]
    assert results[3] == [("n",)]

    async def run() -> list[Any]:
        await store.aput(("n",), "b", {"text": "bananas are yellow"})
        return [
            await store.aget(("n",), "b"),
            await store.asearch(("n",), query="bananas"),
            await store.alist_namespaces(),
        ]

    got, found, spaces = asyncio.run(run())
    assert got.value == {"text": "bananas are yellow"}
    assert [i.key for i in found] == ["b"]
    assert spaces == [("n",)]


def test_issue12_langgraph_engram_namespaces_isolated(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "data", embedder=None)
    one = EngramStore(memory, namespace="tenant-1")
    two = EngramStore(memory, namespace="tenant-2")
    one.put(("docs",), "k", {"text": "tenant one secret plan"})
    assert two.get(("docs",), "k") is None
    assert two.search(("docs",), query="secret plan") == []
    assert two.list_namespaces() == []
    assert one.get(("docs",), "k") is not None
    memory.close()


def test_issue12_langgraph_bad_input_is_typed(store: EngramStore) -> None:
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("a.b",), "k", {"text": "x"})])
    with pytest.raises(InvalidInputError):
        store.batch([PutOp((), "k", {"text": "x"})])
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("langgraph", "x"), "k", {"text": "x"})])
    with pytest.raises(InvalidInputError):
        store.batch([SearchOp(("a",), None, -1, 0, None)])
    with pytest.raises(InvalidInputError):
        store.search(("a",), filter={"n": {"$regex": "x"}})  # validated even with no items
    assert store.memory.stats().memories == 0


class State(TypedDict, total=False):
    user: str
    message: str
    answer: str


def _graph(store: EngramStore) -> Any:
    def write(state: State, runtime: Runtime) -> State:
        assert runtime.store is not None
        runtime.store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": state["message"]})
        return {}

    def read(state: State, runtime: Runtime) -> State:
        assert runtime.store is not None
        hits = runtime.store.search(("memories", state["user"]), query=state["message"], limit=1)
        return {"answer": hits[0].value["text"] if hits else ""}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("read", read)
    builder.add_edge(START, "write")
    builder.add_edge("write", "read")
    builder.add_edge("read", END)
    return builder.compile(store=store)


def test_issue12_langgraph_graph_writes_then_fresh_store_reads(tmp_path: Path) -> None:
    first = EngramStore(tmp_path / "data", embedder="hashing")
    out = _graph(first).invoke({"user": "alice", "message": "my dog is called Rex"})
    assert out["answer"] == "my dog is called Rex"
    first.close()

    second = EngramStore(tmp_path / "data", embedder="hashing")  # a new process, same data
    assert second.list_namespaces() == [("memories", "alice")]
    out = asyncio.run(
        _graph(second).ainvoke({"user": "alice", "message": "what is my dog called?"})
    )
    assert out["answer"] in ("my dog is called Rex", "what is my dog called?")
    hits = second.search(("memories", "alice"), query="dog Rex")
    assert hits[0].value["text"] == "my dog is called Rex"
    assert second.search(("memories", "bob"), query="dog") == []
    second.close()


def test_issue12_langgraph_missing_extra_names_install_command() -> None:
    code = (
        "import sys; sys.modules['langgraph'] = None\n"
        "try:\n    import engramdb.integrations.langgraph\n"
        "except Exception as exc:\n"
        "    from engramdb import InvalidInputError\n"
        "    print(type(exc).__name__, isinstance(exc, InvalidInputError), exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # issue 17: the typed MissingExtraError, still an InvalidInputError
    assert out.stdout.startswith("MissingExtraError True ")
    assert "pip install 'engramdb[langgraph]'" in out.stdout


def test_issue12_langgraph_example_runs(tmp_path: Path, fake_openai: Any) -> None:
    env = {**os.environ, "ENGRAMDB_EMBEDDER": "hashing", "OPENAI_API_KEY": "test"}
    script = str(ROOT / "examples" / "langgraph_store.py")
    fake_openai.default = lambda body: Reply(content="Oolong, as you told me.")
    out = subprocess.run(
        [sys.executable, script, str(tmp_path / "a"), "--base-url", fake_openai.base_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "Oolong, as you told me."
    (request,) = fake_openai.completions
    system = request.body["messages"][0]["content"]
    assert "- my favourite tea is oolong" in system  # recalled from the first run's store
    # without a model, the agent answers with the memory itself
    out = subprocess.run(
        [sys.executable, script, str(tmp_path / "b")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "my favourite tea is oolong"


def _snippet(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(heading)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("doc", ["README.md", "docs/integrations/langgraph.md"])
def test_issue12_langgraph_readme_snippet_runs(doc: str, tmp_path: Path) -> None:
    heading = "### LangGraph" if doc == "README.md" else "# LangGraph"
    code = _snippet(ROOT / doc, heading)
    env = {**os.environ, "ENGRAMDB_EMBEDDER": "hashing"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "Alice's favourite tea is oolong"
