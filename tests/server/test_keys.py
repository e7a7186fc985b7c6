"""Who manages keys (issue 10): admin keys manage keys and namespaces but reach no data
(item 5); a namespace key creates keys no larger than itself and revokes only its own
(item 7)."""

from __future__ import annotations

from typing import Any

from tests.live_server import ADMIN_KEY
from tests.server.conftest import Api, MakeApi

ADMIN = {"X-API-Key": ADMIN_KEY}


def new_key(api: Api, headers: dict[str, str], **body: Any) -> Any:
    r = api.client.post("/v1/keys", json={"name": "k", **body}, headers=headers)
    return r


# -- item 5 ---------------------------------------------------------------------------------


def test_item_05_admin_key_reaches_no_namespace_data(api: Api) -> None:
    c = api.client
    secret = "the-tenant's-unique-secret-text"
    made = new_key(api, ADMIN, purpose="tenant").json()
    namespace, tenant = made["key"]["namespace"], {"X-API-Key": made["api_key"]}
    memory_id = c.post("/v1/memories", json={"content": secret}, headers=tenant).json()["id"]
    c.post("/v1/sessions/s1/items", json={"items": [{"text": secret}]}, headers=tenant)
    c.post(
        "/v1/triples", json={"subject": secret, "predicate": "is", "object": "x"}, headers=tenant
    )
    # an admin key creating a key for the existing namespace would be reading its data
    r = new_key(api, ADMIN, namespace=namespace)
    assert r.status_code == 403 and "already exists" in r.json()["error"]["message"]
    assert [
        k["id"] for k in c.get(f"/v1/keys?namespace={namespace}", headers=ADMIN).json()["keys"]
    ] == [made["key"]["id"]]
    # every data route of the API, with every parameter pointing at the tenant's data
    paths = c.get("/openapi.json").json()["paths"]
    body = {
        "content": "x",
        "memories": [{"content": "x"}],
        "query": secret,
        "items": [{"a": 1}],
        "filters": {"user_id": "u"},
        "subject": secret,
        "predicate": "is",
        "object": "x",
    }
    tried = 0
    for path, operations in paths.items():
        if path.startswith("/v1/keys") or path in ("/health", "/api/keys/register", "/v1/limits"):
            continue  # key management and the open routes
        concrete = path.replace("{memory_id}", memory_id).replace("{session_id}", "s1")
        for method in operations:
            r = c.request(
                method.upper(),
                concrete,
                params={"namespace": namespace, "entity": secret, "subject": secret},
                json=body if method in ("post", "patch") else None,
                headers=ADMIN,
            )
            assert r.status_code == 403, (method, path, r.text)
            assert secret not in r.text and r.json()["error"]["code"] == "forbidden"
            tried += 1
    assert tried >= 25
    # and the data is as the tenant left it
    assert len(c.get("/v1/memories", headers=tenant).json()["memories"]) == 2  # + the fact's
    assert c.get("/v1/sessions/s1/items", headers=tenant).json()["items"] == [{"text": secret}]


def test_item_05_admin_key_creates_keys_for_new_namespaces(api: Api) -> None:
    fresh = new_key(api, ADMIN)
    assert fresh.status_code == 201
    named = new_key(api, ADMIN, namespace="team-new", limits={"max_memories": 7})
    assert named.status_code == 201 and named.json()["key"]["namespace"] == "team-new"
    assert named.json()["key"]["created_by"] is None
    again = new_key(api, ADMIN, namespace="team-new")
    assert again.status_code == 403
    # a namespace written by the library (no key yet) holds data: refused as well
    api.memory.scoped("library-ns").remember("written without the server")
    assert new_key(api, ADMIN, namespace="library-ns").status_code == 403


# -- item 7 ---------------------------------------------------------------------------------


