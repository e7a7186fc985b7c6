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
from urllib.parse import urlsplit

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
}
"""Every page, by screenshot name (``{tea}``: the seeded memory's id)."""


def screenshots(page: Page, ids: dict[str, str], out: Path, admin_key: str) -> list[Path]:
    """A PNG of each page (signed in; the memories page with one explain open) and the admin's
    keys page, written to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, path in PAGES.items():
        if name == "login":
            continue
        page.goto(path.format(**ids))
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
