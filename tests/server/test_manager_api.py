"""Issue 11 parts 4 and 5 on the server: ``POST /v1/memories/extract`` and
``POST /v1/sessions/{id}/extract`` with the server's model (the fake OpenAI-compatible server
on loopback), the routes for what the manager produces (events, invalidate, restore,
``include_invalidated``), the ``llm`` / ``extract_sessions`` settings and the server-run
manager."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engramdb.cli import app as cli_app
from engramdb.errors import InvalidInputError
from engramdb.llm.openai_compat import OpenAICompatibleLLM
from engramdb.memory import Memory
from engramdb.server import create_app
from engramdb.server.settings import ServerSettings, load_settings
from engramdb.store import Store
from tests.fake_openai import FakeOpenAI, Reply
from tests.live_server import ADMIN_KEY
from tests.server.conftest import Api


def _fact(content: str, seq: int = 0, about: str = "user") -> dict[str, object]:
    return {
        "type": "preference",
        "content": content,
        "about": about,
        "occurred_at": None,
        "source_seqs": [seq],
        "importance": 0.7,
    }


def _say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _llm(fake: FakeOpenAI) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(
        "fake-model", base_url=fake.base_url, api_key="test", backoff=0.0, max_retries=0
    )


def _api(store: Store, fake: FakeOpenAI | None, **settings: Any) -> Api:
    """The app over ``store`` whose model is the fake server (``fake=None``: no model)."""
    cfg = ServerSettings(admin_keys=[ADMIN_KEY], embedder="hashing", **settings)
    memory = Memory(store, embedder="hashing", llm=_llm(fake) if fake else None)
    client = TestClient(create_app(settings=cfg, memory=memory), raise_server_exceptions=False)
    return Api(client, memory)


@pytest.fixture
def llm_api(store: Store, fake_openai: FakeOpenAI) -> Any:
    api = _api(store, fake_openai)
    yield api
    api.client.close()


def _extract(call: Any, session_id: str, text: str, **body: Any) -> Any:
    return call(
        "POST",
        "/v1/memories/extract",
        json={"session_id": session_id, "messages": _say(text), **body},
    )


# -- POST /v1/memories/extract -----------------------------------------------------------------


def test_issue11_extract_route_adds_then_updates_with_events(
    llm_api: Api, fake_openai: FakeOpenAI
) -> None:
    call = llm_api.as_key(llm_api.key())
    fake_openai.answer({"memories": [_fact("Ada prefers green tea")], "triples": []})
    r = _extract(call, "chat", "I prefer green tea", user_id="ada")
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["stored"] == 1 and first["dry_run"] is False and first["tokens"] > 0
    assert [d["action"] for d in first["decisions"]] == ["add"]
    assert first["decisions"][0]["candidate"]["content"] == "Ada prefers green tea"
    (added,) = first["applied"]
    assert added["action"] == "add"
    tea_id = added["memory_id"]

    fake_openai.answer({"memories": [_fact("Ada now prefers black tea", 1)], "triples": []})
    fake_openai.answer(
        {"action": "update", "handle": 1, "content": "Ada prefers black tea", "reason": "changed"}
    )
    r = _extract(call, "chat", "Actually, black tea these days", user_id="ada")
    assert r.status_code == 200, r.text
    (updated,) = r.json()["applied"]
    assert updated["action"] == "update" and updated["memory_id"] == tea_id
    assert updated["previous_content"] == "Ada prefers green tea"

    assert call("GET", f"/v1/memories/{tea_id}").json()["content"] == "Ada prefers black tea"
    events = call("GET", f"/v1/memories/{tea_id}/events").json()["events"]
    assert [e["action"] for e in events] == ["add", "update"]
    assert events[1]["model"] == "fake-model" and events[1]["reason"] == "changed"
    assert events[1]["session_id"] == "chat" and events[1]["item_seqs"] == [1]
    # both messages are in the session, in order
    items = call("GET", "/v1/sessions/chat/items").json()["items"]
    assert [i["content"] for i in items] == ["I prefer green tea", "Actually, black tea these days"]


def test_issue11_extract_dry_run_decides_without_applying(
    llm_api: Api, fake_openai: FakeOpenAI
) -> None:
    call = llm_api.as_key(llm_api.key())
    fake_openai.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    r = _extract(call, "s", "I live in Lyon", dry_run=True)
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["applied"] == []
    assert [d["action"] for d in r.json()["decisions"]] == ["add"]
    assert call("GET", "/v1/memories").json()["memories"] == []
    # the session extract route picks the same items up (the mark did not move)
    fake_openai.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    r = call("POST", "/v1/sessions/s/extract", json={})
    assert r.status_code == 200, r.text
    assert [a["action"] for a in r.json()["applied"]] == ["add"]
    assert [m["content"] for m in call("GET", "/v1/memories").json()["memories"]] == [
        "Ada lives in Lyon"
    ]


def test_issue11_extract_without_a_server_llm_is_409_and_stores_nothing(
    store: Store,
) -> None:
    api = _api(store, None)
    call = api.as_key(api.key())
    r = _extract(call, "s", "I live in Lyon")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "llm_not_configured"
    assert "nothing was stored" in r.json()["error"]["message"]
    assert call("GET", "/v1/sessions/s").status_code == 404
    # infer: false needs no model: the message is stored as said
    r = _extract(call, "s", "I live in Lyon", infer=False)
    assert r.status_code == 200, r.text
    assert [a["action"] for a in r.json()["applied"]] == ["add"]
    assert call("GET", "/v1/sessions/s").json()["item_count"] == 1
    r = call("POST", "/v1/sessions/s/extract", json={"infer": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "llm_not_configured"
    api.client.close()


def test_issue11_extract_llm_down_is_503_and_the_messages_are_kept(
    llm_api: Api, fake_openai: FakeOpenAI
) -> None:
    call = llm_api.as_key(llm_api.key())
    fake_openai.error(503, message="overloaded")
    r = _extract(call, "s", "I live in Lyon")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "llm_unavailable"
    assert "stored" in r.json()["error"]["message"]
    assert r.headers["Retry-After"].isdigit()
    assert call("GET", "/v1/sessions/s").json()["item_count"] == 1
    assert call("GET", "/v1/memories").json()["memories"] == []
    fake_openai.error(503, message="still overloaded")
    r = call("POST", "/v1/sessions/s/extract")
    assert r.status_code == 503 and r.json()["error"]["code"] == "llm_unavailable"
    # the model is back: the session extract route takes the kept message
    fake_openai.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    r = call("POST", "/v1/sessions/s/extract")
    assert r.status_code == 200, r.text
    assert [a["content"] for a in r.json()["applied"]] == ["Ada lives in Lyon"]


def test_issue11_extract_garbage_answer_is_502_not_500(
    llm_api: Api, fake_openai: FakeOpenAI
) -> None:
    call = llm_api.as_key(llm_api.key())
    fake_openai.default = lambda body: Reply("this is not JSON at all")
    r = _extract(call, "s", "I live in Lyon")
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "llm_bad_response"
    assert call("GET", "/v1/sessions/s").json()["item_count"] == 1


def test_issue11_extract_respects_the_memory_quota(store: Store, fake_openai: FakeOpenAI) -> None:
    api = _api(store, fake_openai)
    call = api.as_key(api.key(max_memories=1))
    fake_openai.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    assert _extract(call, "s", "I live in Lyon").status_code == 200
    fake_openai.answer({"memories": [_fact("Ada plays the cello", 1)], "triples": []})
    fake_openai.answer({"action": "add", "handle": None, "content": None, "reason": "new"})
    r = _extract(call, "s", "I play the cello")
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert "stored in session" in r.json()["error"]["message"]
    assert [m["content"] for m in call("GET", "/v1/memories").json()["memories"]] == [
        "Ada lives in Lyon"
    ]
    assert call("GET", "/v1/sessions/s").json()["item_count"] == 2
    api.client.close()


def test_issue11_extract_respects_the_fact_quota(store: Store, fake_openai: FakeOpenAI) -> None:
    """Triples the model extracts count toward the key's max_facts like any learned fact."""
    api = _api(store, fake_openai)
    call = api.as_key(api.key(max_facts=0))
    fake_openai.answer(
        {"memories": [], "triples": [{"subject": "Ada", "predicate": "lives in", "object": "Lyon"}]}
    )
    r = _extract(call, "s", "I live in Lyon")
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert call("GET", "/v1/triples").json()["triples"] == []
    assert call("GET", "/v1/sessions/s").json()["item_count"] == 1
    api.client.close()


