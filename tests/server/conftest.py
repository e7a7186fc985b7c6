"""Fixtures for the server tests: the real app in process (httpx over ASGI) with keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engramdb.memory import Memory
from engramdb.server import create_app
from engramdb.server.settings import ServerSettings
from engramdb.store import Store
from tests.live_server import ADMIN_KEY


@dataclass
class Api:
    """A test client over the app, plus helpers to make namespace keys."""

    client: TestClient
    memory: Memory

    def key(self, name: str = "tests", **limits: Any) -> str:
        body: dict[str, Any] = {"name": name}
        if limits:
            body["limits"] = limits
        r = self.client.post("/v1/keys", json=body, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 201, r.text
        secret: str = r.json()["api_key"]
        return secret

    def as_key(self, key: str) -> Callable[..., Any]:
        def call(method: str, path: str, **kwargs: Any) -> Any:
            headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
            return self.client.request(method, path, headers=headers, **kwargs)

        return call


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(store: Store) -> Iterator[MakeApi]:
    """``make_api(**settings)``: the app over the test's store with these settings."""
    made: list[TestClient] = []

    def make(**settings: Any) -> Api:
        cfg = ServerSettings(admin_keys=[ADMIN_KEY], embedder="hashing", **settings)
        memory = Memory(store, embedder=cfg.embedder)
        client = TestClient(create_app(settings=cfg, memory=memory), raise_server_exceptions=False)
        made.append(client)
        return Api(client, memory)

    yield make
    for client in made:
        client.close()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()
