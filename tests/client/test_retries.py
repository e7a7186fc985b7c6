"""Retries against a real server: lost responses, gateways, rate limits, a restart.

Faults are injected in the network path only (a transport in front of the real server): the
server really runs each request, so a retried write shows whether it was applied twice.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from engramdb import (
    AsyncClient,
    Client,
    RateLimitError,
    ServerError,
    StoreUnavailableError,
)
from tests.client.conftest import AsyncFaults, Faults, path_is
from tests.live_server import LiveServer, free_port

FAST = {"backoff": 0.01}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the (sync) client sleeps between attempts, in order; it still sleeps them."""
    seen: list[float] = []
    sleep = time.sleep

    def recorded(seconds: float) -> None:
        seen.append(seconds)
        sleep(seconds)

    monkeypatch.setattr("engramdb.client.time.sleep", recorded)
    return seen


def idempotency_keys(requests: list[httpx.Request]) -> list[str | None]:
    return [r.headers.get("idempotency-key") for r in requests]


def test_lost_responses_of_writes_are_retried_and_applied_once(
    live_server: LiveServer, key: str
) -> None:
    faults = Faults().lose(when=lambda r: r.method in ("POST", "PATCH"))
    with Client(live_server.url, key, transport=faults, **FAST) as c:
        assert c.add_items("s", [{"n": 1}, {"n": 2}, {"n": 3}]) == 3
        posts = [r for r in faults.requests if r.method == "POST"]
        assert len(posts) == 2  # the attempt whose answer was lost, and the retry
        keys = idempotency_keys(posts)
        assert keys[0] is not None and keys[0] == keys[1]
        assert faults.responses[-1].headers.get("idempotent-replayed") == "true"

        faults.lose(when=path_is("POST", "/pop"))
        assert c.pop_item("s") == {"n": 3}  # the first pop's answer, replayed
        assert c.get_items("s") == [{"n": 1}, {"n": 2}]  # popped once, not twice

        faults.lose(when=path_is("POST", "/v1/memories"))
        memory = c.remember("remembered once")
        faults.lose(when=path_is("PATCH", memory.id))
        assert c.update(memory.id, content="changed once").version == 2
        faults.lose(when=path_is("POST", "/v1/triples"))
        c.learn("Ada", "likes", "tea")
        faults.lose(when=path_is("POST", "/clear"))
        assert c.clear_session("s") == 2

        stats = c.stats()
        assert (stats["memories"], stats["triples"]) == (2, 1)  # the memory + the fact's
        assert [v.version for v in c.history(memory.id)] == [1]
        assert len(c.facts("Ada")) == 1 and c.get_items("s") == []
    # every write call used one key for all its attempts, and a new one per call
    writes = [r for r in faults.requests if r.method in ("POST", "PATCH")]
    per_call = {k for k in idempotency_keys(writes)}
    assert None not in per_call and len(per_call) == len(writes) // 2


def test_each_call_gets_its_own_idempotency_key(client: Client) -> None:
    client.add_items("s", [{"same": True}])
    client.add_items("s", [{"same": True}])  # a second call, not a retry: stored again
    assert client.get_items("s") == [{"same": True}, {"same": True}]


def test_without_retries_a_lost_response_is_an_error(live_server: LiveServer, key: str) -> None:
    faults = Faults().lose(when=path_is("POST", "/items"))
    with Client(live_server.url, key, transport=faults, retries=0) as c:
        with pytest.raises(StoreUnavailableError, match=r"connection .* failed"):
            c.add_items("s", [{"n": 1}])
        assert c.get_items("s") == [{"n": 1}]  # it did run: that is why writes carry keys


def test_gateway_errors_are_retried_for_safe_calls_only(live_server: LiveServer, key: str) -> None:
    faults = (
        Faults()
        .answer(502, when=path_is("GET", "/items"), text="bad gateway")
        .answer(504, when=path_is("GET", "/items"))
        .answer(
            503,
            when=path_is("POST", "/items"),
            json={"error": {"code": "store_unavailable", "message": "database is locked"}},
        )
    )
    with Client(live_server.url, key, transport=faults, **FAST) as c:
        assert c.add_items("s", [{"n": 1}]) == 1
        assert c.get_items("s") == [{"n": 1}]
        assert len(faults.requests) == 5
        assert c.get_items("s") == [{"n": 1}]  # stored once

    register = Faults().answer(502, when=path_is("POST", "/api/keys/register"), text="oops")
    with pytest.raises(ServerError, match="502") as caught:
        Client.register(live_server.url, "agent", transport=register)
    assert caught.value.status == 502 and len(register.requests) == 1  # never repeated


