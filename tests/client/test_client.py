"""engramdb.Client end to end against a real server: every method, typed results, errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from engramdb import (
    AuthenticationError,
    Client,
    ConflictError,
    EngramError,
    ForgetResult,
    Hit,
    InvalidInputError,
    MemoryRecord,
    MemoryVersion,
    NotFoundError,
    Page,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    SessionInfo,
    Triple,
)
from engramdb.client import CreatedKey, Registration, SessionPage
from engramdb.memory import content_hash
from engramdb.types import ApiKey
from tests.live_server import LiveServer


def aware(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


# -- health and registration ---------------------------------------------------------------


def test_health_needs_no_key(live_server: LiveServer) -> None:
    with Client(live_server.url) as anonymous:
        health = anonymous.health()
    assert health["status"] == "healthy" and health["store"] == "sqlite"


def test_register_returns_a_working_key_of_a_new_namespace(live_server: LiveServer) -> None:
    reg = Client.register(live_server.url, "agent-007", purpose="tests")
    assert isinstance(reg, Registration)
    assert reg.api_key and reg.key_id and reg.namespace and reg.agent_name == "agent-007"
    with Client(live_server.url, reg.api_key) as c:
        assert c.stats()["namespace"] == reg.namespace
        assert c.remember("registered").namespace == reg.namespace


# -- memories ------------------------------------------------------------------------------


def test_remember_returns_a_typed_record(client: Client) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    m = client.remember(
        "Ada prefers tea over coffee",
        user_id="ada",
        agent_id="butler",
        session_id="s-1",
        tags=["prefs", "drinks"],
        metadata={"source": "chat", "n": 3, "nested": {"ok": True}},
        importance=0.8,
        occurred_at=when,
    )
    assert isinstance(m, MemoryRecord)
    assert m.id.startswith("mem_") and m.namespace == client.stats()["namespace"]
    assert (m.content, m.user_id, m.agent_id, m.session_id) == (
        "Ada prefers tea over coffee",
        "ada",
        "butler",
        "s-1",
    )
    assert m.tags == ("prefs", "drinks")
    assert m.metadata == {"source": "chat", "n": 3, "nested": {"ok": True}}
    assert m.importance == 0.8 and m.version == 1
    assert m.occurred_at == when
    assert aware(m.created_at) and aware(m.updated_at)
    assert m.content_hash == content_hash("Ada prefers tea over coffee")
    assert client.get(m.id) == m
    # identical content in the same scope is stored once
    again = client.remember(
        "Ada prefers tea over coffee",
        user_id="ada",
        agent_id="butler",
        session_id="s-1",
        tags=["prefs", "drinks"],
    )
    assert again.id == m.id


def test_remember_many_recall_and_explain(client: Client) -> None:
    stored = client.remember_many(
        [
            {"content": "Ada drinks green tea every morning", "user_id": "ada", "tags": ["tea"]},
            {"content": "Bob drinks black coffee", "user_id": "bob"},
            {
                "content": "Ada visited Kyoto in spring",
                "user_id": "ada",
                "occurred_at": datetime(2023, 4, 2, tzinfo=UTC),
            },
        ]
    )
    assert [type(m) for m in stored] == [MemoryRecord] * 3
    assert stored[2].occurred_at == datetime(2023, 4, 2, tzinfo=UTC)

    hits = client.recall("what does Ada drink?", filters={"user_id": "ada"}, limit=5)
    assert hits and all(isinstance(h, Hit) for h in hits)
    assert hits[0].memory.content == "Ada drinks green tea every morning"
    assert {h.memory.user_id for h in hits} == {"ada"}
    assert all(isinstance(h.score, float) and h.explain is None for h in hits)

    explained = client.recall("coffee", mode="text", explain=True, limit=1)
    assert [h.memory.user_id for h in explained] == ["bob"]
    assert isinstance(explained[0].explain, dict)

    tagged = client.recall("tea", filters={"tags": ["tea"]})
    assert [h.memory.id for h in tagged] == [stored[0].id]
    assert client.recall("   ") == []


def test_list_pages_and_filters(client: Client) -> None:
    ids = [m.id for m in client.remember_many([{"content": f"note {n}"} for n in range(5)])]
    client.remember("from ada", user_id="ada", tags=["x", "y"])
    first = client.list(limit=2)
    assert isinstance(first, Page) and [m.id for m in first.items] == ids[:2]
    assert first.next_cursor is not None
    second = client.list(limit=2, cursor=first.next_cursor)
    assert [m.id for m in second.items] == ids[2:4]
    everything = client.list(limit=100)
    assert len(everything.items) == 6 and everything.next_cursor is None
    assert [m.content for m in client.list({"user_id": "ada"}).items] == ["from ada"]
    assert [m.content for m in client.list({"tags": ["x", "y"]}).items] == ["from ada"]
    assert client.list({"tags": ["x", "nope"]}).items == []
    with pytest.raises(InvalidInputError, match="recall"):
        client.list({"metadata": {"a": 1}})


def test_update_keeps_history(client: Client) -> None:
    m = client.remember("first text", tags=["a"], metadata={"v": 1})
    changed = client.update(m.id, content="second text", tags=["b"], importance=0.9)
    assert changed.version == 2 and changed.content == "second text"
    assert changed.tags == ("b",) and changed.importance == 0.9
    assert changed.content_hash == content_hash("second text")
    assert changed.updated_at >= m.updated_at and changed.created_at == m.created_at
    third = client.update(m.id, metadata={"v": 3})
    assert third.version == 3 and third.metadata == {"v": 3}
    history = client.history(m.id)
    assert all(isinstance(v, MemoryVersion) for v in history)
    assert [(v.version, v.content, v.tags) for v in history] == [
        (1, "first text", ("a",)),
        (2, "second text", ("b",)),
    ]
    assert all(v.memory_id == m.id and aware(v.replaced_at) for v in history)
    with pytest.raises(InvalidInputError):
        client.update(m.id)  # nothing to change


def test_forget_by_id_and_by_filter(client: Client) -> None:
    a = client.remember("alpha", user_id="u1")
    b = client.remember("beta", user_id="u1")
    c = client.remember("gamma", user_id="u2")
    preview = client.forget(a.id, dry_run=True)
    assert preview == ForgetResult([a.id], True)
    assert client.get(a.id) == a
    assert client.forget(a.id) == ForgetResult([a.id], False)
    with pytest.raises(NotFoundError):
        client.get(a.id)
    with pytest.raises(NotFoundError):
        client.forget(a.id)
    would = client.forget(filters={"user_id": "u1"}, dry_run=True)
    assert would.dry_run and would.ids == [b.id]
    gone = client.forget(filters={"user_id": "u1"})
    assert gone.ids == [b.id] and gone.count == 1 and not gone.dry_run
    assert [m.id for m in client.list().items] == [c.id]
    with pytest.raises(InvalidInputError, match="scope"):
        client.forget(filters={})
    with pytest.raises(InvalidInputError, match="either"):
        client.forget(c.id, filters={"user_id": "u2"})
    with pytest.raises(InvalidInputError, match="either"):
        client.forget()


# -- triples -------------------------------------------------------------------------------


def test_learn_facts_and_neighbors(client: Client) -> None:
    t1 = client.learn("Ada", "lives in", "London", confidence=0.9, source="chat")
    assert isinstance(t1, Triple) and t1.current
    assert t1.namespace == client.stats()["namespace"]
    assert (t1.subject, t1.predicate, t1.object, t1.confidence, t1.source) == (
        "Ada",
        "lives in",
        "London",
        0.9,
        "chat",
    )
    assert aware(t1.valid_from) and aware(t1.created_at)
    t2 = client.learn("Ada", "lives in", "Paris", single_valued=True)
    assert t2.object == "Paris"
    assert [t.object for t in client.facts("Ada", "lives in")] == ["Paris"]
    history = client.facts("Ada", "lives in", include_history=True)
    assert {t.object: t.current for t in history} == {"London": False, "Paris": True}
    closed = next(t for t in history if t.object == "London")
    assert closed.valid_to is not None and aware(closed.valid_to)
    assert [t.object for t in client.facts("Ada", as_of=t1.valid_from)] == ["London"]
    client.learn("Paris", "is in", "France")
    assert {t.object for t in client.neighbors("Ada")} == {"Paris"}
    assert {t.object for t in client.neighbors("Ada", depth=2)} == {"Paris", "France"}
    assert client.facts(object="France", limit=1)[0].subject == "Paris"


# -- sessions ------------------------------------------------------------------------------


def test_session_calls(client: Client) -> None:
    sid = "chat/1 ü?#%"
    assert client.get_items(sid) == [] and client.session_info(sid) is None
    assert client.add_items(sid, [{"n": 1}, {"n": 2}, {"n": 3}]) == 3
    assert client.get_items(sid, limit=2) == [{"n": 2}, {"n": 3}]
    assert client.pop_item(sid) == {"n": 3}
    info = client.session_info(sid)
    assert isinstance(info, SessionInfo) and info.session_id == sid and info.item_count == 2
    assert info.namespace == client.stats()["namespace"] and aware(info.created_at)
    assert client.clear_session(sid) == 2
    assert client.pop_item(sid) is None
    for other in ("a", "b", ".", ".."):
        client.add_items(other, [{"in": other}])
    assert client.get_items(".") == [{"in": "."}] and client.get_items("..") == [{"in": ".."}]
    first = client.list_sessions(limit=2)
    assert isinstance(first, SessionPage) and len(first.items) == 2
    assert first.next_cursor is not None
    rest = client.list_sessions(limit=10, cursor=first.next_cursor)
    assert {s.session_id for s in first.items + rest.items} == {sid, "a", "b", ".", ".."}
    assert client.delete_session("a") is True
    assert client.delete_session("a") is False
    assert client.get_items("a") == []
    with pytest.raises(InvalidInputError, match="limit must be an integer >= 0"):
        client.get_items("b", limit=-1)
    with pytest.raises(InvalidInputError, match="item 1"):
        client.add_items("b", [{"ok": 1}, {"nan": float("nan")}])
    assert client.get_items("b") == [{"in": "b"}]


def test_stats(client: Client) -> None:
    client.remember("one")
    client.add_items("s", [{"a": 1}])
    client.recall("one")
    stats = client.stats()
    info = client.session_info("s")
    assert info is not None and stats["namespace"] == info.namespace
    assert stats["memories"] == 1 and stats["sessions"] == 1 and stats["session_items"] == 1
    assert stats["usage"]["recalls_today"] == 1


# -- keys ----------------------------------------------------------------------------------


def test_keys_create_list_revoke(live_server: LiveServer, client: Client, admin: Client) -> None:
    ns = client.stats()["namespace"]
    made = client.create_key("rotated", purpose="rotation")
    assert isinstance(made, CreatedKey) and isinstance(made.key, ApiKey)
    assert made.key.namespace == ns and made.key.name == "rotated" and made.key.active
    assert made.api_key.startswith(made.key.prefix)
    listed = client.list_keys()
    assert made.key.id in {k.id for k in listed} and all(k.namespace == ns for k in listed)
    with Client(live_server.url, made.api_key) as rotated:
        assert rotated.stats()["namespace"] == ns
        revoked = client.revoke_key(made.key.id)
        assert revoked.id == made.key.id and not revoked.active and aware(revoked.revoked_at)
        with pytest.raises(AuthenticationError) as caught:
            rotated.stats()
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    # admins see every namespace; they create keys (with any limits) for new namespaces only
    assert made.key.id in {k.id for k in admin.list_keys(namespace=ns)}
    assert made.key.created_by == client.list_keys()[0].id
    with pytest.raises(PermissionDeniedError):
        admin.create_key("into an existing namespace", namespace=ns)
    limited = admin.create_key("limited", limits={"recalls_per_day": 5})
    assert limited.key.limits["recalls_per_day"] == 5 and limited.key.namespace != ns
    # a namespace key's children get no more than it has
    with Client(live_server.url, limited.api_key) as narrow:
        with pytest.raises(PermissionDeniedError) as denied:
            narrow.create_key("greedy", limits={"recalls_per_day": 10**6})
        assert narrow.create_key("inherits").key.limits["recalls_per_day"] == 5
    assert denied.value.status == 403 and denied.value.code == "forbidden"
    with pytest.raises(NotFoundError):
        client.revoke_key("key_does_not_exist")


# -- errors --------------------------------------------------------------------------------


def test_error_mapping_keeps_status_code_and_message(
    live_server: LiveServer, client: Client, key: str
) -> None:
    with pytest.raises(NotFoundError) as nf:
        client.get("mem_missing")
    assert (nf.value.status, nf.value.code) == (404, "not_found")
    assert "mem_missing" in str(nf.value)

    with pytest.raises(InvalidInputError) as bad:
        client.remember("   ")
    assert (bad.value.status, bad.value.code) == (422, "validation_error")  # blank: the schema
    assert "content" in str(bad.value)

    with pytest.raises(InvalidInputError) as unknown:
        client.remember_many([{"content": "x", "colour": "red"}])
    assert (unknown.value.status, unknown.value.code) == (422, "validation_error")
    assert "colour" in str(unknown.value)

    with pytest.raises(InvalidInputError) as typed:
        client.recall("q", limit=0)  # refused before sending, as the library refuses it
    assert typed.value.status is None and "limit must be an integer from 1" in str(typed.value)

    with (
        Client(live_server.url, "egm_not_a_key") as stranger,
        pytest.raises(AuthenticationError) as unauth,
    ):
        stranger.stats()
    assert (unauth.value.status, unauth.value.code) == (401, "unauthorized")
    with Client(live_server.url) as keyless, pytest.raises(AuthenticationError):
        keyless.get_items("s")

    assert all(isinstance(e.value, EngramError) for e in (nf, bad, unknown, typed, unauth))


def test_another_namespace_is_unreachable(live_server: LiveServer, client: Client) -> None:
    mine = client.remember("private", user_id="me")
    client.add_items("secret", [{"x": 1}])
    with Client(live_server.url, live_server.register("other")) as other:
        with pytest.raises(NotFoundError):
            other.get(mine.id)
        with pytest.raises(NotFoundError):
            other.forget(mine.id)
        assert other.get_items("secret") == []
        assert other.recall("private") == []
    assert client.get(mine.id) == mine


def test_idempotency_key_reused_with_another_body_is_a_conflict(client: Client) -> None:
    call = client._c_add_items("s", [{"n": 1}])
    assert client._run(call) == 1
    assert client._run(call) == 1  # replayed: the first response, nothing written
    assert client.get_items("s") == [{"n": 1}]
    other = client._c_add_items("s", [{"n": 2}])
    forged = dataclasses.replace(other, idempotency_key=call.idempotency_key)
    with pytest.raises(ConflictError) as conflict:
        client._run(forged)
    assert (conflict.value.status, conflict.value.code) == (409, "idempotency_conflict")
    assert client.get_items("s") == [{"n": 1}]


def test_body_too_large_is_refused(client: Client) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        client.add_items("big", [{"blob": "x" * (16 * 1024 * 1024)}])
    assert (caught.value.status, caught.value.code) == (413, "body_too_large")
    assert isinstance(caught.value, InvalidInputError)
    assert client.get_items("big") == []


def test_daily_quota_raises_rate_limit_error_at_once(
    live_server: LiveServer, admin: Client
) -> None:
    quota = admin.create_key("quota", limits={"recalls_per_day": 1})  # a new namespace
    with Client(live_server.url, quota.api_key, retries=3) as c:
        c.recall("anything")
        started = datetime.now(UTC)
        with pytest.raises(RateLimitError) as caught:
            c.recall("anything")
        waited = (datetime.now(UTC) - started).total_seconds()
    err = caught.value
    assert (err.status, err.code) == (429, "quota_exceeded")
    assert err.retry_after is not None and err.retry_after >= 1
    assert "quota" in str(err)
    assert waited < 2  # a reset hours away is not waited for


def test_client_side_checks_fail_before_sending(live_server: LiveServer) -> None:
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:  # pragma: no cover - must not run
        sent.append(request)
        return httpx.Response(500)

    with Client(live_server.url, "k", transport=httpx.MockTransport(refuse)) as c:
        for bad_call in (
            lambda: c.add_items("s", [{"ok": 1}, "not a dict"]),  # type: ignore[list-item]
            lambda: c.add_items("s", {"role": "user"}),  # type: ignore[arg-type]
            lambda: c.get_items("", 1),
            lambda: c.get_items("s", -1),
            lambda: c.remember("x", metadata={"bad": float("inf")}),
            lambda: c.remember("lone \ud800 surrogate"),
            lambda: c.recall("q", filters={"colour": "red"}),
        ):
            with pytest.raises(InvalidInputError):
                bad_call()
    assert sent == []
    with pytest.raises(InvalidInputError, match="retries"):
        Client(live_server.url, retries=-1)