def test_item_07_namespace_key_cannot_mint_keys_beyond_its_own_limits(make_api: MakeApi) -> None:
    api = make_api(max_memories=1000)
    parent = new_key(
        api, ADMIN, limits={"max_memories": 10, "recalls_per_day": 50, "requests_per_second": None}
    ).json()
    own = {"X-API-Key": parent["api_key"]}
    for limits in (
        {"max_memories": 11},
        {"max_memories": None},  # unlimited is larger than any number
        {"recalls_per_day": 51},
    ):
        r = new_key(api, own, limits=limits)
        assert r.status_code == 403, limits
        assert "no larger than its own" in r.json()["error"]["message"]
    # a limit left out is the parent's effective one, not the server default
    child = new_key(api, own).json()
    assert child["key"]["limits"]["max_memories"] == 10
    assert child["key"]["limits"]["recalls_per_day"] == 50
    assert child["key"]["created_by"] == parent["key"]["id"]
    # smaller limits are fine; where the parent is unlimited, any value is
    smaller = new_key(api, own, limits={"max_memories": 3, "requests_per_second": 5}).json()
    assert smaller["key"]["limits"]["max_memories"] == 3
    # the grandchild is bounded by its own parent (3), not the grandparent (10)
    r = new_key(api, {"X-API-Key": smaller["api_key"]}, limits={"max_memories": 5})
    assert r.status_code == 403
    stats = api.client.get("/v1/stats", headers={"X-API-Key": child["api_key"]}).json()
    assert stats["limits"]["max_memories"] == 10


def test_item_07_namespace_key_revokes_and_lists_only_its_own_keys(api: Api) -> None:
    c = api.client
    first = new_key(api, ADMIN, namespace="team-k").json()
    a = {"X-API-Key": first["api_key"]}
    b_made = new_key(api, a, name="b").json()
    b = {"X-API-Key": b_made["api_key"]}
    c_made = new_key(api, a, name="c").json()  # b's sibling
    grandchild = new_key(api, b, name="b1").json()
    # b sees itself and what it created, not its parent or its sibling
    listed = {k["id"] for k in c.get("/v1/keys", headers=b).json()["keys"]}
    assert listed == {b_made["key"]["id"], grandchild["key"]["id"]}
    listed = {k["id"] for k in c.get("/v1/keys", headers=a).json()["keys"]}
    assert listed == {first["key"]["id"], b_made["key"]["id"], c_made["key"]["id"]} | {
        grandchild["key"]["id"]
    }
    # b may not revoke its sibling or its parent
    for victim in (c_made["key"]["id"], first["key"]["id"]):
        r = c.delete(f"/v1/keys/{victim}", headers=b)
        assert r.status_code == 403 and "only itself and the keys it created" in r.text
    assert c.get("/v1/stats", headers={"X-API-Key": c_made["api_key"]}).status_code == 200
    # it may revoke what descends from it, and itself
    assert c.delete(f"/v1/keys/{grandchild['key']['id']}", headers=b).status_code == 200
    assert c.get("/v1/stats", headers={"X-API-Key": grandchild["api_key"]}).status_code == 401
    # the parent revokes its child; an admin revokes anything
    assert c.delete(f"/v1/keys/{c_made['key']['id']}", headers=a).status_code == 200
    assert c.delete(f"/v1/keys/{first['key']['id']}", headers=ADMIN).status_code == 200
    assert c.delete(f"/v1/keys/{b_made['key']['id']}", headers=b).status_code == 200
    assert c.get("/v1/stats", headers=b).status_code == 401


def test_item_07_child_keys_share_the_namespace_memory_quota(make_api: MakeApi) -> None:
    api = make_api()
    parent = new_key(api, ADMIN, limits={"max_memories": 2}).json()
    child = new_key(api, {"X-API-Key": parent["api_key"]}).json()
    calls = [api.as_key(parent["api_key"]), api.as_key(child["api_key"])]
    assert calls[0]("POST", "/v1/memories", json={"content": "one"}).status_code == 201
    assert calls[1]("POST", "/v1/memories", json={"content": "two"}).status_code == 201
    for call in calls:
        r = call("POST", "/v1/memories", json={"content": "three"})
        assert r.status_code == 429 and "memory quota of 2" in r.text


def test_item_07_child_keys_share_their_ancestors_recall_allowance(make_api: MakeApi) -> None:
    api = make_api()
    parent = new_key(api, ADMIN, limits={"recalls_per_day": 3}).json()
    children = [new_key(api, {"X-API-Key": parent["api_key"]}).json() for _ in range(3)]
    grandchild = new_key(api, {"X-API-Key": children[0]["api_key"]}).json()
    codes = [
        api.as_key(k["api_key"])("POST", "/v1/memories/recall", json={"query": "x"}).status_code
        for k in [*children, grandchild]
    ]
    # minting keys does not multiply the parent's 3 recalls a day
    assert codes == [200, 200, 200, 429]
    r = api.as_key(parent["api_key"])("POST", "/api/memory/recall", json={"query": "x"})
    assert r.status_code == 429 and "daily recall quota of 3" in r.text
    # a refused recall counted nothing anywhere
    stats = api.as_key(grandchild["api_key"])("GET", "/v1/stats").json()
    assert stats["usage"]["recalls_today"] == 0
