"""Driving the web page in Debian's Chromium with Python ``playwright`` (never
``playwright install``: ``make test`` installs the ``chromium`` package when missing).

Shared by the browser tests and by ``python -m tests.ui.screenshots``, which regenerates the
README's screenshots in docs/img/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def unavailable() -> str | None:
    """Why the browser tests cannot run here (``None``: they can)."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"BROWSER TESTS NOT RUN: Debian's Chromium is missing ({CHROMIUM}). `make test` "
            "installs it (`make chromium`: apt-get install chromium, as root); install it to "
            "run tests/ui/test_browser.py"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "BROWSER TESTS NOT RUN: the playwright package is missing (make install)"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium, headless, launched once for a module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Offline:
    """A browser context that lets requests reach the loopback server only; every other
    request is aborted and recorded (the page must need no network)."""

    def __init__(self, browser: Browser, base_url: str, **options: Any) -> None:
        self.base = urlsplit(base_url).netloc
        self.blocked: list[str] = []
        self.context: BrowserContext = browser.new_context(
            base_url=base_url, viewport={"width": 1200, "height": 850}, **options
        )
        self.context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.base or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def go(page: Page, selector: str) -> None:
    """Click what navigates (a link, a form's button) and wait for the next page."""
    with page.expect_navigation():
        page.click(selector)


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/memories")


def api(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=30)


def seed(base_url: str, key: str) -> dict[str, str]:
    """A small namespace to look at: memories of two users (one updated), a conversation with
    a tool call, and facts with a superseded value. Returns ids by name."""
    with api(base_url, key) as c:
        ids: dict[str, str] = {}
        for name, body in {
            "tea": {
                "content": "Alice prefers green tea in the morning",
                "user_id": "alice",
                "tags": ["preference", "drink"],
                "metadata": {"source": "chat", "confidence": "high"},
                "session_id": "support-42",
            },
            "trip": {
                "content": "Alice is travelling to Rome in May",
                "user_id": "alice",
                "tags": ["travel"],
            },
            "bob": {
                "content": "Bob's laptop is a ThinkPad X1",
                "user_id": "bob",
                "tags": ["device"],
            },
            "bob2": {"content": "Bob works on the billing service", "user_id": "bob"},
        }.items():
            r = c.post("/v1/memories", json=body)
            r.raise_for_status()
            ids[name] = r.json()["id"]
        c.patch(
            f"/v1/memories/{ids['tea']}",
            json={"content": "Alice prefers jasmine green tea in the morning"},
        ).raise_for_status()
        items = [
            {"role": "user", "content": "What's the weather in Rome for my trip?"},
            {
                "type": "function_call",
                "name": "get_weather",
                "call_id": "call_1",
                "arguments": '{"city": "Rome", "month": "May"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": '{"forecast": "sunny", "high_c": 24}',
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Sunny, around 24 °C. Enjoy Rome!"}],
            },
        ]
        c.post("/v1/sessions/support-42/items", json={"items": items}).raise_for_status()
        c.post(
            "/v1/memories/extract",
            json={
                "session_id": "onboarding-1",
                "user_id": "alice",
                "infer": False,
                "messages": [{"role": "user", "content": "I am allergic to peanuts"}],
            },
        ).raise_for_status()
        for city, since in (("Paris", "2019-03-01T00:00:00Z"), ("Rome", "2024-09-01T00:00:00Z")):
            c.post(
                "/v1/triples",
                json={
                    "subject": "alice",
                    "predicate": "lives_in",
                    "object": city,
                    "single_valued": True,
                    "valid_from": since,
                },
            ).raise_for_status()
        c.post(
            "/v1/triples", json={"subject": "alice", "predicate": "works_at", "object": "Acme"}
        ).raise_for_status()
        return ids


SCOPE = "/home/dev/shop-api"
"""The scope the screenshots' memory files are about."""
MD_V1 = """# shop-api memory

## Build and test
- run `make test` before committing; the payment tests need `STRIPE_MOCK=1`
- the venv is made by `uv sync`

## Conventions
- money is integer cents, never floats"""
MD_V2 = MD_V1.replace("`uv sync`", "`make install` (uv)") + (
    "\n\n## Deploys\n- staging deploys from `main` on every merge; prod is tagged by hand"
)


def _trace(task: str, learning: str) -> str:
    return f"## Task\n{task}\n\n## Outcome\nDone.\n\n## Learnings\n- {learning}\n"


SESSIONS = {
    "shop-checkout-1": ("fix the failing payment tests", "fixed payment tests (needs STRIPE_MOCK)"),
    "shop-checkout-2": ("round prices correctly", "prices are integer cents"),
    "shop-deploy-3": ("set up the staging deploy", "staging deploys from main"),
}