# -- events, invalidate, restore -----------------------------------------------------------------


def test_issue11_invalidate_restore_events_and_include_invalidated(api: Api) -> None:
    call = api.as_key(api.key())
    mid = call("POST", "/v1/memories", json={"content": "Ada lives in Lyon"}).json()["id"]
    r = call("POST", f"/v1/memories/{mid}/invalidate", json={"reason": "moved away"})
    assert r.status_code == 200, r.text
    assert r.json()["invalidated_at"] is not None
    assert r.json()["invalidated_reason"] == "moved away"
    assert call("GET", "/v1/memories").json()["memories"] == []
    listed = call("GET", "/v1/memories", params={"include_invalidated": "true"}).json()
    assert [m["id"] for m in listed["memories"]] == [mid]
    r = call("POST", f"/v1/memories/{mid}/restore")  # no body: the reason is optional
    assert r.status_code == 200, r.text
    assert r.json()["invalidated_at"] is None
    assert [m["id"] for m in call("GET", "/v1/memories").json()["memories"]] == [mid]
    events = call("GET", f"/v1/memories/{mid}/events").json()["events"]
    assert [e["action"] for e in events][-2:] == ["invalidate", "restore"]
    assert events[-2]["reason"] == "moved away"
    assert call("GET", "/v1/memories/nope/events").status_code == 404
    r = call("POST", f"/v1/memories/{mid}/invalidate", json={"reason": "x" * 1001})
    assert r.status_code == 422


