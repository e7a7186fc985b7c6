"""Fixtures for the client tests: the live server of the test run, a fresh key per test, and
transports that inject network faults in front of the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from engramdb import AsyncClient, Client
from tests.live_server import LiveServer


@pytest.fixture
def key(live_server: LiveServer) -> str:
    """A new namespace key: every test sees an empty namespace of its own."""
    return live_server.register("client-tests")


@pytest.fixture
def client(live_server: LiveServer, key: str) -> Iterator[Client]:
    with Client(live_server.url, key) as c:
        yield c


@pytest.fixture
def admin(live_server: LiveServer) -> Iterator[Client]:
    with Client(live_server.url, live_server.admin_key) as c:
        yield c


@pytest.fixture
async def aclient(live_server: LiveServer, key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_server.url, key) as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Rule = Callable[[httpx.Request], bool]


def always(request: httpx.Request) -> bool:
    return True


class Faults(httpx.BaseTransport):
    """Forwards to the real server, except for injected faults.

    ``lose``: the first ``n`` matching requests reach the server and run, but their response
    is lost on the way back (the connection drops). ``answer``: the first ``n`` matching
    requests never reach the server; a gateway answers ``status`` instead.
    """

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []
        self._lose: list[Any] = []
        self._answer: list[Any] = []

    def lose(self, n: int = 1, when: Rule = always) -> Faults:
        self._lose.append([n, when])
        return self

    def answer(self, status: int, n: int = 1, when: Rule = always, **kwargs: Any) -> Faults:
        self._answer.append([n, when, status, kwargs])
        return self

    def _take(self, rules: list[Any], request: httpx.Request) -> Any:
        for rule in rules:
            if rule[0] > 0 and rule[1](request):
                rule[0] -= 1
                return rule
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        canned = self._take(self._answer, request)
        if canned is not None:
            return httpx.Response(canned[2], request=request, **canned[3])
        response = self.inner.handle_request(request)
        self.responses.append(response)
        if self._take(self._lose, request) is not None:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer (injected)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncFaults(httpx.AsyncBaseTransport):
    """:class:`Faults` for the AsyncClient."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self._lose: list[Any] = []

    def lose(self, n: int = 1, when: Rule = always) -> AsyncFaults:
        self._lose.append([n, when])
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        for rule in self._lose:
            if rule[0] > 0 and rule[1](request):
                rule[0] -= 1
                await response.aread()
                await response.aclose()
                raise httpx.ReadError("connection reset by peer (injected)", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def path_is(method: str, suffix: str) -> Rule:
    return lambda r: r.method == method and r.url.path.endswith(suffix)