def consolidate_sessions(
    base_url: str,
    key: str,
    store_target: str,
    root: str | Path,
    sessions: dict[str, tuple[str, str]],
    memory_md: str,
    *,
    scope: str = SCOPE,
    trace: Any = None,
    prefix: str | None = None,
) -> None:
    """Talk ``sessions`` (id -> (what the user asked, the trace's summary)) through the API,
    then consolidate ``scope`` in this process over the server's store (a scripted model
    writes the traces and ``memory_md``), as ``engramdb consolidate`` would; with ``prefix``
    the scope keeps to the sessions whose id starts with it."""
    from engramdb.consolidate import configure_scope, consolidate
    from engramdb.llm.fake import ScriptedLLM
    from engramdb.memory import Memory
    from engramdb.store import open_store

    with api(base_url, key) as c:
        namespace = c.get("/v1/stats").json()["namespace"]
        for sid, (asked, _) in sessions.items():
            c.post(
                f"/v1/sessions/{sid}/items",
                json={"items": [{"role": "user", "content": f"{asked} ({sid})"}]},
            ).raise_for_status()

    def answer(messages: Any) -> dict[str, str]:
        prompt = "\n".join(m.content for m in messages)
        sid = next(s for s in sessions if f"({s})" in prompt)
        asked, summary = sessions[sid]
        text = trace if trace is not None else _trace(asked.capitalize() + ".", summary)
        return {"trace_memory": text, "summary": summary}

    llm = ScriptedLLM([answer] * len(sessions) + [{"memory_md": memory_md, "skills": []}])
    memory = Memory(open_store(store_target), embedder="hashing")
    try:
        if prefix is not None:
            configure_scope(memory.scoped(namespace), scope, session_prefix=prefix)
        run = consolidate(memory.scoped(namespace), llm, scope=scope, root=root, idle_seconds=0)
    finally:
        memory.close()
    assert run.memory_md is not None and run.memory_md.status == "consolidated", run


def seed_memory_files(base_url: str, key: str, store_target: str, root: str | Path) -> None:
    """Two consolidation runs of :data:`SCOPE`: three traces and MEMORY.md versions 1, 2."""
    first = dict(list(SESSIONS.items())[:2])
    consolidate_sessions(base_url, key, store_target, root, first, MD_V1, prefix="shop-")
    last = dict(list(SESSIONS.items())[2:])
    consolidate_sessions(base_url, key, store_target, root, last, MD_V2, prefix="shop-")


PAGES = {
    "login": "/ui/login",
    "memories": "/ui/memories?q=Alice+tea&mode=hybrid",
    "memory": "/ui/memories/{tea}",
    "provenance": "/ui/memories?q=peanuts",
    "forget": "/ui/forget?user_id=bob",
    "sessions": "/ui/sessions",
    "session": "/ui/session?id=support-42",
    "knowledge": "/ui/knowledge?entity=alice",
    "usage": "/ui/usage",
    "keys": "/ui/keys",
    "scopes": "/ui/scopes",
    "scope": "/ui/scope?{scope}",
    "scope-diff": "/ui/scope/diff?{scope}&new=2",
    "trace": "/ui/trace?{scope}&session=shop-checkout-1",
}
"""Every page, by screenshot name (``{tea}``: the seeded memory's id; ``{scope}``: the
memory files' scope as a query parameter, see :func:`seed_memory_files`)."""


def screenshots(page: Page, ids: dict[str, str], out: Path, admin_key: str) -> list[Path]:
    """A PNG of each page (signed in; the memories page with one explain open) and the admin's
    keys page, written to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, path in PAGES.items():
        if name == "login":
            continue
        page.goto(path.format(scope=urlencode({"scope": SCOPE}), **ids))
        if name == "memories":
            page.locator("details.explain summary").first.click()
        if name == "provenance":  # the memory extracted from a conversation
            go(page, "li.memory a.content")
        if name == "session":
            page.locator("li.tool_call summary").first.click()
        made.append(out / f"ui-{name}.png")
        page.screenshot(path=str(made[-1]), full_page=True)
    go(page, "header button[type=submit]")  # sign out
    made.append(out / "ui-login.png")
    page.screenshot(path=str(made[-1]), full_page=True)
    page.fill("#key", admin_key)
    go(page, "main button[type=submit]")
    made.append(out / "ui-keys-admin.png")
    page.screenshot(path=str(made[-1]), full_page=True)
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info")
    made.append(out / "ui-docs.png")
    page.screenshot(path=str(made[-1]))
    return made
