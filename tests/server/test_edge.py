"""Issue 10, bad input at the edge: size limits are 413s naming the limit (item 3), every
request field is bounded and open registration is rate-limited (item 6), hostile values are
4xx and never 500 (item 13), queries are bounded (item 14), chunked bodies, session-id escapes
and the Allow header (item 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engramdb.errors import StoreError
from engramdb.memory import MAX_METADATA_BYTES
from engramdb.validation import MAX_JSON_DEPTH
from tests.live_server import ADMIN_KEY
from tests.server.conftest import MakeApi

JSON = {"content-type": "application/json"}


def error_of(response: Any) -> dict[str, str]:
    body: dict[str, dict[str, str]] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, response.text
    return body["error"]


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep (a flat dict is 1)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- item 3: over a size limit is a 413 naming the limit --------------------------------------


def test_item_03_content_over_the_limit_is_413_naming_it_in_v1_and_compat(
    make_api: MakeApi,
) -> None:
    api = make_api(max_content_chars=100)
    call = api.as_key(api.key())
    long = "x" * 101
    for method, path, body in [
        ("POST", "/v1/memories", {"content": long}),
        ("POST", "/v1/memories/batch", {"memories": [{"content": "ok"}, {"content": long}]}),
        ("POST", "/api/memory/store", {"content": long}),
    ]:
        r = call(method, path, json=body)
        assert r.status_code == 413, (path, r.text)
        error = error_of(r)
        assert error["code"] == "payload_too_large" and "100" in error["message"], error
    big_metadata = {"blob": "y" * MAX_METADATA_BYTES}
    r = call("POST", "/v1/memories", json={"content": "fine", "metadata": big_metadata})
    assert r.status_code == 413 and f"{MAX_METADATA_BYTES:,}" in error_of(r)["message"]
    # nothing was written by any of them
    assert call("GET", "/v1/stats").json()["memories"] == 0
    assert call("POST", "/v1/memories", json={"content": "x" * 100}).status_code == 201


def test_item_03_limits_are_served_without_a_key(make_api: MakeApi) -> None:
    api = make_api(max_content_chars=123, max_query_chars=77, registrations_per_minute=5)
    r = api.client.get("/v1/limits")
    assert r.status_code == 200, r.text
    limits = r.json()
    assert limits["content_chars"] == 123 and limits["query_chars"] == 77
    assert limits["registrations_per_minute"] == 5
    assert limits["json_depth"] == MAX_JSON_DEPTH
    assert limits["metadata_bytes"] == MAX_METADATA_BYTES
    for name in ("body_bytes", "batch_memories", "tags_per_memory", "tag_chars", "id_chars"):
        assert isinstance(limits[name], int) and limits[name] > 0, name


# -- item 6: every request field is bounded; registration is rate-limited ------------------


def _request_schemas(openapi: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    components = openapi["components"]["schemas"]
    seen: set[str] = set()

    def walk(where: str, schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in seen:
                return
            seen.add(name)
            yield from walk(name, components[name])
            return
        yield where, schema
        for key in ("anyOf", "allOf", "oneOf"):
            for i, part in enumerate(schema.get(key, [])):
                yield from walk(f"{where}[{i}]", part)
        for prop, sub in schema.get("properties", {}).items():
            yield from walk(f"{where}.{prop}", sub)
        if isinstance(schema.get("items"), dict):
            yield from walk(f"{where}[]", schema["items"])
        if isinstance(schema.get("additionalProperties"), dict):
            yield from walk(f"{where}{{}}", schema["additionalProperties"])

    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                yield from walk(f"{method} {path} ?{param['name']}", param["schema"])
            for media in op.get("requestBody", {}).get("content", {}).values():
                yield from walk(f"{method} {path}", media["schema"])


def test_item_06_every_request_field_is_bounded_in_the_schema(make_api: MakeApi) -> None:
    openapi = make_api().client.get("/openapi.json").json()
    # bounded by the library with a 413 naming the limit (see GET /v1/limits) instead
    by_library = {"MemoryIn.content", "MemoryPatch.content", "StoreIn.content"}
    # an import body (an export file) is bounded by max_body_bytes (413), line by line by the
    # library (422 naming the line)
    by_library.add("post /v1/import")
    unbounded = []
    for where, schema in _request_schemas(openapi):
        kind = schema.get("type")
        bounded = {"maxLength", "pattern", "enum", "const", "format"} & set(schema)
        exempt = where in by_library or where.endswith((".query", "?memory_id"))
        if kind == "string" and not bounded and not exempt:
            unbounded.append(where)
        if kind == "array" and "maxItems" not in schema and not exempt:
            unbounded.append(where)
    # path ids are bounded by the library (404 or 400); everything else has a bound
    unbounded = [w for w in unbounded if not w.endswith(("?key_id", "?session_id", "?triple_id"))]
    assert unbounded == [], unbounded


def test_item_06_registration_fields_are_capped(make_api: MakeApi) -> None:
    api = make_api()
    c = api.client
    for body in (
        {"agent_name": "a", "purpose": "p" * 1001},
        {"agent_name": "a" * 201},
        {"agent_name": "a", "purpose": ["list"]},
    ):
        r = c.post("/api/keys/register", json=body)
        assert r.status_code == 422, (body, r.text)
    assert c.post("/api/keys/register", json={"agent_name": "a", "purpose": "p" * 1000}).is_success
    call = api.as_key(api.key())
    r = call("POST", "/v1/memories", json={"content": "x", "tags": [f"t{i}" for i in range(65)]})
    assert r.status_code == 422
    r = call("POST", "/v1/sessions/s/items", json={"items": [{}] * 10_001})
    assert r.status_code == 422
    flt = {"metadata": {f"k{i}": 1 for i in range(33)}}
    assert (
        call("POST", "/v1/memories/recall", json={"query": "x", "filters": flt}).status_code == 422
    )


def test_item_06_open_registration_is_rate_limited_per_client_address(
    make_api: MakeApi,
) -> None:
    api = make_api(registrations_per_minute=3)
    app = api.client.app
    one = api.client
    other = TestClient(app, client=("10.0.0.2", 50000), raise_server_exceptions=False)
    body = {"agent_name": "bot"}
    assert [one.post("/api/keys/register", json=body).status_code for _ in range(3)] == [200] * 3
    refused = one.post("/api/keys/register", json=body)
    assert refused.status_code == 429, refused.text
    assert error_of(refused)["code"] == "rate_limited" and "3 registrations" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    # another address has its own allowance
    assert other.post("/api/keys/register", json=body).status_code == 200
    other.close()
    # turned off explicitly
    free = make_api(registrations_per_minute=None)
    codes = {free.client.post("/api/keys/register", json=body).status_code for _ in range(12)}
    assert codes == {200}


# -- item 13: hostile values are 4xx, never 500; nothing unreadable is stored --------------


def test_item_13_hostile_values_are_typed_4xx_never_500(make_api: MakeApi) -> None:
    api = make_api()
    call = api.as_key(api.key())
    huge = "9" * 400
    raw_cases = [
        ("POST", "/v1/memories", '{"content": "x", "importance": ' + huge + "}"),
        ("PATCH", "/v1/memories/mem_x", '{"importance": ' + huge + "}"),
        (
            "POST",
            "/v1/triples",
            '{"subject": "a", "predicate": "b", "object": "c", "confidence": ' + huge + "}",
        ),
        ("POST", "/v1/memories", '{"content": "x", "importance": 1e999}'),
        ("POST", "/v1/memories/recall", '{"query": "\\ud800"}'),
        ("POST", "/v1/memories/recall", '{"query": "a", "filters": {"user_id": "\\ud800"}}'),
        (
            "POST",
            "/v1/memories/recall",
            '{"query": "a", "filters": {"metadata": {"k": "\\ud800"}}}',
        ),
        ("POST", "/v1/memories/recall", '{"query": "a", "filters": {"metadata": {"\\udfff": 1}}}'),
        ("POST", "/api/keys/register", '{"agent_name": "\\ud800"}'),
        (
            "POST",
            "/v1/triples",
            '{"subject": "a", "predicate": "b", "object": "c", "source": "\\ud800"}',
        ),
        ("POST", "/v1/memories", '{"content": "x", "metadata": {"k": "\\ud800"}}'),
        ("POST", "/v1/sessions/s/items", '{"items": [{"k": "\\ud800"}]}'),
        ("POST", "/v1/memories", '{"content": "x", "occurred_at": "0001-01-01T00:00:00+14:00"}'),
        ("POST", "/v1/memories", json.dumps({"content": "x", "metadata": nested(256)})),
        ("POST", "/v1/sessions/s/items", json.dumps({"items": [nested(256)]})),
        ("POST", "/v1/sessions/s/items", '{"items": [' + '{"a":' * 5000 + "1" + "}" * 5000 + "]}"),
    ]
    for method, path, body in raw_cases:
        r = call(method, path, content=body.encode(), headers=JSON)
        assert 400 <= r.status_code < 500, (path, body[:80], r.status_code, r.text)
        error_of(r)
    for path in (
        "/v1/memories?cursor=c" + "f" * 400,
        "/v1/memories?cursor=cffffffffffffffffffff",
        "/api/memory/list?cursor=c" + "f" * 40,
        "/v1/sessions?cursor=" + "A" * 4000,
        "/v1/triples?as_of=0.5",
    ):
        r = call("GET", path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        error_of(r)
    # nothing was stored by any of them
    stats = call("GET", "/v1/stats").json()
    assert stats["memories"] == 0 and stats["session_items"] == 0


def test_item_13_queries_with_letters_that_fold_to_ascii_are_answered(make_api: MakeApi) -> None:
    """ "ſummer" (long s) and "K" (Kelvin sign) fold to ASCII letters; the time parser took
    "in ſummer 2023" for a season it could not look up and the recall answered 500."""
    api = make_api()
    call = api.as_key(api.key())
    assert call("POST", "/v1/memories", json={"content": "a summer trip in 2023"}).status_code < 300
    for query in ("in ſummer 2023", "laſt year", "ſeptember 2023", "\u212aayak last week"):
        r = call("POST", "/v1/memories/recall", json={"query": query})
        assert r.status_code == 200, (query, r.status_code, r.text)


def test_item_13_a_filter_key_with_a_quote_matches_instead_of_failing(make_api: MakeApi) -> None:
    api = make_api()
    call = api.as_key(api.key())
    meta = {'say "hi"': "yes", "x.y": 2}
    assert call("POST", "/v1/memories", json={"content": "quoted key", "metadata": meta}).is_success
    for key, value in meta.items():
        r = call(
            "POST",
            "/v1/memories/recall",
            json={"query": "quoted", "filters": {"metadata": {key: value}}},
        )
        assert r.status_code == 200, r.text
        assert [h["memory"]["content"] for h in r.json()["hits"]] == ["quoted key"]


def test_item_13_depth_64_is_stored_and_read_back_65_is_refused(make_api: MakeApi) -> None:
    api = make_api()
    call = api.as_key(api.key())
    ok, deep = nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1)
    assert call("POST", "/v1/sessions/s/items", json={"items": [ok]}).status_code == 201
    r = call("POST", "/v1/sessions/s/items", json={"items": [deep]})
    assert r.status_code == 422 and str(MAX_JSON_DEPTH) in error_of(r)["message"]
    assert call("GET", "/v1/sessions/s/items").json()["items"] == [ok]
    assert call("POST", "/v1/sessions/s/pop").json()["item"] == ok
    inner = nested(MAX_JSON_DEPTH - 1)  # {"m": inner} is 64 deep
    created = call("POST", "/v1/memories", json={"content": "m", "metadata": {"m": inner}})
    assert created.status_code == 201
    assert call("GET", f"/v1/memories/{created.json()['id']}").json()["metadata"] == {"m": inner}
    r = call("POST", "/v1/memories", json={"content": "n", "metadata": {"m": ok}})
    assert r.status_code == 422


def test_item_13_error_bodies_never_carry_the_underlying_message(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    call = api.as_key(api.key())
    secret = "/srv/secret/engramdb/data.db"

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise StoreError(f"unable to open database file {secret}")

    monkeypatch.setattr(api.memory.store, "memory_stats", failing)
    r = call("GET", "/v1/stats", headers={"X-Request-Id": "req-1234"})
    assert r.status_code == 503, r.text
    error = error_of(r)
    assert secret not in r.text and "/srv" not in r.text
    assert error["code"] == "store_error" and "req-1234" in error["message"]
    # the idempotency layer, before any route, keeps the detail out of the body too
    monkeypatch.setattr(api.memory.store, "idempotency_claim", failing)
    r = call("POST", "/v1/memories", json={"content": "x"}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 503 and secret not in r.text, r.text
    assert error_of(r)["code"] == "store_unavailable"


# -- item 14: query length is bounded ------------------------------------------------------


def test_item_14_a_query_over_the_limit_is_413_and_a_long_one_skips_the_tag_lane(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(max_query_chars=300)
    call = api.as_key(api.key())
    call("POST", "/v1/memories", json={"content": "alpha beta", "tags": ["alpha"]})
    for path in ("/v1/memories/recall", "/api/memory/recall"):
        r = call("POST", path, json={"query": "alpha " * 60})  # 360 characters
        assert r.status_code == 413, r.text
        assert error_of(r)["code"] == "payload_too_large" and "300" in error_of(r)["message"]
    tag_lookups: list[str] = []
    original = api.memory.store.memory_tag_search

    def spy(namespace: str, tag: str, *args: Any, **kwargs: Any) -> Any:
        tag_lookups.append(tag)
        return original(namespace, tag, *args, **kwargs)

    monkeypatch.setattr(api.memory.store, "memory_tag_search", spy)
    r = call("POST", "/v1/memories/recall", json={"query": "alpha " * 40})  # 240 > any tag
    assert r.status_code == 200 and r.json()["hits"], r.text
    assert tag_lookups == []
    assert call("POST", "/v1/memories/recall", json={"query": "alpha"}).json()["hits"]
    assert tag_lookups == ["alpha"]


# -- item 15: chunked bodies, session-id escapes, Allow --------------------------------------


def test_item_15_a_chunked_body_over_the_limit_is_413(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=4096)
    call = api.as_key(api.key())

    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = call("POST", "/v1/memories", content=chunks(), headers=JSON)
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    assert error_of(r)["code"] == "body_too_large"

    def small() -> Iterator[bytes]:
        yield b'{"content": "chunked '
        yield b'but small"}'

    r = call("POST", "/v1/memories", content=small(), headers=JSON)
    assert r.status_code == 201 and r.json()["content"] == "chunked but small"


def test_item_15_session_ids_that_are_not_utf8_are_refused_not_merged(
    make_api: MakeApi,
) -> None:
    api = make_api()
    call = api.as_key(api.key())
    for raw in ("%FF", "%FE", "a%C3", "%ED%A0%80"):
        r = call("POST", f"/v1/sessions/{raw}/items", json={"items": [{"n": raw}]})
        assert r.status_code == 422, (raw, r.text)
        assert "UTF-8" in error_of(r)["message"]
        assert call("GET", f"/v1/sessions/{raw}/items").status_code == 422
    assert call("GET", "/v1/sessions").json()["sessions"] == []
    # proper escapes still work, and name distinct sessions
    call("POST", "/v1/sessions/%C3%BF/items", json={"items": [{"n": 1}]})
    call("POST", "/v1/sessions/%C3%BE/items", json={"items": [{"n": 2}]})
    assert call("GET", "/v1/sessions/%C3%BF/items").json()["items"] == [{"n": 1}]
    assert call("GET", "/v1/sessions/%C3%BE/items").json()["items"] == [{"n": 2}]


def test_item_15_method_not_allowed_lists_every_allowed_method(make_api: MakeApi) -> None:
    api = make_api()
    call = api.as_key(api.key())
    for method, path, expected in [
        ("PUT", "/v1/memories", {"GET", "POST"}),
        ("PUT", "/v1/memories/batch", {"POST"}),
        ("PUT", "/v1/memories/mem_1", {"GET", "PATCH", "DELETE"}),
        ("PUT", "/v1/sessions/s1", {"GET", "DELETE"}),
        ("PATCH", "/v1/sessions/s1/items", {"GET", "POST", "PUT"}),
        ("PUT", "/v1/keys", {"GET", "POST"}),
    ]:
        r = call(method, path)
        assert r.status_code == 405, (path, r.text)
        allowed = {m.strip() for m in r.headers["Allow"].split(",")} - {"HEAD"}
        assert allowed == expected, (path, r.headers["Allow"])
        assert error_of(r)["code"] == "method_not_allowed"


def test_item_06_admin_registration_is_not_rate_limited(make_api: MakeApi) -> None:
    """Registration in admin mode goes through the admin key and is not rate-limited by it."""
    api = make_api(registration="admin", registrations_per_minute=1)
    for _ in range(3):
        r = api.client.post(
            "/api/keys/register", json={"agent_name": "a"}, headers={"X-API-Key": ADMIN_KEY}
        )
        assert r.status_code == 200, r.text
