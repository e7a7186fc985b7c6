"""Issue 10, items 16 and 17, on a real server process: a database file deleted or replaced
under the server, and workers whose supervisor was SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from engramdb.server import create_app
from engramdb.store import Store
from tests.live_server import ROOT, LiveServer, free_port, start_live_server

pytestmark = pytest.mark.slow


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)


def _remember(client: httpx.Client, content: str) -> httpx.Response:
    return client.post("/v1/memories", json={"content": content})


def _serve_once(data: Path) -> subprocess.CompletedProcess[str]:
    """``engramdb serve`` over ``data``, expected to refuse to start (bounded by a timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAMDB_")}
    return subprocess.run(
        [sys.executable, "-m", "engramdb", "serve", "-d", str(data), "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _assert_unavailable(response: httpx.Response) -> None:
    """A 503 whose body names no internal detail (the file's path): the log has the why."""
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and "server log" in error["message"], error
    assert "engram.db" not in response.text


def test_item_16_health_reflects_the_store_on_every_backend(store: Store) -> None:
    with TestClient(create_app(store)) as client:
        healthy = client.get("/health")
        assert healthy.status_code == 200
        assert healthy.json()["status"] == "healthy" and "error" not in healthy.json()
        store.close()  # the store can no longer serve anything
        unhealthy = client.get("/health")
    assert unhealthy.status_code == 503
    assert unhealthy.json()["status"] == "unhealthy"
    assert unhealthy.json()["error"]["code"] == "store_unavailable"


def test_item_16_live_server_refuses_writes_once_its_database_file_is_deleted(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = start_live_server(str(data), log_path=tmp_path / "server.log")
    try:
        key = server.register()
        with _client(server, key) as c:
            assert _remember(c, "acknowledged before").status_code == 201
            (data / "engram.db").unlink()
            _assert_unavailable(_remember(c, "sent after the deletion"))
            _assert_unavailable(c.post("/v1/sessions/chat/items", json={"items": [{"n": 1}]}))
            health = c.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy"
            assert health.json()["error"]["code"] == "store_unavailable"
            assert "engram.db" not in health.text
        assert "was deleted" in server.log()  # and the server logged it
    finally:
        server.stop()
    refused = _serve_once(data)
    assert refused.returncode != 0
    assert "is missing" in refused.stderr and "--recreate" in refused.stderr, refused.stderr
    assert not (data / "engram.db").exists()  # no new, empty database in its place


def test_item_16_live_server_refuses_writes_once_its_database_file_is_replaced(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = start_live_server(str(data), log_path=tmp_path / "server.log")
    try:
        key = server.register()
        with _client(server, key) as c:
            kept = [_remember(c, f"kept memory {n}").json()["id"] for n in range(3)]
            backup = sqlite3.connect(tmp_path / "backup.db")
            with sqlite3.connect(data / "engram.db") as live:
                live.backup(backup)
            backup.close()
            os.replace(tmp_path / "backup.db", data / "engram.db")  # restored under the server
            for n in range(3):
                _assert_unavailable(_remember(c, f"refused memory {n}"))
            health = c.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert "was replaced" in server.log()
    finally:
        server.stop()
    restarted = start_live_server(str(data), log_path=tmp_path / "server2.log")
    try:
        with _client(restarted, key) as c:
            assert c.get("/health").json()["status"] == "healthy"
            listed = c.get("/v1/memories", params={"limit": 100}).json()["memories"]
            # everything acknowledged is there; what was refused is nowhere
            assert sorted(m["id"] for m in listed) == sorted(kept)
            assert _remember(c, "written after the restart").status_code == 201
    finally:
        restarted.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan may wait to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_item_17_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = start_live_server(str(tmp_path / "data"), workers=2, log_path=tmp_path / "s.log")
    assert server.process is not None
    supervisor = server.process.pid
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [pid for pid in _children(supervisor) if _running(pid)]
            time.sleep(0.1)
        assert len(workers) >= 2, server.log()
        os.kill(supervisor, signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a timing goal
        while time.monotonic() < deadline:
            if not any(_running(pid) for pid in workers) and _port_free(server.port):
                break
            time.sleep(0.2)
        assert [pid for pid in workers if _running(pid)] == [], server.log()
        assert _port_free(server.port)
    finally:
        for pid in workers:  # on failure, do not leave orphans behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
