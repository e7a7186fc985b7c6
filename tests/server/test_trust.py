"""Issue 10 items 1, 2 and 4 through the HTTP API, on every backend: tag recall stays within
its tag, identical content merges tags and says so, cursors are opaque and namespace-bound."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Api


def _compat_session(call: Any, session: str, items: list[str]) -> None:
    for text in items:
        r = call(
            "POST", "/api/memory/store", json={"content": text, "tags": [f"session:{session}"]}
        )
        assert r.status_code == 200, r.text


def test_item_01_two_compat_sessions_each_recall_only_their_own_items(api: Api) -> None:
    call = api.as_key(api.key("two-sessions"))  # one key, two sessions: the setup
    alpha = ["alpha likes the red session", "alpha booked session room 4", "alpha note"]
    beta = ["beta likes the blue session", "beta booked session room 9", "beta note"]
    _compat_session(call, "alpha", alpha)
    _compat_session(call, "beta", beta)
    for session, own in (("alpha", alpha), ("beta", beta)):
        r = call("POST", "/api/memory/recall", json={"query": f"session:{session}", "limit": 50})
        assert r.status_code == 200, r.text
        got = [m["content"] for m in r.json()["memories"]]
        assert sorted(got) == sorted(own)
        assert all(m["tags"] == [f"session:{session}"] for m in r.json()["memories"])
        # the explicit exact tags filter: the same answer with an empty query...
        r = call("POST", "/api/memory/recall", json={"tags": [f"session:{session}"], "limit": 50})
        assert sorted(m["content"] for m in r.json()["memories"]) == sorted(own)
        # ...and, with a query, fuzzy hits from the other session never pass it
        r = call(
            "POST",
            "/api/memory/recall",
            json={"query": "booked session room", "tags": f"session:{session}", "limit": 50},
        )
        got = [m["content"] for m in r.json()["memories"]]
        assert got and set(got) <= set(own)
    # /v1 has the same semantics (filters.tags is the exact, all-of tag filter)
    r = call(
        "POST",
        "/v1/memories/recall",
        json={"query": "note", "filters": {"tags": ["session:beta"]}, "mode": "text"},
    )
    assert [h["memory"]["content"] for h in r.json()["hits"]] == ["beta note"]
    r = call("POST", "/v1/memories/recall", json={"query": "session:alpha", "limit": 50})
    assert sorted(h["memory"]["content"] for h in r.json()["hits"]) == sorted(alpha)
    # clearing one session (forget by its exact tag) leaves the other whole
    r = call("POST", "/v1/memories/forget", json={"filters": {"tags": ["session:alpha"]}})
    assert r.json()["count"] == len(alpha)
    r = call("POST", "/api/memory/recall", json={"query": "session:beta", "limit": 50})
    assert sorted(m["content"] for m in r.json()["memories"]) == sorted(beta)
    r = call("POST", "/api/memory/recall", json={"query": "session:alpha", "limit": 50})
    assert r.json()["memories"] == []


def test_item_01_unknown_session_tag_finds_nothing(api: Api) -> None:
    call = api.as_key(api.key("empty-session"))
    _compat_session(call, "alpha", ["alpha session item"])
    r = call("POST", "/api/memory/recall", json={"query": "session:gamma"})
    assert r.status_code == 200 and r.json()["memories"] == []


def test_item_02_http_remember_says_created_or_deduplicated_with_merged_tags(api: Api) -> None:
    call = api.as_key(api.key("dedup"))
    r = call("POST", "/v1/memories", json={"content": "same text", "tags": ["a"]})
    assert r.status_code == 201 and r.json()["status"] == "created"
    assert r.json()["deduplicated"] is False
    first = r.json()["id"]
    r = call("POST", "/v1/memories", json={"content": "same text", "tags": ["b"]})
    body = r.json()
    assert (body["id"], body["status"], body["deduplicated"]) == (first, "merged", True)
    assert body["merged_tags"] == ["b"] and body["tags"] == ["a", "b"]
    r = call("POST", "/v1/memories", json={"content": "same text", "session_id": "s2"})
    assert r.json()["status"] == "created" and r.json()["id"] != first
    r = call(
        "POST",
        "/v1/memories/batch",
        json={"memories": [{"content": "same text", "tags": ["a"]}, {"content": "new one"}]},
    )
    assert [(m["status"], m["deduplicated"]) for m in r.json()["memories"]] == [
        ("existing", True),
        ("created", False),
    ]
    r = call("POST", "/api/memory/store", json={"content": "same text", "tags": "c, a"})
    body = r.json()
    assert (body["id"], body["status"], body["deduplicated"]) == (first, "merged", True)
    assert body["merged_tags"] == ["c"] and body["memory"]["tags"] == ["a", "b", "c"]
    # the compat client storing one text in two sessions finds it from each
    for session in ("one", "two"):
        r = call(
            "POST", "/api/memory/store", json={"content": "hi", "tags": [f"session:{session}"]}
        )
    for session in ("one", "two"):
        r = call("POST", "/api/memory/recall", json={"query": f"session:{session}"})
        assert [m["content"] for m in r.json()["memories"]] == ["hi"]


def test_item_04_cursors_of_one_namespace_are_rejected_in_another(api: Api) -> None:
    a, b = api.as_key(api.key("cursor-a")), api.as_key(api.key("cursor-b"))
    for call in (a, b):
        for n in range(3):
            assert call("POST", "/v1/memories", json={"content": f"note {n}"}).status_code == 201
            items = {"items": [{"role": "user", "content": "hi"}]}
            assert call("POST", f"/v1/sessions/s{n}/items", json=items).status_code == 201
    memories = a("GET", "/v1/memories", params={"limit": 1}).json()["next_cursor"]
    sessions = a("GET", "/v1/sessions", params={"limit": 1}).json()["next_cursor"]
    compat = a("GET", "/api/memory/list", params={"limit": 1}).json()["next_cursor"]
    assert memories and sessions and compat
    assert a("GET", "/v1/memories", params={"cursor": memories}).status_code == 200
    assert a("GET", "/v1/sessions", params={"cursor": sessions}).status_code == 200
    for path, cursor in (
        ("/v1/memories", memories),
        ("/v1/sessions", sessions),
        ("/api/memory/list", compat),
        ("/v1/sessions", memories),  # nor is one kind of cursor another
    ):
        r = b("GET", path, params={"cursor": cursor})
        assert r.status_code == 422, (path, r.text)
        assert "cursor" in r.json()["error"]["message"]
