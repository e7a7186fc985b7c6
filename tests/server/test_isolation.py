"""One namespace's key can neither read nor change another namespace's data, through any
endpoint, on every backend."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Api

SECRET = "the launch code is 0000"


def _seed(call: Any) -> dict[str, str]:
    mem = call(
        "POST",
        "/v1/memories",
        json={"content": SECRET, "user_id": "alice", "session_id": "chat", "tags": ["secret"]},
    ).json()
    call("POST", "/v1/sessions/chat/items", json={"items": [{"role": "user", "content": SECRET}]})
    fact = call(
        "POST", "/v1/triples", json={"subject": "alice", "predicate": "knows", "object": "code"}
    ).json()["triple"]
    call("POST", "/api/memory/store", json={"content": SECRET + " (compat)", "tags": ["secret"]})
    return {"memory": mem["id"], "fact": fact["id"]}


def test_every_endpoint_keeps_namespaces_apart(api: Api) -> None:
    a, b = api.as_key(api.key("a")), api.as_key(api.key("b"))
    owned = _seed(a)
    before = a("GET", "/v1/stats").json()
    mid = owned["memory"]
    a_keys = a("GET", "/v1/keys").json()["keys"]

    denied: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/memories/{mid}", {}),
        ("PATCH", f"/v1/memories/{mid}", {"json": {"content": "hijacked"}}),
        ("GET", f"/v1/memories/{mid}/history", {}),
        ("DELETE", f"/v1/memories/{mid}", {}),
        ("GET", "/v1/sessions/chat", {}),
        ("DELETE", f"/v1/keys/{a_keys[0]['id']}", {}),
        ("GET", "/v1/sessions/chat/items", {}),  # b has no such session: 404
        ("GET", f"/v1/keys?namespace={a_keys[0]['namespace']}", {}),
        ("POST", "/v1/keys", {"json": {"name": "x", "namespace": a_keys[0]["namespace"]}}),
    ]
    for method, path, kwargs in denied:
        r = b(method, path, **kwargs)
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
        assert SECRET not in r.text and "alice" not in r.text

    empty: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/memories/recall", {"json": {"query": SECRET}}),
        ("POST", "/v1/memories/recall", {"json": {"query": "secret", "mode": "text"}}),
        ("POST", "/v1/memories/recall", {"json": {"query": "launch", "mode": "vector"}}),
        ("POST", "/v1/memories/recall", {"json": {"query": "x", "filters": {"user_id": "alice"}}}),
        ("POST", "/api/memory/recall", {"json": {"query": "secret", "limit": 10000}}),
        ("GET", "/v1/memories?limit=10000", {}),
        ("GET", "/v1/memories?user_id=alice&tag=secret", {}),
        ("GET", "/api/memory/list?limit=10000", {}),
        ("GET", "/v1/sessions", {}),
        ("POST", "/v1/sessions/chat/pop", {}),
        ("POST", "/v1/sessions/chat/clear", {}),
        ("DELETE", "/v1/sessions/chat", {}),
        ("POST", "/v1/memories/forget", {"json": {"filters": {"user_id": "alice"}}}),
        ("POST", "/v1/memories/forget", {"json": {"filters": {"tags": ["secret"]}}}),
        ("GET", "/v1/triples?subject=alice", {}),
        ("GET", "/v1/triples?include_history=true", {}),
        ("GET", "/v1/triples/neighbors?entity=alice&depth=3", {}),
    ]
    for method, path, kwargs in empty:
        r = b(method, path, **kwargs)
        assert r.status_code == 200, (method, path, r.text)
        assert SECRET not in r.text and "alice" not in r.text.replace('"entity":"alice"', ""), (
            method,
            path,
            r.text,
        )
    stats_b = b("GET", "/v1/stats").json()
    assert stats_b["memories"] == stats_b["triples"] == stats_b["sessions"] == 0
    compat_b = b("GET", "/api/memory/stats").json()
    assert compat_b["memories"] == 0

    # b's writes land in b's namespace only, even under a's ids and names
    b("POST", "/v1/sessions/chat/items", json={"items": [{"role": "user", "content": "b"}]})
    b("POST", "/v1/triples", json={"subject": "alice", "predicate": "knows", "object": "nothing"})
    assert b("GET", "/v1/sessions/chat/items").json()["items"] == [{"role": "user", "content": "b"}]

    # a's data is untouched
    assert a("GET", "/v1/stats").json()["memories"] == before["memories"]
    assert a("GET", f"/v1/memories/{mid}").json()["content"] == SECRET
    assert a("GET", "/v1/sessions/chat/items").json()["items"] == [
        {"role": "user", "content": SECRET}
    ]
    assert [f["object"] for f in a("GET", "/v1/triples?subject=alice").json()["triples"]] == [
        "code"
    ]
    hits = a("POST", "/v1/memories/recall", json={"query": "launch code"}).json()["hits"]
    assert SECRET in {h["memory"]["content"] for h in hits}
    assert a("GET", "/v1/keys").json()["keys"][0]["revoked_at"] is None


def test_the_scoped_facade_refuses_other_namespaces(api: Api) -> None:
    import pytest

    from engramdb import InvalidInputError

    view = api.memory.scoped("tenant-a")
    view.remember("mine")
    with pytest.raises(InvalidInputError, match="bound to namespace"):
        view.recall("mine", namespace="tenant-b")
    with pytest.raises(InvalidInputError, match="bound to namespace"):
        view.forget(filters={"user_id": "x"}, namespace="tenant-b")
    assert [h.memory.content for h in view.recall("mine", mode="text")] == ["mine"]
