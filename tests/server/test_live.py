"""The server as a real process on loopback: crash safety, graceful shutdown, several workers,
several replicas on one PostgreSQL."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer, start_live_server
from tests.pg_server import PgServer

pytestmark = pytest.mark.slow


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    store = str(tmp_path / "data")
    server = start_live_server(store, log_path=tmp_path / "server.log")
    banner = server.log()  # how to reach it and get a key is printed at start
    assert server.url in banner and "/api/keys/register" in banner and "/docs" in banner
    key = server.register()
    acked_memories: list[str] = []
    acked_items: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with _client(server, key) as c:
            n = 0
            while not stop.is_set():
                try:
                    r = c.post("/v1/memories", json={"content": f"memory number {n}"})
                    if r.status_code == 201:
                        acked_memories.append(r.json()["id"])
                    r = c.post("/v1/sessions/log/items", json={"items": [{"n": n}]})
                    if r.status_code == 201:
                        acked_items.append(n)
                except httpx.HTTPError:
                    return  # the server is gone
                n += 1

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 60
    while len(acked_items) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL, mid-stream
    stop.set()
    writer.join(30)
    assert len(acked_items) >= 150

    restarted = start_live_server(store, log_path=tmp_path / "server2.log")
    try:
        with _client(restarted, key) as c:
            items = c.get("/v1/sessions/log/items").json()["items"]
            numbers = [i["n"] for i in items]
            assert numbers[: len(acked_items)] == acked_items  # every ack, in order
            assert numbers == sorted(set(numbers))  # nothing doubled
            for memory_id in acked_memories:
                assert c.get(f"/v1/memories/{memory_id}").status_code == 200, memory_id
    finally:
        restarted.stop()


def _held_request(server: LiveServer, key: str, path: str, body: bytes) -> socket.socket:
    """A request the server is handling but cannot finish yet: its headers ask for
    ``100 Continue``, which uvicorn sends only once the app reads the body; the body is
    still to be sent (``sock.sendall(body)``)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 100 "), received
    return sock


def _refuses_connections(server: LiveServer) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_graceful_shutdown_finishes_in_flight_writes(tmp_path: Path) -> None:
    server = start_live_server(str(tmp_path / "data"), log_path=tmp_path / "server.log")
    assert server.process is not None
    key = server.register()
    batch = [{"content": f"entry {n} of a large batch " + "x" * 200} for n in range(400)]
    outcomes: list[Any] = []  # status or error, per batch request
    stop = threading.Event()

    def body(worker: int | str, n: int) -> dict[str, Any]:
        return {"memories": [{**m, "content": f"{worker}.{n}: {m['content']}"} for m in batch]}

    def send(worker: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                with _client(server, key) as c:  # a new connection per request
                    status: Any = c.post("/v1/memories/batch", json=body(worker, n)).status_code
            except httpx.HTTPError as exc:
                status = exc
                stop.set()
            outcomes.append(status)
            n += 1

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    # batches are being written back to back (a bounded wait on progress, not on time)
    deadline = time.monotonic() + 60
    while outcomes.count(201) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcomes.count(201) >= 2, (outcomes, server.log())
    # one request is certainly in flight when the signal comes: the app is reading its body
    held = _held_request(server, key, "/v1/memories/batch", json.dumps(body("held", 0)).encode())
    server.process.send_signal(signal.SIGTERM)
    # the shutdown has begun once the listening socket is closed (uvicorn closes it, then
    # marks every open connection to close after its response, in one step)
    deadline = time.monotonic() + 60
    while not _refuses_connections(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _refuses_connections(server), server.log()
    with held:
        held.sendall(json.dumps(body("held", 0)).encode())
        answer = b""
        while chunk := held.recv(65536):  # the server closes the connection after answering
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:500]
    held_ids = [m["id"] for m in json.loads(answer.split(b"\r\n\r\n", 1)[1])["memories"]]
    code = server.process.wait(60)
    stop.set()
    for t in threads:
        t.join(60)
    # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM is a clean exit
    assert code in (0, -signal.SIGTERM), server.log()
    # a connection made while the server was closing may be refused or dropped before its
    # request was read; every other request was answered
    assert all(s == 201 or isinstance(s, httpx.TransportError) for s in outcomes), outcomes
    unanswered = sum(1 for s in outcomes if isinstance(s, httpx.TransportError))
    acked = outcomes.count(201) + 1  # and the held one
    restarted = start_live_server(str(tmp_path / "data"))
    try:
        with _client(restarted, key) as c:
            stored = c.get("/v1/stats").json()["memories"]
            assert len(held_ids) == 400  # the held batch was stored
            for memory_id in (held_ids[0], held_ids[-1]):
                assert c.get(f"/v1/memories/{memory_id}").status_code == 200, memory_id
        # every acknowledged batch is there, whole; no batch is half-written
        assert stored % 400 == 0 and acked <= stored // 400 <= acked + unanswered
    finally:
        restarted.stop()


def test_two_workers_share_one_sqlite_store(tmp_path: Path) -> None:
    server = start_live_server(str(tmp_path / "data"), workers=2, log_path=tmp_path / "s.log")
    try:
        key = server.register()

        def append(writer: int) -> None:
            with _client(server, key) as c:
                for n in range(40):
                    r = c.post("/v1/sessions/shared/items", json={"items": [{"w": writer, "n": n}]})
                    assert r.status_code == 201, r.text

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(append, range(6)))
        with _client(server, key) as c:
            items = c.get("/v1/sessions/shared/items").json()["items"]
        assert len(items) == 240 and len({(i["w"], i["n"]) for i in items}) == 240
        for writer in range(6):
            assert [i["n"] for i in items if i["w"] == writer] == list(range(40))
    finally:
        server.stop()


