"""A real ``engramdb serve`` subprocess on loopback, for tests that need a live server.

``start_live_server(store_target, **settings)`` picks a free port, starts the server with
``ENGRAMDB_*`` settings (plus a known admin key) and waits until ``/health`` answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "admin-test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    store: str
    port: int
    settings: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    admin_key: str = ADMIN_KEY
    keys: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> LiveServer:
        # a bound, not a goal: on a loaded shared machine two workers took over 60 s to answer
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAMDB_")}
        env.update(
            {
                "ENGRAMDB_STORE": self.store,
                "ENGRAMDB_PORT": str(self.port),
                "ENGRAMDB_ADMIN_KEYS": ADMIN_KEY,
                "ENGRAMDB_EMBEDDER": "none",
                "ENGRAMDB_LOG_LEVEL": "warning",
            }
        )
        for name, value in self.settings.items():
            env[f"ENGRAMDB_{name.upper()}"] = str(value)
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engramdb", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout}s: {self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return "(no log)"

    def register(self, name: str = "tests") -> str:
        """A new namespace key (via the admin API, so it works with registration closed)."""
        r = httpx.post(
            f"{self.url}/v1/keys", json={"name": name}, headers={"X-API-Key": self.admin_key}
        )
        r.raise_for_status()
        key: str = r.json()["api_key"]
        self.keys.append(key)
        return key

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful shutdown (SIGTERM); returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group (workers too)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def start_live_server(
    store_target: str, *, log_path: Path | None = None, port: int | None = None, **settings: Any
) -> LiveServer:
    """Start ``engramdb serve`` over ``store_target`` with extra settings (``workers=2``,
    ``recalls_per_day=3``, ...); stop it with ``.stop()`` or ``.kill()``."""
    server = LiveServer(store_target, port or free_port(), settings, log_path=log_path)
    return server.start()
