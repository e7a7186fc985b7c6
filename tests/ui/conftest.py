"""Fixtures for the web page's tests: the app in process (TestClient) with helpers to make
keys and sign in, and (in test_browser.py) a real server driven by Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engramdb.llm.fake import ScriptedLLM
from engramdb.memory import Memory
from engramdb.server import create_app
from engramdb.server.settings import ServerSettings
from engramdb.store import Store
from tests.live_server import ADMIN_KEY

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass
class Ui:
    """The app in process: ``api(key)`` calls the REST API, ``browser(key)`` is a signed-in
    TestClient (its own cookie jar)."""

    app: FastAPI
    root: Path | None = None
    """The server's ``memory_root`` (consolidation's files)."""
    llm: ScriptedLLM | None = None
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        c = TestClient(self.app, raise_server_exceptions=False)
        self.clients.append(c)
        return c

    def key(self, name: str = "tests", **limits: Any) -> str:
        body: dict[str, Any] = {"name": name}
        if limits:
            body["limits"] = limits
        r = self.client().post("/v1/keys", json=body, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 201, r.text
        secret: str = r.json()["api_key"]
        return secret

    def api(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        c = self.clients[0] if self.clients else self.client()
        return c.request(method, path, headers={"X-API-Key": key}, **kwargs)

    def namespace(self, key: str) -> str:
        found: str = self.api(key, "GET", "/v1/stats").json()["namespace"]
        return found

    def memory(self, key: str) -> Memory:
        """The facade of ``key``'s namespace (as the server's routes get it)."""
        memory: Memory = self.app.state.services.memory.scoped(self.namespace(key))
        return memory

    def browser(self, key: str) -> TestClient:
        c = self.client()
        form = c.get("/ui/login")
        r = c.post(
            "/ui/login",
            data={"csrf": csrf_of(form.text), "key": key},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c


def _ui(store: Store, root: Path, llm: ScriptedLLM | None = None) -> Ui:
    cfg = ServerSettings(
        admin_keys=[ADMIN_KEY], embedder="hashing", registration="admin", memory_root=str(root)
    )
    memory = Memory(store, embedder=cfg.embedder, llm=llm)
    return Ui(create_app(settings=cfg, memory=memory), root=root, llm=llm)


@pytest.fixture
def ui(store: Store, tmp_path: Path) -> Iterator[Ui]:
    made = _ui(store, tmp_path / "memories")
    yield made
    for c in made.clients:
        c.close()


@pytest.fixture
def ui_llm(store: Store, tmp_path: Path) -> Iterator[Ui]:
    """:func:`ui` whose server has a scripted model (``ui.llm``: add its answers)."""
    made = _ui(store, tmp_path / "memories", ScriptedLLM())
    yield made
    for c in made.clients:
        c.close()