def test_two_replicas_on_one_postgres_serve_the_same_data(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.new_schema()
    a = start_live_server(url, log_path=tmp_path / "a.log")
    b = start_live_server(url, log_path=tmp_path / "b.log")
    try:
        key = a.register()  # a key made on one replica works on the other
        with _client(a, key) as ca, _client(b, key) as cb:
            mem = ca.post("/v1/memories", json={"content": "replicas share the store"}).json()
            assert cb.get(f"/v1/memories/{mem['id']}").json()["content"] == mem["content"]
            hits = cb.post("/v1/memories/recall", json={"query": "replicas", "mode": "text"})
            assert [h["memory"]["id"] for h in hits.json()["hits"]] == [mem["id"]]

            # interleaved appends and pops on one session across both replicas
            expected: list[int] = []
            for n in range(30):
                client = ca if n % 2 else cb
                assert client.post("/v1/sessions/s/items", json={"items": [{"n": n}]}).is_success
                expected.append(n)
                if n % 5 == 4:
                    popper = cb if n % 2 else ca
                    assert popper.post("/v1/sessions/s/pop").json()["item"] == {"n": n}
                    expected.pop()
            assert [i["n"] for i in ca.get("/v1/sessions/s/items").json()["items"]] == expected
            assert [i["n"] for i in cb.get("/v1/sessions/s/items").json()["items"]] == expected

            # concurrent appends through both replicas: nothing lost, nothing doubled
            def append(args: tuple[httpx.Client, int]) -> None:
                client, writer = args
                for n in range(25):
                    r = client.post("/v1/sessions/c/items", json={"items": [{"w": writer, "n": n}]})
                    assert r.status_code == 201

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(append, [(ca, 0), (cb, 1), (ca, 2), (cb, 3)]))
            items = cb.get("/v1/sessions/c/items").json()["items"]
            assert sorted((i["w"], i["n"]) for i in items) == [
                (w, n) for w in range(4) for n in range(25)
            ]

            # an idempotent retry on the other replica is replayed, not stored twice
            h = {"Idempotency-Key": "once"}
            first = ca.post("/v1/sessions/s/items", json={"items": [{"n": 99}]}, headers=h)
            again = cb.post("/v1/sessions/s/items", json={"items": [{"n": 99}]}, headers=h)
            assert first.status_code == again.status_code == 201
            assert again.headers.get("idempotent-replayed") == "true"
            assert ca.get("/v1/sessions/s/items?limit=2").json()["items"][-1] == {"n": 99}
            assert ca.get("/v1/sessions/s").json()["item_count"] == len(expected) + 1

            # revoking on one replica locks the key out of the other at once
            key_id = ca.get("/v1/keys").json()["keys"][0]["id"]
            assert ca.delete(f"/v1/keys/{key_id}").status_code == 200
            assert cb.get("/v1/stats").status_code == 401
    finally:
        a.stop()
        b.stop()
