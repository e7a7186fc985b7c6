"""The web page in a real browser (issue 16): Debian's Chromium driven by ``playwright``
against ``engramdb serve`` on loopback. One browser and one server for the module.

Skips, saying why, only where Chromium cannot be had (``make test`` installs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from tests.live_server import ADMIN_KEY, LiveServer, start_live_server

from .browser import (
    MD_V1,
    MD_V2,
    SCOPE,
    Offline,
    api,
    chromium,
    consolidate_sessions,
    go,
    screenshots,
    seed,
    seed_memory_files,
    sign_in,
    unavailable,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

_why = unavailable()
if _why:
    print(f"\n*** {_why} ***")
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("ui-browser")
    live = start_live_server(
        str(tmp / "data"),
        log_path=tmp / "server.log",
        embedder="hashing",
        memory_root=str(tmp / "memories"),
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def visit(browser: Browser, server: LiveServer) -> Iterator[Any]:
    """``visit()``: a fresh page (its own cookies) that may reach the server only."""
    opened: list[Offline] = []

    def new_page() -> Page:
        ctx = Offline(browser, server.url)
        opened.append(ctx)
        page = ctx.context.new_page()
        page.set_default_timeout(60_000)  # a bound for a loaded machine, not a timing goal
        return page

    yield new_page
    for ctx in opened:
        ctx.close()
        assert not ctx.blocked, f"the page asked for the network: {ctx.blocked}"


def test_issue16_browser_sign_in_search_explain_session_forget_sign_out(
    server: LiveServer, visit: Any
) -> None:
    key = server.register("e2e")
    assert f"{server.url}/ui/" in server.log()  # serve prints the page's URL
    page = visit()
    sign_in(page, key)
    with api(server.url, key) as c:  # remember through the API
        tea = c.post(
            "/v1/memories", json={"content": "Dana drinks oolong tea", "user_id": "dana"}
        ).json()["id"]
        c.post("/v1/memories", json={"content": "Dana's cat is called Miso", "user_id": "dana"})
        c.post("/v1/memories", json={"content": "Eve uses vim", "user_id": "eve"})
        c.post(
            "/v1/sessions/chat-7/items",
            json={
                "items": [
                    {"role": "user", "content": "Book a table"},
                    {
                        "type": "function_call",
                        "name": "book_table",
                        "call_id": "c9",
                        "arguments": '{"people": 4}',
                    },
                    {"type": "function_call_output", "call_id": "c9", "output": "booked for 4"},
                ]
            },
        )
    # find it by search on the page, open explain
    page.fill("#q", "oolong")
    go(page, "form.search button[type=submit]")
    hit = page.locator("li.memory", has_text="Dana drinks oolong tea")
    hit.locator("summary", has_text="Explain").click()
    lanes = hit.locator("details.explain table")
    assert lanes.is_visible() and "text" in lanes.inner_text()
    # a session with a tool call
    go(page, "nav >> text=Sessions")
    go(page, "text=chat-7")
    call = page.locator("li.tool_call")
    assert "book_table" in call.inner_text()
    assert not call.locator("pre").is_visible()  # folded
    call.locator("summary").click()
    assert '"people": 4' in call.locator("pre").inner_text()
    # forget one memory, with its confirmation
    page.goto(f"/ui/memories/{tea}")
    go(page, "text=Forget this memory")
    go(page, "button.danger")
    assert "1 memory removed" in page.locator("main").inner_text()
    # forget a scope: the preview first, then exactly that
    go(page, "nav >> text=Forget")
    page.fill("input[name=user_id]", "dana")
    go(page, "button:has-text('Preview')")
    assert "1 memory would be forgotten" in page.locator("main").inner_text()
    assert "Miso" in page.locator("ul.preview").inner_text()
    go(page, "button:has-text('Forget these 1')")
    assert "1 memories removed" in page.locator("main").inner_text()
    with api(server.url, key) as c:  # the API no longer returns them
        assert c.get(f"/v1/memories/{tea}").status_code == 404
        assert c.get("/v1/memories", params={"user_id": "dana"}).json()["memories"] == []
        assert len(c.get("/v1/memories", params={"user_id": "eve"}).json()["memories"]) == 1
    # sign out: the pages ask to sign in again
    go(page, "header >> text=Sign out")
    assert page.url.endswith("/ui/login?signed_out=1")
    page.goto("/ui/memories")
    assert page.url.endswith("/ui/login")


XSS = [
    "<script>window.__xss = 1; alert('script')</script>",
    '"><img src=x id=injected onerror="window.__xss = 2; alert(1)">',
    "javascript:alert(document.cookie)",
    "\u202eRTL override\u202c then text",
    "emoji 🧠🔥",
    "<a id=injected href=javascript:alert(1)>click</a>",
    "L" * 10_000,
]


def test_issue16_browser_attacker_text_renders_as_text(server: LiveServer, visit: Any) -> None:
    key = server.register("xss")
    with api(server.url, key) as c:
        ids = [
            c.post(
                "/v1/memories",
                json={
                    "content": f"xss {text}",
                    "user_id": "mallory",
                    "session_id": "s-xss",
                    "tags": ["<img src=x id=injected onerror=alert(3)>"],
                    "metadata": {"link": "javascript:alert(4)", "h": "<script>alert(5)</script>"},
                },
            ).json()["id"]
            for text in XSS
        ]
        c.post(
            "/v1/sessions/s-xss/items",
            json={
                "items": [
                    {"role": "user", "content": XSS[0]},
                    {"type": "function_call", "name": XSS[1], "arguments": XSS[5]},
                    {"type": XSS[1], "x": XSS[0]},
                ]
            },
        )
        c.post("/v1/triples", json={"subject": "mallory", "predicate": "says", "object": XSS[1]})
    page = visit()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, key)
    for path in [
        "/ui/memories",
        "/ui/memories?q=xss",
        f"/ui/memories/{ids[0]}",
        f"/ui/memories/{ids[1]}",
        "/ui/session?id=s-xss",
        "/ui/sessions",
        "/ui/knowledge?entity=mallory",
        "/ui/forget?user_id=mallory",
    ]:
        page.goto(path)
        for d in page.locator("details").all():
            d.evaluate("el => el.open = true")
        assert page.locator("#injected").count() == 0, path
        assert page.locator("img").count() == 0, path
        assert page.locator("a[href^='javascript:']").count() == 0, path
        assert page.evaluate("window.__xss") is None, path
    page.goto("/ui/memories?q=xss")
    assert "<script>window.__xss = 1;" in page.locator("main").inner_text()
    assert dialogs == []


def test_issue16_browser_csp_header_and_offline_docs(server: LiveServer, visit: Any) -> None:
    key = server.register("csp")
    page = visit()
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    response = page.goto("/ui/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    sign_in(page, key)
    token = page.locator("header input[name=csrf]").get_attribute("value")
    assert token and len(token) >= 20
    for form in page.locator("form[method=post]").all():
        assert form.locator("input[name=csrf]").count() == 1
    page.goto("/docs")
    # Swagger UI renders the whole OpenAPI document in the page's script: on a loaded
    # machine that alone can take longer than the default wait.
    page.wait_for_selector(".swagger-ui .info", timeout=60_000)
    assert "engramdb" in page.locator(".swagger-ui .info").inner_text()
    assert page.locator(".swagger-ui .auth-wrapper .authorize").count() == 1  # keys declared
    assert violations == []
    page.goto("/redoc")
    page.wait_for_selector("h1:has-text('engramdb')")
    # ReDoc always renders Redocly's logo from its CDN; the CSP blocks it (no request is made)
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in v for v in violations), violations


def _tab_through(page: Page) -> tuple[set[str], set[str]]:
    """Every focusable control of the page, and those reached by pressing Tab."""
    controls = set(
        page.evaluate("""() => {
        const sel = 'a[href], button, input:not([type=hidden]), select, textarea, summary';
        let i = 0;
        for (const el of document.querySelectorAll(sel)) {
            if (el.offsetParent !== null || el.tagName === 'SUMMARY') el.dataset.tabId = ++i;
        }
        return [...document.querySelectorAll('[data-tab-id]')].map(e => e.dataset.tabId);
    }""")
    )
    reached: set[str] = set()
    for _ in range(10 * len(controls) + 20):  # a date-time field takes a stop per part
        page.keyboard.press("Tab")
        tab_id = page.evaluate("() => document.activeElement?.dataset?.tabId ?? null")
        if tab_id:
            reached.add(tab_id)
        if reached == controls:
            break
    return controls, reached


def test_issue16_browser_keyboard_reaches_every_control(server: LiveServer, visit: Any) -> None:
    key = server.register("keyboard")
    ids = seed(server.url, key)
    page = visit()
    sign_in(page, key)
    for path in [
        "/ui/memories?q=Alice",
        f"/ui/memories/{ids['tea']}",
        "/ui/forget?user_id=bob",
        "/ui/sessions",
        "/ui/session?id=support-42",
        "/ui/knowledge?entity=alice",
        "/ui/usage",
        "/ui/keys",
    ]:
        page.goto(path)
        controls, reached = _tab_through(page)
        assert len(controls) >= 5, path
        assert controls == reached, f"{path}: Tab never reaches {sorted(controls - reached)}"


def test_issue16_browser_revoked_cookie_and_other_namespace(server: LiveServer, visit: Any) -> None:
    mine, theirs = server.register("mine"), server.register("theirs")
    with api(server.url, theirs) as c:
        other_id = c.post("/v1/memories", json={"content": "not yours"}).json()["id"]
    page = visit()
    sign_in(page, mine)
    response = page.goto(f"/ui/memories/{other_id}")
    assert response is not None and response.status == 404
    assert "not yours" not in page.content()
    with api(server.url, mine) as c:
        key_id = c.get("/v1/keys").json()["keys"][0]["id"]
        assert c.delete(f"/v1/keys/{key_id}").status_code == 200
    page.goto("/ui/memories")
    assert page.url.endswith("/ui/login")
    controls, reached = _tab_through(page)  # the sign-in page too
    assert len(controls) >= 3 and controls == reached


def test_issue16_browser_screenshots_of_every_page(
    server: LiveServer, visit: Any, tmp_path: Path
) -> None:
    key = server.register("shots")
    ids = seed(server.url, key)
    seed_memory_files(server.url, key, server.store, server.settings["memory_root"])
    page = visit()
    sign_in(page, key)
    made = screenshots(page, ids, tmp_path, ADMIN_KEY)
    assert len(made) == 16
    for png in made:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png


XSS_SCOPE = '/srv/<img src=x id=injected onerror="window.__xss = 6; alert(6)">'
XSS_TRACE = (
    "## Task\n<script>window.__xss = 7; alert(7)</script>\n\n## Outcome\nDone.\n\n"
    "## Learnings\n- <a id=injected href=javascript:alert(8)>x</a>\n"
)


def test_issue16_browser_memory_files_diff_delete_trace_reset_scope(
    server: LiveServer, visit: Any
) -> None:
    key = server.register("memory-files")
    root = server.settings["memory_root"]
    xss = "\n- <script>window.__xss = {n}; alert({n})</script> <img src=x id=injected>"
    sessions = {"fix-1": ("fix the build", "fixed the build <img src=x id=injected>")}
    consolidate_sessions(
        server.url,
        key,
        server.store,
        root,
        sessions,
        MD_V1 + xss.format(n=9),
        scope=XSS_SCOPE,
        trace=XSS_TRACE,
    )
    consolidate_sessions(
        server.url,
        key,
        server.store,
        root,
        {"fix-2": ("add lint", "added lint")},
        MD_V2 + xss.format(n=10),
        scope=XSS_SCOPE,
    )
    page = visit()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, key)
    go(page, "nav >> text=Memory files")
    assert "4 calls" in page.locator("table.scopes").inner_text()  # 2 traces, MEMORY.md twice
    go(page, "table.scopes a")  # the scope's page
    md = page.locator("pre.memory-md")
    assert "<script>window.__xss = 10; alert(10)</script>" in md.inner_text()  # text, not HTML
    assert XSS_SCOPE in page.locator("h1").inner_text()
    # the diff between the two versions
    go(page, "text=diff with version 1")
    removed = page.locator(".unified-diff .del").all_inner_texts()
    added = page.locator(".unified-diff .add").all_inner_texts()
    assert any("<script>window.__xss = 9" in line for line in removed)
    assert any("## Deploys" in line for line in added)
    assert any("<script>window.__xss = 10" in line for line in added)
    go(page, "text=Back to the scope")
    # a trace, then delete it with its confirmation
    traces = page.locator("table.traces")
    assert "fixed the build <img src=x id=injected>" in traces.inner_text()
    go(page, "table.traces tr:has-text('fix-1') >> text=read")
    assert "<script>window.__xss = 7; alert(7)</script>" in page.locator("pre.trace").inner_text()
    go(page, "text=Delete this trace")
    go(page, "button.danger")
    assert "The trace of session fix-1 was removed." in page.locator("main").inner_text()
    with api(server.url, key) as c:
        left = c.get("/v1/traces", params={"scope": XSS_SCOPE}).json()["traces"]
        assert [t["session_id"] for t in left] == ["fix-2"]
    # reset the scope: MEMORY.md goes, the other trace stays
    go(page, "text=Continue")
    go(page, "text=Reset MEMORY.md and skills")
    go(page, "button.danger")
    assert "MEMORY.md and skills removed" in page.locator("main").inner_text()
    with api(server.url, key) as c:
        assert c.get("/v1/memory-md", params={"scope": XSS_SCOPE}).status_code == 404
        assert len(c.get("/v1/traces", params={"scope": XSS_SCOPE}).json()["traces"]) == 1
    go(page, "text=Continue")
    assert "No MEMORY.md yet" in page.locator("main").inner_text()
    assert page.locator("#injected").count() == 0 and page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None and dialogs == []


def test_issue16_browser_keyboard_reaches_every_control_of_memory_files(
    server: LiveServer, visit: Any
) -> None:
    key = server.register("keyboard-files")
    seed_memory_files(server.url, key, server.store, server.settings["memory_root"])
    page = visit()
    sign_in(page, key)
    scope = urlencode({"scope": SCOPE})
    for path in [
        "/ui/scopes",
        f"/ui/scope?{scope}",
        f"/ui/scope/diff?{scope}&new=2",
        f"/ui/trace?{scope}&session=shop-checkout-1",
        f"/ui/trace/delete?{scope}&session=shop-checkout-1",
        f"/ui/scope/reset?{scope}",
    ]:
        page.goto(path)
        controls, reached = _tab_through(page)
        assert len(controls) >= 5, path
        assert controls == reached, f"{path}: Tab never reaches {sorted(controls - reached)}"