def test_retries_give_up_with_the_last_error(
    live_server: LiveServer, key: str, waits: list[float]
) -> None:
    faults = Faults().answer(
        503,
        n=10,
        json={"error": {"code": "store_unavailable", "message": "the store is down"}},
    )
    with (
        Client(live_server.url, key, transport=faults, retries=2, **FAST) as c,
        pytest.raises(StoreUnavailableError, match="the store is down") as caught,
    ):
        c.stats()
    assert caught.value.status == 503 and len(faults.requests) == 3

    # an unreachable server: every attempt is refused at connect; the client waits only its
    # own short backoff between them (what it waits is read, not timed: the machine is shared)
    refused = Faults()
    waits.clear()
    with (
        Client(f"http://127.0.0.1:{free_port()}", key, transport=refused, retries=2, **FAST) as c,
        pytest.raises(StoreUnavailableError, match="cannot connect"),
    ):
        c.remember("lost")
    assert len(refused.requests) == 3
    assert len(waits) == 2 and all(0 < w <= FAST["backoff"] * 2 for w in waits), waits


def test_rate_limit_is_waited_out_then_succeeds(
    live_server: LiveServer, admin: Client, waits: list[float]
) -> None:
    limited = admin.create_key("slow", limits={"requests_per_second": 1})  # a new namespace
    faults = Faults()
    with Client(live_server.url, limited.api_key, transport=faults) as c:
        for n in range(4):  # the burst allows 2; the others wait for Retry-After
            c.add_items("s", [{"n": n}])
        assert c.get_items("s") == [{"n": n} for n in range(4)]
    statuses = [r.status_code for r in faults.responses]
    assert 429 in statuses and statuses[-1] == 200
    # after each 429 the client waited at least the Retry-After the server asked for
    asked = [float(r.headers["retry-after"]) for r in faults.responses if r.status_code == 429]
    assert asked and all(a >= 1 for a in asked) and len(waits) == len(asked), (asked, waits)
    assert all(w >= a for w, a in zip(waits, asked, strict=True)), (asked, waits)

    with (
        Client(live_server.url, limited.api_key, retries=0) as impatient,
        pytest.raises(RateLimitError) as caught,
    ):
        for _ in range(5):
            impatient.get_items("s")
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


def test_a_server_restart_between_calls_is_ridden_out(live_server: LiveServer, key: str) -> None:
    with Client(live_server.url, key, retries=10, backoff=0.5, max_retry_wait=4) as c:
        c.add_items("s", [{"before": "restart"}])
        memory = c.remember("survives the restart")
        live_server.stop()
        restart = threading.Thread(target=live_server.start)
        restart.start()
        try:
            # the server is down: the client keeps trying until it is back
            assert c.get_items("s") == [{"before": "restart"}]
            assert c.add_items("s", [{"after": "restart"}]) == 1
            assert c.get(memory.id) == memory
        finally:
            restart.join()
        assert c.get_items("s") == [{"before": "restart"}, {"after": "restart"}]


@pytest.mark.anyio
async def test_async_lost_responses_are_retried_and_applied_once(
    live_server: LiveServer, key: str
) -> None:
    faults = AsyncFaults().lose(n=2, when=lambda r: r.method == "POST")
    async with AsyncClient(live_server.url, key, transport=faults, **FAST) as c:
        assert await c.add_items("s", [{"n": 1}, {"n": 2}]) == 2
        faults.lose(when=path_is("POST", "/pop"))
        assert await c.pop_item("s") == {"n": 2}
        assert await c.get_items("s") == [{"n": 1}]
    posts = [r for r in faults.requests if r.method == "POST"]
    assert len(posts) == 5  # add: lost twice, then replayed; pop: lost once, then replayed
    assert len(set(idempotency_keys(posts[:3]))) == 1
    assert len(set(idempotency_keys(posts[3:]))) == 1
