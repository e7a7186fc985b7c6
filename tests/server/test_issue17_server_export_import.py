"""Issue 17 item 2: ``engramdb export`` / ``import`` against a server — ``GET /v1/export`` and
``POST /v1/import`` on the key's namespace, through the facade."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engramdb.memory import Memory
from engramdb.server import create_app
from engramdb.server.settings import ServerSettings
from engramdb.sessions import Session, list_sessions
from engramdb.store import open_store
from tests.live_server import ADMIN_KEY
from tests.server.conftest import Api, MakeApi


def _source(tmp_path: Path, namespace: str = "alice", n: int = 2) -> Memory:
    """An embedded database with memories (one updated: a history), a fact and a session."""
    mem = Memory(open_store(tmp_path / f"src-{namespace}"), namespace=namespace, embedder="hashing")
    first = mem.remember("Ada drinks green tea every morning", user_id="ada", tags=["drink"])
    for i in range(1, n):
        mem.remember(f"memory number {i} about the garden", user_id="ada")
    mem.update(first.id, content="Ada drinks oolong tea every morning")
    mem.learn("ada", "likes", "oolong tea")
    Session("chat-1", mem.store, namespace=namespace).add_items([{"role": "user", "content": "hi"}])
    return mem


def _export_bytes(mem: Memory) -> bytes:
    out = io.BytesIO()
    mem.export_file(out)
    return out.getvalue()


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _snapshot(mem: Memory) -> dict[str, Any]:
    memories = sorted(mem.list(limit=100).items, key=lambda m: m.id)
    return {
        "memories": [(m.id, m.content, m.tags, m.user_id, m.version) for m in memories],
        "history": [[v.content for v in mem.history(m.id)] for m in memories],
        "facts": sorted((t.subject, t.predicate, t.object) for t in mem.facts()),
        "sessions": [s.session_id for s in list_sessions(mem.store, namespace=mem.namespace)],
    }


def test_issue17_server_export_import_round_trip(tmp_path: Path, make_api: MakeApi) -> None:
    # embedded data, served: its export through the server is the library's export
    source = _source(tmp_path)
    settings = ServerSettings(admin_keys=[ADMIN_KEY], embedder="hashing")
    app = create_app(settings=settings, memory=Memory(source.store, embedder="hashing"))
    alice = app.state.services.keys.create("alice", "alice")[1]
    with TestClient(app) as served:
        r = served.get("/v1/export", headers={"X-API-Key": alice})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/x-ndjson")
        exported = r.content
        with_vectors = served.get(
            "/v1/export", params={"with_vectors": "true"}, headers={"X-API-Key": alice}
        )
    records = _lines(exported)
    assert records[0]["type"] == "engramdb-export" and records[-1]["type"] == "end"
    assert [r for r in records if r["type"] != "engramdb-export"] == [
        r for r in _lines(_export_bytes(source)) if r["type"] != "engramdb-export"
    ]
    assert all(r.get("embedding") for r in _lines(with_vectors.content) if r["type"] == "memory")

    # imported into another server's namespace: the same memories, history, facts, sessions
    api = make_api()
    call = api.as_key(api.key("bob"))
    ns = call("GET", "/v1/stats").json()["namespace"]
    assert ns != "alice"
    r = call("POST", "/v1/import", content=exported)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["namespaces"] == [ns]
    assert report["created"]["memories"] == source.stats().memories == 3  # 2 + the fact's
    assert report["created"]["history"] == 1
    assert report["created"]["triples"] == 1 and report["created"]["session_items"] == 1
    assert _snapshot(api.memory.scoped(ns)) == _snapshot(source)
    # idempotent: the same file again writes nothing
    again = call("POST", "/v1/import", content=exported).json()
    assert again["created"]["memories"] == 0 and again["skipped"]["memories"] == 3
    source.store.close()


def test_issue17_server_export_import_namespace_isolation(
    tmp_path: Path, make_api: MakeApi
) -> None:
    api = make_api()
    a_key, b_key = api.key("a"), api.key("b")
    a, b = api.as_key(a_key), api.as_key(b_key)
    a_ns, b_ns = (
        a("GET", "/v1/stats").json()["namespace"],
        b("GET", "/v1/stats").json()["namespace"],
    )
    assert a("POST", "/v1/memories", json={"content": "a secret of a"}).status_code == 201

    # export: only the key's own namespace, whatever is asked
    exported_b = b("GET", "/v1/export", params={"namespace": a_ns}).content
    assert b"secret" not in exported_b
    assert _lines(exported_b)[0]["namespaces"] == [b_ns]

    # import: a file naming namespace a lands in b's namespace; a is untouched
    foreign = _export_bytes(_source(tmp_path, namespace=a_ns))
    r = b("POST", "/v1/import", content=foreign)
    assert r.status_code == 200, r.text
    assert r.json()["namespaces"] == [b_ns]
    assert api.memory.scoped(a_ns).stats().memories == 1
    assert api.memory.scoped(b_ns).stats().memories == 3  # 2 + the fact's

    # a file of several namespaces is refused whole
    two = io.BytesIO()
    multi = Memory(open_store(tmp_path / "multi"), embedder="hashing")
    multi.scoped("x").remember("in x")
    multi.scoped("y").remember("in y")
    multi.export_file(two, all_namespaces=True)
    r = a("POST", "/v1/import", content=two.getvalue())
    assert r.status_code == 422 and "more than one namespace" in r.json()["error"]["message"]
    assert api.memory.scoped(a_ns).stats().memories == 1

    # admin keys have no namespace data; no key, no data
    admin = api.as_key(ADMIN_KEY)
    assert admin("GET", "/v1/export").status_code == 403
    assert admin("POST", "/v1/import", content=foreign).status_code == 403
    assert api.client.get("/v1/export").status_code == 401
    assert api.client.post("/v1/import", content=foreign).status_code == 401
    multi.store.close()


def test_issue17_server_export_import_quota_refuses_whole(
    tmp_path: Path, make_api: MakeApi
) -> None:
    api = make_api()
    source = _source(tmp_path, n=3)
    body = _export_bytes(source)
    small = api.as_key(api.key("small", max_memories=2))
    r = small("POST", "/v1/import", content=body)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "quota_exceeded"
    ns = small("GET", "/v1/stats").json()["namespace"]
    stats = api.memory.scoped(ns).stats()
    assert (stats.memories, stats.triples, stats.sessions) == (0, 0, 0)  # nothing stored
    facts = api.as_key(api.key("facts", max_facts=0))
    assert facts("POST", "/v1/import", content=body).status_code == 429
    roomy = api.as_key(api.key("roomy", max_memories=source.stats().memories))
    assert roomy("POST", "/v1/import", content=body).status_code == 200
    source.store.close()


def test_issue17_server_export_import_bad_line_is_422_with_its_number(
    tmp_path: Path, api: Api
) -> None:
    source = _source(tmp_path)
    lines = _export_bytes(source).splitlines()
    call = api.as_key(api.key("bad"))
    ns = call("GET", "/v1/stats").json()["namespace"]

    not_json = b"\n".join([*lines[:3], b"{not json", *lines[3:]])
    r = call("POST", "/v1/import", content=not_json)
    assert r.status_code == 422, r.text
    assert ":4 is not valid JSON" in r.json()["error"]["message"]

    bad_record = b"\n".join([*lines[:4], b'{"type": "memory", "content": "no id"}', *lines[4:]])
    r = call("POST", "/v1/import", content=bad_record)
    assert r.status_code == 422, r.text
    assert "line 5" in r.json()["error"]["message"]

    for body in (b"\n".join(lines[:-1]), b"[1, 2]\n", b"", b" \n"):  # cut short; not a record
        assert call("POST", "/v1/import", content=body).status_code == 422
    stats = api.memory.scoped(ns).stats()
    assert (stats.memories, stats.triples, stats.sessions) == (0, 0, 0)
    source.store.close()


def test_issue17_server_export_import_body_over_the_limit_is_413(
    tmp_path: Path, make_api: MakeApi
) -> None:
    api = make_api(max_body_bytes=1024)
    source = _source(tmp_path, n=20)
    body = _export_bytes(source)
    assert len(body) > 1024
    call = api.as_key(api.key("limited"))
    assert call("POST", "/v1/import", content=body).status_code == 413
    chunked = call("POST", "/v1/import", content=iter([body[:800], body[800:]]))
    assert chunked.status_code == 413
    ns = call("GET", "/v1/stats").json()["namespace"]
    assert api.memory.scoped(ns).stats().memories == 0
    source.store.close()