def test_issue11_events_invalidate_restore_are_namespace_scoped(api: Api) -> None:
    mine, theirs = api.as_key(api.key("a")), api.as_key(api.key("b"))
    mid = mine("POST", "/v1/memories", json={"content": "Ada lives in Lyon"}).json()["id"]
    for method, path in (
        ("GET", f"/v1/memories/{mid}/events"),
        ("POST", f"/v1/memories/{mid}/invalidate"),
        ("POST", f"/v1/memories/{mid}/restore"),
    ):
        r = theirs(method, path)
        assert r.status_code == 404, (path, r.text)
    assert mine("GET", f"/v1/memories/{mid}").json()["invalidated_at"] is None
    listed = theirs("GET", "/v1/memories", params={"include_invalidated": "true"}).json()
    assert listed["memories"] == []
    # nor can another key extract another namespace's session
    mine("POST", "/v1/sessions/s/items", json={"items": _say("hello")})
    assert theirs("POST", "/v1/sessions/s/extract", json={"infer": False}).status_code == 404


# -- settings ------------------------------------------------------------------------------------


def test_issue11_llm_setting_is_checked_at_start() -> None:
    with pytest.raises(InvalidInputError, match="setting llm"):
        load_settings(llm="gpt-4o")
    with pytest.raises(InvalidInputError, match="setting extract_sessions"):
        load_settings(extract_sessions=True)
    assert load_settings(llm="openai:fake-model").llm == "openai:fake-model"
    result = CliRunner().invoke(cli_app, ["serve", "--llm", "nonsense:x"])
    assert result.exit_code == 1
    assert "setting llm" in result.output and len(result.output.strip().splitlines()) <= 2


def test_issue11_server_llm_setting_reaches_the_extract_route(
    store: Store, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "test")
    cfg = ServerSettings(admin_keys=[ADMIN_KEY], embedder="hashing", llm="openai:fake-model")
    memory = Memory(store, embedder="hashing")  # no model of its own
    with TestClient(create_app(settings=cfg, memory=memory)) as client:
        api = Api(client, memory)
        call = api.as_key(api.key())
        fake_openai.answer({"memories": [_fact("Ada lives in Lyon")], "triples": []})
        r = _extract(call, "s", "I live in Lyon")
        assert r.status_code == 200, r.text
        assert [a["content"] for a in r.json()["applied"]] == ["Ada lives in Lyon"]
    assert fake_openai.completions[-1].body["model"] == "fake-model"


# -- the server-run manager ----------------------------------------------------------------------


def test_issue11_server_run_manager_extracts_appended_session_items(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    answer = json.dumps({"memories": [_fact("Ada lives in Lyon")], "triples": []})
    fake_openai.default = lambda body: Reply(answer)
    api = _api(store, fake_openai, extract_sessions=True)
    managers = api.client.app.state.services.managers  # type: ignore[attr-defined]
    try:
        a, b = api.as_key(api.key("a")), api.as_key(api.key("b"))
        r = a("POST", "/v1/sessions/chat/items", json={"items": _say("I live in Lyon")})
        assert r.status_code == 201, r.text
        assert managers.flush(30) is True
        (memory,) = a("GET", "/v1/memories").json()["memories"]
        assert memory["content"] == "Ada lives in Lyon" and memory["session_id"] == "chat"
        events = a("GET", f"/v1/memories/{memory['id']}/events").json()["events"]
        assert [(e["action"], e["session_id"]) for e in events] == [("add", "chat")]
        assert fake_openai.completions  # the model extracted it
        assert b("GET", "/v1/memories").json()["memories"] == []  # another namespace's
        # extracted once: a manual extract of the session finds nothing new
        r = a("POST", "/v1/sessions/chat/extract")
        assert r.status_code == 200 and r.json()["decisions"] == []
    finally:
        assert managers.close(30) is True
    # after shutdown, appending still works (the items wait past the mark)
    r = a("POST", "/v1/sessions/chat/items", json={"items": _say("I play the cello")})
    assert r.status_code == 201
    api.client.close()


def test_issue11_server_run_manager_is_flushed_on_shutdown(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.answer({"memories": [_fact("Ada plays the cello")], "triples": []})
    cfg = ServerSettings(
        admin_keys=[ADMIN_KEY], embedder="hashing", extract_sessions=True, extract_every_turns=50
    )
    memory = Memory(store, embedder="hashing", llm=_llm(fake_openai))
    with TestClient(create_app(settings=cfg, memory=memory)) as client:
        api = Api(client, memory)
        call = api.as_key(api.key())
        r = call("POST", "/v1/sessions/chat/items", json={"items": _say("I play the cello")})
        assert r.status_code == 201
    # leaving the block ran the lifespan's shutdown, which flushed the manager (one user
    # turn is below the trigger of 50: only the flush extracts it)
    (key,) = store.key_list(None)
    assert [m.content for m in memory.list(namespace=key.namespace).items] == [
        "Ada plays the cello"
    ]
