"""The HTTP API end to end through the real app: v1, compatibility API, keys, errors,
idempotency, quotas."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.live_server import ADMIN_KEY
from tests.server.conftest import Api, MakeApi

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

JSON = {"Content-Type": "application/json"}


def error_of(r: Any) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return dict(body["error"])


# -- compatibility API ---------------------------------------------------------------------


def test_compat_flow_as_a_hosted_api_client_uses_it(api: Api) -> None:
    c = api.client
    assert c.get("/health").json()["status"] == "healthy"
    r = c.post("/api/keys/register", json={"agent_name": "my-agent", "purpose": "memory"})
    assert r.status_code == 200
    key = r.json()["api_key"]
    h = {"X-API-Key": key}
    tag = "session:user-123"
    for n in range(120):  # past 100: the bug in the seed client was a 100 cap
        item = json.dumps({"role": "user", "content": f"turn {n}", "_seq": n})
        r = c.post("/api/memory/store", json={"content": item, "tags": [tag]}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True and r.json()["memory_id"]
    c.post("/api/memory/store", json={"content": "unrelated note", "tags": ["other"]}, headers=h)
    r = c.post("/api/memory/recall", json={"query": tag, "limit": 10000}, headers=h)
    memories = r.json()["memories"][:120]  # ranked: the tagged ones first
    assert {json.loads(m["content"])["_seq"] for m in memories} == set(range(120))
    for m in memories:
        assert {"id", "content", "tags", "importance", "created_at"} <= set(m)
        assert m["tags"] == [tag]
    r = c.post("/api/memory/recall", json={"query": "unrelated"}, headers=h)
    assert r.json()["memories"][0]["content"] == "unrelated note"
    r = c.post(
        "/api/memory/learn",
        json={"subject": "user", "predicate": "prefers", "object": "Python"},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["triple"]["object"] == "Python"
    page = c.get("/api/memory/list?limit=50&offset=100", headers=h).json()
    assert page["count"] == 22 and page["total"] == 122  # 120 + note + the fact's memory
    first = c.get("/api/memory/list?limit=100", headers=h).json()
    rest = c.get(f"/api/memory/list?limit=100&cursor={first['next_cursor']}", headers=h).json()
    ids = [m["id"] for m in first["memories"] + rest["memories"]]
    assert len(ids) == len(set(ids)) == 122
    stats = c.get("/api/memory/stats", headers=h).json()
    assert stats["memories"] == 122 and stats["triples"] == 1
    assert stats["recalls_today"] == 2


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for path in ("/v1/memories/recall", "/v1/sessions/{session_id}/items", "/api/memory/store"):
        assert path in spec["paths"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_compat_recall_limit_bounds(api: Api) -> None:
    call = api.as_key(api.key())
    assert (
        call("POST", "/api/memory/recall", json={"query": "x", "limit": 10000}).status_code == 200
    )
    r = call("POST", "/api/memory/recall", json={"query": "x", "limit": 10001})
    assert r.status_code == 422 and "limit" in error_of(r)["message"]


def test_registration_modes(make_api: MakeApi) -> None:
    closed = make_api(registration="closed")
    r = closed.client.post("/api/keys/register", json={"agent_name": "a"})
    assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
    admin = make_api(registration="admin")
    assert admin.client.post("/api/keys/register", json={"agent_name": "a"}).status_code == 401
    r = admin.client.post(
        "/api/keys/register", json={"agent_name": "a"}, headers={"X-API-Key": admin.key()}
    )
    assert r.status_code == 403
    r = admin.client.post(
        "/api/keys/register", json={"agent_name": "a"}, headers={"X-API-Key": ADMIN_KEY}
    )
    assert r.status_code == 200 and r.json()["api_key"].startswith("egm_")


# -- v1 memories ---------------------------------------------------------------------------


def test_memories_lifecycle(api: Api) -> None:
    call = api.as_key(api.key())
    r = call(
        "POST",
        "/v1/memories",
        json={
            "content": "Caroline went to the LGBTQ support group",
            "user_id": "caroline",
            "tags": ["Events"],
            "metadata": {"source": "chat"},
            "importance": 0.8,
            "occurred_at": "2023-05-07T13:56:00Z",
        },
    )
    assert r.status_code == 201, r.text
    mem = r.json()
    assert mem["user_id"] == "caroline" and mem["version"] == 1
    assert mem["occurred_at"].startswith("2023-05-07T13:56:00")
    assert mem.pop("status") == "created" and mem.pop("deduplicated") is False
    assert mem.pop("merged_tags") == []
    assert call("GET", f"/v1/memories/{mem['id']}").json() == mem
    again = call("POST", "/v1/memories", json={"content": mem["content"], "user_id": "caroline"})
    assert again.json()["id"] == mem["id"]  # identical content in one scope: stored once
    hits = call("POST", "/v1/memories/recall", json={"query": "support group", "explain": True})
    hit = hits.json()["hits"][0]
    assert hit["memory"]["id"] == mem["id"] and hit["score"] > 0 and hit["explain"]
    r = call("PATCH", f"/v1/memories/{mem['id']}", json={"content": "Caroline joined a group"})
    assert r.json()["version"] == 2
    versions = call("GET", f"/v1/memories/{mem['id']}/history").json()["versions"]
    assert [v["content"] for v in versions] == [mem["content"]]
    r = call("DELETE", f"/v1/memories/{mem['id']}")
    assert r.json() == {"ids": [mem["id"]], "count": 1, "dry_run": False}
    assert call("GET", f"/v1/memories/{mem['id']}").status_code == 404
    assert call("DELETE", f"/v1/memories/{mem['id']}").status_code == 404


def test_batch_is_all_or_nothing_and_list_pages(api: Api) -> None:
    call = api.as_key(api.key())
    batch = [{"content": f"memory {n}", "session_id": "s1"} for n in range(30)]
    bad = [*batch, {"content": "   "}]
    r = call("POST", "/v1/memories/batch", json={"memories": bad})
    assert r.status_code == 422 and error_of(r)["code"] == "validation_error"  # blank content
    assert call("GET", "/v1/memories").json()["memories"] == []
    r = call("POST", "/v1/memories/batch", json={"memories": batch})
    assert r.status_code == 201 and len(r.json()["memories"]) == 30
    seen, cursor = [], None
    while True:
        q = "/v1/memories?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = call("GET", q).json()
        seen += [m["content"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"memory {n}" for n in range(30)]


def test_scoped_forget_with_dry_run(api: Api) -> None:
    call = api.as_key(api.key())
    for user in ("ann", "bob"):
        body = {"memories": [{"content": f"{user} fact {n}", "user_id": user} for n in range(3)]}
        call("POST", "/v1/memories/batch", json=body)
    r = call("POST", "/v1/memories/forget", json={"filters": {}})
    assert r.status_code == 422 and "scope" in error_of(r)["message"]
    dry = call("POST", "/v1/memories/forget", json={"filters": {"user_id": "ann"}, "dry_run": True})
    assert dry.json()["count"] == 3 and dry.json()["dry_run"] is True
    assert len(call("GET", "/v1/memories").json()["memories"]) == 6
    done = call("POST", "/v1/memories/forget", json={"filters": {"user_id": "ann"}})
    assert sorted(done.json()["ids"]) == sorted(dry.json()["ids"])
    left = call("GET", "/v1/memories").json()["memories"]
    assert {m["user_id"] for m in left} == {"bob"}


def test_recall_takes_any_query_text(api: Api) -> None:
    call = api.as_key(api.key())
    call("POST", "/v1/memories", json={"content": "the NEAR operator and quotes"})
    for query in ['"', "NEAR(a b)", "a AND OR NOT", "*", "tag:x", "((", "😀", "\u0000", "x" * 4000]:
        for mode in ("hybrid", "text", "vector"):
            r = call("POST", "/v1/memories/recall", json={"query": query, "mode": mode})
            assert r.status_code == 200, (query, mode, r.text)


# -- v1 sessions ---------------------------------------------------------------------------


@pytest.mark.parametrize("session_id", ["plain", "a/b", "50%_off", "ünï cødé ✓", "q?x=1#f", ".."])
def test_session_routes_with_awkward_ids(api: Api, session_id: str) -> None:
    call = api.as_key(api.key())
    base = f"/v1/sessions/{quote(session_id, safe='').replace('.', '%2E')}"
    items = [{"role": "user", "content": f"m{n}", "nested": {"z": 1, "a": [n]}} for n in range(5)]
    r = call("POST", f"{base}/items", json={"items": items})
    assert r.status_code == 201 and r.json() == {"added": 5}, r.text
    assert call("GET", f"{base}/items").json()["items"] == items
    assert call("GET", f"{base}/items?limit=2").json()["items"] == items[-2:]
    assert call("GET", f"{base}/items?limit=0").json()["items"] == []
    assert call("GET", base).json()["item_count"] == 5
    listed = call("GET", "/v1/sessions").json()["sessions"]
    assert [s["session_id"] for s in listed] == [session_id]
    assert call("POST", f"{base}/pop").json()["item"] == items[-1]
    assert call("POST", f"{base}/pop").json()["item"] == items[-2]
    assert call("POST", f"{base}/clear").json() == {"removed": 3}
    assert call("POST", f"{base}/pop").json() == {"item": None}
    assert call("DELETE", base).json() == {"deleted": True}
    assert call("GET", base).status_code == 404


def test_session_items_keep_their_exact_json(api: Api) -> None:
    call = api.as_key(api.key())
    raw = '{"items": [{"z": 1, "a": {"y": [1.5, -0.0, 1e300, "\\u00e9"], "b": null}, "m": true}]}'
    r = call("POST", "/v1/sessions/s/items", content=raw, headers=JSON)
    assert r.status_code == 201
    got = call("GET", "/v1/sessions/s/items").text
    assert got == '{"items":[{"z":1,"a":{"y":[1.5,-0.0,1e+300,"é"],"b":null},"m":true}]}'


def test_bad_session_batches_store_nothing(api: Api) -> None:
    call = api.as_key(api.key())
    for body in (
        '{"items": [{"ok": 1}, 5]}',
        '{"items": [{"ok": 1}, {"x": NaN}]}',
        '{"items": [{"ok": 1}, {"x": "\\ud800"}]}',
        '{"items": {"ok": 1}}',
    ):
        r = call("POST", "/v1/sessions/s/items", content=body, headers=JSON)
        assert r.status_code in (400, 422), (body, r.text)
        error_of(r)
    assert call("GET", "/v1/sessions/s/items").status_code == 404  # nothing was ever stored


def test_session_list_pages(api: Api) -> None:
    call = api.as_key(api.key())
    for n in range(12):
        call("POST", f"/v1/sessions/s{n}/items", json={"items": [{"n": n}]})
    seen, cursor = [], None
    while True:
        page = call("GET", "/v1/sessions?limit=5" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [s["session_id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"s{n}" for n in reversed(range(12))]
    assert call("GET", "/v1/sessions?cursor=%%%").status_code == 422  # not a cursor's shape


# -- triples -------------------------------------------------------------------------------


def test_triples(api: Api) -> None:
    call = api.as_key(api.key())
    body = {"subject": "ann", "predicate": "lives_in", "object": "Paris", "single_valued": True}
    first = call("POST", "/v1/triples", json=body).json()
    assert first["created"] is True and first["superseded"] == []
    assert call("POST", "/v1/triples", json=body).json()["created"] is False
    moved = call("POST", "/v1/triples", json={**body, "object": "Rome"}).json()
    assert [t["object"] for t in moved["superseded"]] == ["Paris"]
    assert moved["superseded"][0]["valid_to"] is not None
    call("POST", "/v1/triples", json={"subject": "Rome", "predicate": "in", "object": "Italy"})
    facts = call("GET", "/v1/triples?subject=ann").json()["triples"]
    assert [t["object"] for t in facts] == ["Rome"]
    history = call("GET", "/v1/triples?subject=ann&include_history=true").json()["triples"]
    assert {t["object"] for t in history} == {"Paris", "Rome"}
    near = call("GET", "/v1/triples/neighbors?entity=ann&depth=2").json()
    assert set(near["entities"]) == {"Rome", "Italy"}
    assert call("GET", "/v1/triples/neighbors?entity=ann&depth=9").status_code == 422


# -- errors --------------------------------------------------------------------------------


def test_error_bodies_are_typed_and_never_500(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=4096)
    call = api.as_key(api.key())
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/v1/memories", {"content": "{not json", "headers": JSON}, 400, "invalid_json"),
        ("POST", "/v1/memories", {"json": {"content": 5}}, 422, "validation_error"),
        ("POST", "/v1/memories", {"json": {}}, 422, "validation_error"),
        ("POST", "/v1/memories", {"json": {"content": "x", "colour": 1}}, 422, "validation_error"),
        (
            "POST",
            "/v1/memories",
            {"json": {"content": "x", "importance": "0.5"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/v1/memories",
            {"json": {"content": "x", "importance": 7}},
            422,
            "validation_error",
        ),
        ("POST", "/v1/memories", {"json": {"content": ""}}, 422, "validation_error"),
        ("POST", "/v1/memories", {"json": {"content": "x" * 5000}}, 413, "body_too_large"),
        ("POST", "/v1/memories", {"json": [1, 2]}, 422, "validation_error"),
        ("GET", "/v1/memories?limit=100000000", {}, 422, "validation_error"),
        ("GET", "/v1/memories?limit=-1", {}, 422, "validation_error"),
        ("GET", "/v1/memories?cursor=-5", {}, 422, "validation_error"),
        ("GET", "/v1/memories/-1", {}, 404, "not_found"),
        ("GET", "/v1/sessions/s/items?limit=-3", {}, 422, "validation_error"),
        ("GET", "/v1/nothing", {}, 404, "not_found"),
        ("PUT", "/v1/memories", {}, 405, "method_not_allowed"),
        ("PATCH", "/v1/memories/mem_x", {"json": {}}, 422, "validation_error"),
        (
            "POST",
            "/v1/memories/recall",
            {"json": {"query": "x", "mode": "psychic"}},
            422,
            "validation_error",
        ),
    ]
    for method, path, kwargs, status, code in cases:
        r = call(method, path, **kwargs)
        assert (r.status_code, error_of(r)["code"]) == (status, code), (method, path, r.text)
    assert (
        "colour"
        in error_of(call("POST", "/v1/memories", json={"content": "x", "colour": 1}))["message"]
    )
    c = api.client
    r = c.get("/v1/memories")
    assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
    r = c.get("/v1/memories", headers={"X-API-Key": "egm_wrong"})
    assert r.status_code == 401
    r = c.get("/v1/memories", headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
    key = api.key()
    assert c.get("/v1/stats", headers={"Authorization": f"Bearer {key}"}).status_code == 200


# -- keys ----------------------------------------------------------------------------------


def test_keys_are_hashed_bound_and_revocable(api: Api) -> None:
    c, admin = api.client, {"X-API-Key": ADMIN_KEY}
    r = c.post(
        "/v1/keys",
        json={"name": "svc", "namespace": "team-a", "limits": {"max_memories": 100}},
        headers=admin,
    )
    assert r.status_code == 201
    secret, key = r.json()["api_key"], r.json()["key"]
    assert key["namespace"] == "team-a" and secret.startswith(key["prefix"])
    stored = api.memory.store.key_list("team-a")
    assert [k.id for k in stored] == [key["id"]]
    assert secret not in repr(stored)  # only the hash is kept
    own = {"X-API-Key": secret}
    sibling = c.post("/v1/keys", json={"name": "rotated"}, headers=own).json()
    assert sibling["key"]["namespace"] == "team-a"
    r = c.post("/v1/keys", json={"name": "x", "namespace": "team-b"}, headers=own)
    assert r.status_code == 403
    r = c.post("/v1/keys", json={"name": "x", "limits": {"max_memories": 10**6}}, headers=own)
    assert r.status_code == 403
    assert len(c.get("/v1/keys", headers=own).json()["keys"]) == 2
    assert c.get("/v1/keys?namespace=other", headers=own).status_code == 403
    other = api.key()
    r = c.delete(f"/v1/keys/{key['id']}", headers={"X-API-Key": other})
    assert r.status_code == 404  # another namespace's key is invisible
    r = c.delete(f"/v1/keys/{key['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["key"]["revoked_at"]
    r = c.get("/v1/stats", headers=own)
    assert r.status_code == 401 and "revoked" in error_of(r)["message"]
    assert c.get("/v1/stats", headers={"X-API-Key": sibling["api_key"]}).status_code == 200


# -- idempotency ---------------------------------------------------------------------------


def test_idempotent_retries_write_once(api: Api) -> None:
    call = api.as_key(api.key())
    h = {"Idempotency-Key": "req-1"}
    first = call("POST", "/v1/memories", json={"content": "once", "tags": ["a"]}, headers=h)
    retry = call("POST", "/v1/memories", json={"content": "once", "tags": ["a"]}, headers=h)
    assert retry.status_code == first.status_code == 201
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    r = call("POST", "/v1/memories", json={"content": "different"}, headers=h)
    assert r.status_code == 409 and error_of(r)["code"] == "idempotency_conflict"
    for _ in range(3):
        r = call(
            "POST",
            "/v1/sessions/s/items",
            json={"items": [{"n": 1}]},
            headers={"Idempotency-Key": "add-1"},
        )
        assert r.status_code == 201
    assert call("GET", "/v1/sessions/s/items").json()["items"] == [{"n": 1}]
    call("POST", "/v1/sessions/s/items", json={"items": [{"n": 2}]})
    popped = [
        call("POST", "/v1/sessions/s/pop", headers={"Idempotency-Key": "pop-1"}).json()
        for _ in range(3)
    ]
    assert popped == [{"item": {"n": 2}}] * 3
    assert call("GET", "/v1/sessions/s/items").json()["items"] == [{"n": 1}]
    # a failed request is not recorded: the corrected retry runs
    bad = call("POST", "/v1/memories", json={"content": ""}, headers={"Idempotency-Key": "k2"})
    assert bad.status_code == 422
    r = call("POST", "/v1/memories", json={"content": ""}, headers={"Idempotency-Key": "k2"})
    assert r.status_code == 422 and "idempotent-replayed" not in r.headers
    # keys are per namespace: another tenant's identical key is its own request
    other = api.as_key(api.key())
    r = other("POST", "/v1/memories", json={"content": "once", "tags": ["a"]}, headers=h)
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]


# -- quotas --------------------------------------------------------------------------------


def test_memory_and_recall_quotas(make_api: MakeApi) -> None:
    api = make_api(max_memories=3, recalls_per_day=2)
    call = api.as_key(api.key())
    for n in range(3):
        assert call("POST", "/v1/memories", json={"content": f"m{n}"}).status_code == 201
    r = call("POST", "/v1/memories", json={"content": "m3"})
    assert r.status_code == 429 and error_of(r)["code"] == "quota_exceeded"
    assert "memory quota of 3" in error_of(r)["message"] and int(r.headers["retry-after"]) > 0
    r = call("POST", "/api/memory/store", json={"content": "m3"})
    assert r.status_code == 429
    r = call("POST", "/v1/memories/batch", json={"memories": [{"content": "a"}]})
    assert r.status_code == 429
    assert call("GET", "/v1/memories").json()["memories"].__len__() == 3  # nothing dropped
    for _ in range(2):
        assert call("POST", "/v1/memories/recall", json={"query": "m1"}).status_code == 200
    r = call("POST", "/api/memory/recall", json={"query": "m1"})
    assert r.status_code == 429 and "daily recall quota of 2" in error_of(r)["message"]
    assert 0 < int(r.headers["retry-after"]) <= 86401
    stats = call("GET", "/v1/stats").json()
    assert stats["usage"] == {"memories": 3, "facts": 0, "recalls_today": 2}
    assert stats["remaining"] == {"memories": 0, "facts": None, "recalls_today": 0}
    assert stats["limits"]["max_memories"] == 3
    # an admin-set per-key limit overrides the default
    roomy = api.as_key(api.key(max_memories=10, recalls_per_day=None))
    assert roomy("POST", "/v1/memories", json={"content": "x"}).status_code == 201
    compat = roomy("GET", "/api/memory/stats").json()
    assert compat["remaining"]["memories"] == 9 and compat["remaining"]["recalls_today"] is None


def test_requests_per_second(make_api: MakeApi) -> None:
    api = make_api(requests_per_second=2)
    call = api.as_key(api.key())
    codes = [call("GET", "/v1/stats").status_code for _ in range(12)]
    assert codes[:4] == [200] * 4  # the burst
    assert 429 in codes
    r = call("GET", "/v1/stats")
    if r.status_code == 429:
        assert error_of(r)["code"] == "rate_limited" and "2 requests per second" in r.text
        assert int(r.headers["retry-after"]) >= 1
