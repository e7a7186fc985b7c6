"""A LangGraph graph with engramdb as its long-term store.

One node remembers what the user says (through the store LangGraph injects), another
searches the store with engramdb's hybrid recall and answers from what it finds. A second
run, with a fresh store over the same data directory, still knows what the first one stored.

    pip install 'engramdb[langgraph]'
    python examples/langgraph_store.py [DATA_DIR]
"""

from __future__ import annotations

import sys
import uuid
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from engramdb.integrations.langgraph import EngramStore


class State(TypedDict, total=False):
    user: str
    message: str
    answer: str


def remember(state: State, runtime: Runtime) -> State:
    """Store a statement ("remember: ...") under the user's namespace."""
    assert runtime.store is not None
    text = state["message"]
    if text.lower().startswith("remember:"):
        fact = text.split(":", 1)[1].strip()
        runtime.store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": fact})
    return {}


def answer(state: State, runtime: Runtime) -> State:
    """Answer a question from the user's memories (a real agent would prompt a model)."""
    assert runtime.store is not None
    if state["message"].lower().startswith("remember:"):
        return {"answer": "Noted."}
    hits = runtime.store.search(("memories", state["user"]), query=state["message"], limit=1)
    return {"answer": hits[0].value["text"] if hits else "I don't know yet."}


def build(store: EngramStore) -> Any:
    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("answer", answer)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "answer")
    graph.add_edge("answer", END)
    return graph.compile(store=store)


def main(path: str) -> None:
    store = EngramStore(path, embedder="hashing")
    build(store).invoke({"user": "alice", "message": "remember: my favourite tea is oolong"})
    store.close()

    # a new process (here: a new store object) over the same data
    store = EngramStore(path, embedder="hashing")
    result = build(store).invoke({"user": "alice", "message": "which tea is my favourite?"})
    print(result["answer"])
    store.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "langgraph-memories")
