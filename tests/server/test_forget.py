"""/v1 forget routes: facts can be deleted (item 9); a time range is not a scope (item 11)."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Api


def _error(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    return body["error"]  # type: ignore[no-any-return]


def test_item_09_delete_triple_and_scoped_fact_forget(api: Api) -> None:
    call = api.as_key(api.key())
    other = api.as_key(api.key("other"))
    learn = {"subject": "ann", "predicate": "lives_in", "object": "Oslo", "single_valued": True}
    oslo = call("POST", "/v1/triples", json=learn).json()["triple"]
    rome = call("POST", "/v1/triples", json={**learn, "object": "Rome"}).json()["triple"]
    tea = call(
        "POST", "/v1/triples", json={"subject": "ann", "predicate": "likes", "object": "tea"}
    )
    tea_id = tea.json()["triple"]["id"]
    facts = call("GET", "/v1/memories?tag=fact").json()["memories"]
    assert {m["metadata"]["triple_id"] for m in facts} == {rome["id"], tea_id}

    assert other("DELETE", f"/v1/triples/{tea_id}").status_code == 404  # another namespace
    r = call("DELETE", f"/v1/triples/{tea_id}")
    assert r.status_code == 200 and r.json() == {"ids": [tea_id], "count": 1, "dry_run": False}
    assert call("DELETE", f"/v1/triples/{tea_id}").status_code == 404
    assert call("GET", "/v1/triples?subject=ann&predicate=likes").json()["triples"] == []
    hits = call("POST", "/v1/memories/recall", json={"query": "tea", "mode": "text"}).json()
    assert hits["hits"] == []

    r = call("POST", "/v1/triples/forget", json={})
    assert r.status_code == 422 and "pattern" in _error(r)["message"]
    dry = call("POST", "/v1/triples/forget", json={"subject": "ann", "dry_run": True}).json()
    assert dry["dry_run"] is True and sorted(dry["ids"]) == sorted([oslo["id"], rome["id"]])
    assert other("POST", "/v1/triples/forget", json={"subject": "ann"}).json()["count"] == 0
    done = call("POST", "/v1/triples/forget", json={"subject": "ann"}).json()
    assert done["count"] == 2 and done["dry_run"] is False
    history = call("GET", "/v1/triples?subject=ann&include_history=true").json()["triples"]
    assert history == []
    assert call("GET", "/v1/memories?tag=fact").json()["memories"] == []
    assert call("POST", "/v1/triples/forget", json={"subject": 5}).status_code == 422


def test_item_09_forgetting_a_fact_memory_removes_the_fact(api: Api) -> None:
    call = api.as_key(api.key())
    call("POST", "/v1/triples", json={"subject": "ann", "predicate": "likes", "object": "tea"})
    (memory,) = call("GET", "/v1/memories?tag=fact").json()["memories"]
    assert call("DELETE", f"/v1/memories/{memory['id']}").status_code == 200
    assert call("GET", "/v1/triples?subject=ann").json()["triples"] == []


def test_item_11_time_range_is_not_a_scope(api: Api) -> None:
    call = api.as_key(api.key())
    body = {
        "memories": [
            {"content": f"note {n}", "user_id": "ann", "occurred_at": f"2024-01-0{n + 1}T00:00:00Z"}
            for n in range(4)
        ]
    }
    assert call("POST", "/v1/memories/batch", json=body).status_code == 201
    for filters in (
        {"since": "2000-01-01T00:00:00Z"},
        {"until": "2100-01-01T00:00:00Z"},
        {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
    ):
        r = call("POST", "/v1/memories/forget", json={"filters": filters})
        assert r.status_code == 422 and "scope" in _error(r)["message"], filters
    assert call("POST", "/v1/memories/forget", json={}).status_code == 422
    assert len(call("GET", "/v1/memories").json()["memories"]) == 4
    window = {"filters": {"until": "2024-01-03T00:00:00Z"}, "all": True}
    dry = call("POST", "/v1/memories/forget", json={**window, "dry_run": True}).json()
    assert dry["count"] == 2 and dry["dry_run"] is True
    assert call("POST", "/v1/memories/forget", json=window).json()["count"] == 2
    assert call("POST", "/v1/memories/forget", json={"all": True}).json()["count"] == 2
    assert call("GET", "/v1/memories").json()["memories"] == []
    assert call("POST", "/v1/memories/forget", json={"all": "yes"}).status_code == 422


def test_item_10_forget_drops_recorded_responses_that_quote_it(api: Api) -> None:
    call = api.as_key(api.key())

    def post(path: str, body: dict[str, Any], key: str) -> Any:
        return call("POST", path, json=body, headers={"Idempotency-Key": key})

    def replayed(r: Any) -> bool:
        return bool(r.headers.get("idempotent-replayed") == "true")

    secret = {"content": "the vault code is qxvault991"}
    kept = {"content": "an ordinary note"}
    fact = {"subject": "ann", "predicate": "pin_is", "object": "qxpin4242"}
    first = post("/v1/memories", secret, "k-secret")
    post("/v1/memories", kept, "k-kept")
    learned = post("/v1/triples", fact, "k-fact").json()["triple"]
    post("/v1/sessions/s1/items", {"items": [{"role": "user", "content": "hi"}]}, "k-items")
    assert replayed(post("/v1/memories", secret, "k-secret"))  # recorded, with the content

    assert call("DELETE", f"/v1/memories/{first.json()['id']}").status_code == 200
    assert call("DELETE", f"/v1/triples/{learned['id']}").status_code == 200
    # the responses that quoted them are gone: a retry runs again instead of replaying them
    again = post("/v1/memories", secret, "k-secret")
    assert again.status_code == 201 and not replayed(again)
    assert not replayed(post("/v1/triples", fact, "k-fact"))
    # other recorded responses stay
    assert replayed(post("/v1/memories", kept, "k-kept"))
    items = {"items": [{"role": "user", "content": "hi"}]}
    assert replayed(post("/v1/sessions/s1/items", items, "k-items"))
