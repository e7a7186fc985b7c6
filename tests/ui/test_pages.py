"""The web page in process (issue 16): sign-in, CSRF, CSP, escaping, isolation, forgetting,
sessions, knowledge, usage and keys, and the offline API docs. The browser tests
(test_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import re
from urllib.parse import quote

from tests.live_server import ADMIN_KEY

from .conftest import Ui, csrf_of

XSS = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(document.cookie)",
    "\u202eevil\u202c RTL override",
    "emoji 🧠🔥 and ünïcödé",
    "x" * 10_000,
]
PAGES = [
    "/ui/memories",
    "/ui/memories?q=tea",
    "/ui/forget",
    "/ui/sessions",
    "/ui/knowledge",
    "/ui/usage",
    "/ui/keys",
]


def _seed_xss(ui: Ui, key: str) -> str:
    for i, text in enumerate(XSS):
        r = ui.api(
            key,
            "POST",
            "/v1/memories",
            json={
                "content": f"tea {i} {text}",
                "user_id": "u1",
                "session_id": "s<script>",
                "tags": ["<b>tag</b>", '"><img src=x onerror=alert(2)>'],
                "metadata": {"url": "javascript:alert(3)", "html": "<script>alert(4)</script>"},
            },
        )
        assert r.status_code == 201, r.text
    items = [
        {"role": "user", "content": "<script>alert(5)</script>"},
        {"type": "function_call", "name": "<img src=x onerror=alert(6)>", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "<script>alert(7)</script>"},
        {"type": "<svg onload=alert(8)>", "data": "<script>alert(9)</script>"},
    ]
    r = ui.api(
        key, "POST", f"/v1/sessions/{quote('s<script>', safe='')}/items", json={"items": items}
    )
    assert r.status_code == 201, r.text
    r = ui.api(
        key,
        "POST",
        "/v1/triples",
        json={"subject": "<script>alert(10)</script>", "predicate": "is", "object": "x\u202ey"},
    )
    assert r.status_code == 201, r.text
    memory_id: str = ui.api(key, "GET", "/v1/memories").json()["memories"][0]["id"]
    return memory_id


def test_issue16_root_redirects_to_sign_in(ui: Ui) -> None:
    c = ui.client()
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/"
    r = c.get("/ui/memories", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert c.get("/").url.path == "/ui/login"


def test_issue16_signin_cookie_is_httponly_strict_signed_and_holds_no_key(ui: Ui) -> None:
    key = ui.key()
    c = ui.client()
    form = c.get("/ui/login")
    assert form.status_code == 200 and 'type="password"' in form.text
    bad = c.post("/ui/login", data={"csrf": csrf_of(form.text), "key": "egm_wrong"})
    assert bad.status_code == 401 and "unknown API key" in bad.text
    assert "engramdb_ui" not in c.cookies
    form = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": csrf_of(form.text), "key": key}, follow_redirects=False)
    assert r.status_code == 303
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("engramdb_ui="))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert key not in cookie and key[4:20] not in cookie
    assert c.get("/ui/memories").status_code == 200
    # a tampered cookie is no session
    value = c.cookies["engramdb_ui"]
    other = ui.client()
    for forged in (value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), "x." + value.split(".")[1]):
        r = other.get("/ui/memories", headers={"Cookie": f"engramdb_ui={forged}"})
        assert r.url.path == "/ui/login"
    r = other.get("/ui/memories", headers={"Cookie": f"engramdb_ui={value}"})
    assert r.url.path == "/ui/memories"


def test_issue16_every_page_sends_csp_and_no_inline_script(ui: Ui) -> None:
    key = ui.key()
    memory_id = _seed_xss(ui, key)
    c = ui.browser(key)
    for path in [*PAGES, f"/ui/memories/{memory_id}", "/ui/session?id=s%3Cscript%3E", "/ui/login"]:
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "http" not in csp and "*" not in csp, path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), f"inline script on {path}"
        assert not re.search(r"<[^>]+\son\w+\s*=", r.text), f"inline handler on {path}"
        assert "http://" not in r.text.replace("http://testserver", "") and "https://" not in r.text


def test_issue16_state_changing_forms_need_the_csrf_token_and_same_origin(ui: Ui) -> None:
    key = ui.key()
    memory_id = ui.api(key, "POST", "/v1/memories", json={"content": "keep me"}).json()["id"]
    c = ui.browser(key)
    page = c.get(f"/ui/memories/{memory_id}/forget")
    token = csrf_of(page.text)
    missing = c.post(f"/ui/memories/{memory_id}/forget", data={})
    wrong = c.post(f"/ui/memories/{memory_id}/forget", data={"csrf": token + "x"})
    cross = c.post(
        f"/ui/memories/{memory_id}/forget",
        data={"csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert (missing.status_code, wrong.status_code, cross.status_code) == (403, 403, 403)
    proxied = c.post(  # behind a reverse proxy: the Origin names the forwarded host
        f"/ui/memories/{memory_id}/forget",
        data={"csrf": token + "x"},
        headers={"Origin": "https://memory.example", "X-Forwarded-Host": "memory.example"},
    )
    assert proxied.status_code == 403 and "CSRF token" in proxied.text
    assert ui.api(key, "GET", f"/v1/memories/{memory_id}").status_code == 200
    assert c.post("/ui/logout", data={}).status_code == 403  # sign-out is a form too
    ok = c.post(f"/ui/memories/{memory_id}/forget", data={"csrf": token})
    assert ok.status_code == 200 and "1 memory removed" in ok.text
    assert ui.api(key, "GET", f"/v1/memories/{memory_id}").status_code == 404
    # the sign-in form is protected by a double-submit token
    fresh = ui.client()
    assert fresh.post("/ui/login", data={"csrf": "forged", "key": key}).status_code == 403


def test_issue16_revoked_key_cookie_stops_working_at_once(ui: Ui) -> None:
    key = ui.key()
    c = ui.browser(key)
    assert c.get("/ui/memories").status_code == 200
    me = ui.api(key, "GET", "/v1/keys").json()["keys"][0]["id"]
    revoked = ui.client().delete(f"/v1/keys/{me}", headers={"X-API-Key": ADMIN_KEY})
    assert revoked.status_code == 200
    r = c.get("/ui/memories", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert any(v.startswith('engramdb_ui=""') for v in r.headers.get_list("set-cookie"))


def test_issue16_another_namespaces_ids_answer_404(ui: Ui) -> None:
    a, b = ui.key("a"), ui.key("b")
    theirs = ui.api(a, "POST", "/v1/memories", json={"content": "secret of a"}).json()["id"]
    ui.api(a, "POST", "/v1/sessions/sa/items", json={"items": [{"role": "user", "content": "x"}]})
    cursor = ui.api(a, "GET", "/v1/memories?limit=1").json()["next_cursor"]
    ui.api(a, "POST", "/v1/memories", json={"content": "second of a"})
    c = ui.browser(b)
    page = c.get(f"/ui/memories/{theirs}")
    assert page.status_code == 404 and "secret of a" not in page.text
    assert c.get(f"/ui/memories/{theirs}/forget").status_code == 404
    token = csrf_of(c.get("/ui/memories").text)
    assert c.post(f"/ui/memories/{theirs}/forget", data={"csrf": token}).status_code == 404
    assert c.get("/ui/session?id=sa").status_code == 404
    assert c.post("/ui/session/clear", data={"csrf": token, "id": "sa"}).status_code == 404
    listed = c.get("/ui/memories?" + "cursor=" + quote(cursor or "x"))
    assert listed.status_code == 422 and "of a" not in listed.text
    assert "secret of a" not in c.get("/ui/memories?q=secret").text
    assert ui.api(a, "GET", f"/v1/memories/{theirs}").status_code == 200
    assert ui.api(a, "GET", "/v1/sessions/sa").json()["item_count"] == 1


def test_issue16_attacker_text_renders_escaped_on_every_page(ui: Ui) -> None:
    key = ui.key()
    memory_id = _seed_xss(ui, key)
    c = ui.browser(key)
    pages = [
        *PAGES,
        "/ui/memories?q=alert",
        f"/ui/memories/{memory_id}",
        "/ui/session?id=s%3Cscript%3E",
        "/ui/sessions",
        "/ui/knowledge?entity=%3Cscript%3Ealert(10)%3C/script%3E",
        "/ui/forget?user_id=u1",
    ]
    for path in pages:
        html = c.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "<svg" not in html and "<b>tag</b>" not in html, path
        assert 'href="javascript:' not in html, path
    assert "&lt;script&gt;alert(" in c.get(f"/ui/memories/{memory_id}").text
    assert "&lt;svg onload=alert(8)&gt;" in c.get("/ui/session?id=s%3Cscript%3E").text


def test_issue16_no_500_for_any_input(ui: Ui) -> None:
    key = ui.key()
    memory_id = _seed_xss(ui, key)
    c = ui.browser(key)
    weird = ["", " ", "%00", "\x00", "'", '"', "<>", "a" * 5000, "-1", "0", "1e309", "🧠", "%FF"]
    params = {
        "/ui/memories": ["q", "mode", "limit", "cursor", "user_id", "tags", "since", "until"],
        "/ui/forget": ["user_id", "agent_id", "session_id", "tags", "since", "until"],
        "/ui/sessions": ["limit", "cursor"],
        "/ui/session": ["id", "after"],
        "/ui/session/pop": ["id"],
        "/ui/knowledge": ["entity", "as_of"],
    }
    for path, names in params.items():
        for name in names:
            for value in weird:
                r = c.get(
                    path, params={name: value, **({"id": "s<script>"} if name != "id" else {})}
                )
                assert r.status_code < 500, (path, name, value, r.text[:200])
    for path in [f"/ui/memories/{'x' * 3000}", "/ui/memories/%00", "/ui/keys/nokey/revoke"]:
        assert c.get(path).status_code in (404, 422), path
    token = csrf_of(c.get("/ui/memories").text)
    posts = [
        ("/ui/forget", {"csrf": token}),
        ("/ui/forget", {"csrf": token, "since": "not a date", "user_id": "u1"}),
        ("/ui/session/pop", {"csrf": token}),
        ("/ui/session/nope", {"csrf": token, "id": "s"}),
        ("/ui/keys", {"csrf": token, "name": ""}),
        ("/ui/keys", {"csrf": token, "name": "x" * 5000}),
        ("/ui/keys/key_nope/revoke", {"csrf": token}),
    ]
    for path, data in posts:
        r = c.post(path, data=data)
        assert 400 <= r.status_code < 500, (path, data, r.status_code, r.text[:200])
    unknown = c.post("/ui/forget", data={"csrf": token, "user_id": "u1", "id": ["nope", "m\x00"]})
    assert unknown.status_code == 200 and "0 memories removed" in unknown.text
    raw = c.post(
        "/ui/forget",
        content=b"\xff\xfe\x00csrf=" + token.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 422
    assert ui.api(key, "GET", f"/v1/memories/{memory_id}").status_code == 200
    for secret in ["", "\x00", "🧠" * 2000, "egm_" + "A" * 43, ADMIN_KEY + " "]:
        anon = ui.client()
        form = anon.get("/ui/login")
        r = anon.post("/ui/login", data={"csrf": csrf_of(form.text), "key": secret})
        assert r.status_code in (401, 200), (secret[:10], r.status_code)
        assert (r.status_code == 200) == (secret == ADMIN_KEY + " ")  # keys are stripped
    admin = ui.browser(ADMIN_KEY)
    token = csrf_of(admin.get("/ui/keys").text)
    for data in [{"name": "x", "namespace": "a\x00b"}, {"name": "x", "namespace": "a" * 5000}]:
        r = admin.post("/ui/keys", data={"csrf": token, **data})
        assert 400 <= r.status_code < 500, (data, r.status_code)


def test_issue16_scoped_forget_previews_then_deletes_exactly_that(ui: Ui) -> None:
    key = ui.key()
    ids = [
        ui.api(key, "POST", "/v1/memories", json={"content": f"m{i}", "user_id": user}).json()["id"]
        for i, user in enumerate(["u1", "u1", "u2"])
    ]
    c = ui.browser(key)
    preview = c.get("/ui/forget", params={"user_id": "u1"})
    assert preview.status_code == 200 and "2 memories would be forgotten" in preview.text
    shown = re.findall(r'name="id" value="([^"]+)"', preview.text)
    assert sorted(shown) == sorted(ids[:2])
    late = ui.api(key, "POST", "/v1/memories", json={"content": "late", "user_id": "u1"}).json()
    done = c.post("/ui/forget", data={"csrf": csrf_of(preview.text), "user_id": "u1", "id": shown})
    assert done.status_code == 200 and "2 memories removed" in done.text
    assert "m0" in done.text and "m1" in done.text  # the page shows what was removed
    for gone in ids[:2]:
        assert ui.api(key, "GET", f"/v1/memories/{gone}").status_code == 404
    assert ui.api(key, "GET", f"/v1/memories/{ids[2]}").status_code == 200
    assert ui.api(key, "GET", f"/v1/memories/{late['id']}").status_code == 200
    # an id outside the scope is never deleted, even if posted
    again = c.post(
        "/ui/forget", data={"csrf": csrf_of(preview.text), "user_id": "u1", "id": [ids[2]]}
    )
    assert "0 memories removed" in again.text
    assert ui.api(key, "GET", f"/v1/memories/{ids[2]}").status_code == 200


def test_issue16_memories_search_explain_filters_and_paging(ui: Ui) -> None:
    key = ui.key()
    for i in range(5):
        ui.api(key, "POST", "/v1/memories", json={"content": f"note {i}", "user_id": "u1"})
    ui.api(key, "POST", "/v1/memories", json={"content": "green tea please", "user_id": "u2"})
    c = ui.browser(key)
    hits = c.get("/ui/memories", params={"q": "green tea", "mode": "text"})
    assert "green tea please" in hits.text and "<summary>Explain</summary>" in hits.text
    assert "<td>text</td><td>1</td>" in hits.text  # lane, rank
    filtered = c.get("/ui/memories", params={"q": "green tea", "user_id": "u1", "mode": "text"})
    assert "green tea please" not in filtered.text
    first = c.get("/ui/memories", params={"limit": 2, "user_id": "u1"})
    assert "note 0" in first.text and "note 2" not in first.text
    next_link = re.search(r'href="(/ui/memories\?[^"]+)" rel="next"', first.text)
    assert next_link is not None
    second = c.get(next_link.group(1).replace("&amp;", "&"))
    assert "note 2" in second.text and "note 0" not in second.text
    assert c.get("/ui/memories", params={"mode": "fuzzy", "q": "x"}).status_code == 422


def test_issue16_memory_page_shows_history_diff_and_provenance(ui: Ui) -> None:
    key = ui.key()
    m = ui.api(key, "POST", "/v1/memories", json={"content": "likes green tea", "tags": ["d"]})
    ui.api(key, "PATCH", f"/v1/memories/{m.json()['id']}", json={"content": "likes black tea"})
    c = ui.browser(key)
    page = c.get(f"/ui/memories/{m.json()['id']}")
    assert page.status_code == 200 and "likes black tea" in page.text
    assert "<del>green</del>" in page.text and "<ins>black</ins>" in page.text
    assert "Version 1" in page.text
    said = ui.api(
        key,
        "POST",
        "/v1/memories/extract",
        json={
            "session_id": "s1",
            "infer": False,
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "user", "content": "I like tea"},
            ],
        },
    )
    assert said.status_code == 200, said.text
    extracted = said.json()["applied"][1]["memory_id"]
    origin = c.get(f"/ui/memories/{extracted}")
    assert "<td>add</td>" in origin.text, origin.text[-1500:]
    link = 'href="/ui/session?id=s1&amp;after=0#item-1">item 1</a>'
    assert link in origin.text  # provenance: the session item it came from
    assert 'id="item-1"' in c.get("/ui/session?id=s1&after=0").text


def test_issue16_session_view_folds_tool_calls_and_pops_and_clears(ui: Ui) -> None:
    key = ui.key()
    items = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "type": "function_call",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "call_id": "call_1",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is sunny."}],
        },
        {"type": "reasoning", "summary": []},
    ]
    ui.api(key, "POST", "/v1/sessions/chat-1/items", json={"items": items})
    c = ui.browser(key)
    listing = c.get("/ui/sessions")
    assert "chat-1" in listing.text and "<td>5</td>" in listing.text
    view = c.get("/ui/session", params={"id": "chat-1"})
    assert "weather in Paris?" in view.text and "It is sunny." in view.text
    assert "<details><summary><code><bdi>get_weather</bdi></code>" in view.text
    assert "&#34;city&#34;: &#34;Paris&#34;" in view.text  # arguments, formatted JSON
    assert "&#34;type&#34;: &#34;reasoning&#34;" in view.text  # an unknown item as JSON
    confirm = c.get("/ui/session/pop", params={"id": "chat-1"})
    assert "Remove the newest item?" in confirm.text
    popped = c.post("/ui/session/pop", data={"csrf": csrf_of(confirm.text), "id": "chat-1"})
    assert "1 item removed" in popped.text and "reasoning" in popped.text
    assert ui.api(key, "GET", "/v1/sessions/chat-1").json()["item_count"] == 4
    cleared = c.post("/ui/session/clear", data={"csrf": csrf_of(confirm.text), "id": "chat-1"})
    assert "4 items removed" in cleared.text
    assert ui.api(key, "GET", "/v1/sessions/chat-1/items").json()["items"] == []


def test_issue16_knowledge_timeline_strikes_superseded_facts_and_as_of(ui: Ui) -> None:
    key = ui.key()
    for city, since in (("Paris", "2020-01-01T00:00:00Z"), ("Rome", "2024-01-01T00:00:00Z")):
        body = {
            "subject": "alice",
            "predicate": "lives_in",
            "object": city,
            "single_valued": True,
            "valid_from": since,
        }
        assert ui.api(key, "POST", "/v1/triples", json=body).status_code == 201
    c = ui.browser(key)
    page = c.get("/ui/knowledge", params={"entity": "alice"})
    assert re.search(r"<s>.*Paris.*</s>", page.text)
    assert "2020-01-01 00:00:00 UTC → 2024-01-01 00:00:00 UTC" in page.text
    assert 'href="/ui/knowledge?entity=Rome"' in page.text  # neighbours are links
    then = c.get("/ui/knowledge", params={"entity": "alice", "as_of": "2021-06-01T00:00"})
    facts_then = then.text.split("<h2>Neighbours")[0]
    assert "Paris" in facts_then and "Rome" not in facts_then and "<s>" not in facts_then


def test_issue16_usage_shows_quota_and_remaining(ui: Ui) -> None:
    key = ui.key(max_memories=10)
    ui.api(key, "POST", "/v1/memories", json={"content": "one"})
    page = ui.browser(key).get("/ui/usage")
    assert page.status_code == 200
    assert "<tr><td>memories</td><td>1</td><td>10</td><td>9</td></tr>" in page.text


def test_issue16_admin_sees_keys_creates_with_secret_once_and_revokes(ui: Ui) -> None:
    ui.key("first")
    admin = ui.browser(ADMIN_KEY)
    assert admin.get("/ui/").url.path == "/ui/keys"
    page = admin.get("/ui/keys")
    assert "first" in page.text and "Registration mode: <strong>admin</strong>" in page.text
    first_ns = ui.api(ui.key("second"), "GET", "/v1/stats").json()["namespace"]
    page = admin.get("/ui/keys")
    assert f"<tr><td><bdi>{first_ns}</bdi></td><td>1</td><td>1</td></tr>" in page.text
    assert admin.get("/ui/memories").status_code == 403  # admins hold no namespace data
    made = admin.post(
        "/ui/keys", data={"csrf": csrf_of(page.text), "name": "made-in-ui", "namespace": "ui-ns"}
    )
    assert made.status_code == 200 and "only time the secret is shown" in made.text
    secret = re.search(r'value="(egm_[^"]+)"', made.text)
    assert secret is not None
    assert ui.api(secret.group(1), "GET", "/v1/stats").json()["namespace"] == "ui-ns"
    listing = admin.get("/ui/keys")
    assert secret.group(1) not in listing.text  # never shown again
    key_id = re.search(r'href="/ui/keys/([^/]+)/revoke"', listing.text.split("made-in-ui")[1])
    assert key_id is not None
    done = admin.post(f"/ui/keys/{key_id.group(1)}/revoke", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "no longer works" in done.text
    assert ui.api(secret.group(1), "GET", "/v1/stats").status_code == 401


def test_issue16_docs_and_redoc_need_no_network_and_openapi_declares_keys(ui: Ui) -> None:
    c = ui.client()
    for path in ("/docs", "/redoc"):
        page = c.get(path)
        assert page.status_code == 200 and "/openapi.json" in page.text
        assert "http://" not in page.text and "https://" not in page.text and "cdn" not in page.text
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
            assert c.get(asset).status_code == 200, asset
        assert "content-security-policy" in page.headers
    spec = c.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes[
        "ApiKeyHeader"
    ].items()
    assert schemes["BearerKey"]["type"] == "http" and schemes["BearerKey"]["scheme"] == "bearer"
    assert spec["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    names = spec["components"]["schemas"]
    assert all("__" not in name and "." not in name for name in names), sorted(names)
    assert not any(p.startswith("/ui") for p in spec["paths"])


def test_issue16_session_cookie_expires(ui: Ui) -> None:
    import time

    from engramdb.server.ui import auth

    key = ui.key()
    c = ui.browser(key)
    payload = auth.unsign(auth.signing_key(ui.app.state.services), c.cookies["engramdb_ui"])
    assert payload is not None and payload["k"].startswith("key_")
    other = ui.client()
    for age, works in ((60, True), (auth.MAX_AGE + 1, False), (-3600, False)):
        cookie = auth.sign(
            auth.signing_key(ui.app.state.services), {**payload, "t": int(time.time()) - age}
        )
        r = other.get("/ui/memories", headers={"Cookie": f"engramdb_ui={cookie}"})
        assert (r.url.path == "/ui/memories") is works, age
