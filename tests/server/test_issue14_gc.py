"""The served app's heap is frozen for the garbage collector while it runs (issue 14): a full
collection then skips the app's own long-lived objects instead of pausing every request in
flight to walk them."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engramdb.server import create_app
from engramdb.server.app import SETTINGS_ENV, app_from_environment
from engramdb.server.settings import ServerSettings


class _Cycle:
    """Garbage only a collection frees (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def test_issue14_gc_served_app_freezes_its_heap_while_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(store=str(tmp_path / "data"), embedder="none")
    monkeypatch.setenv(SETTINGS_ENV, settings.model_dump_json())
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage
    with TestClient(app_from_environment()) as client:  # runs the lifespan
        assert gc.get_freeze_count() > 0
        assert gone() is None  # garbage is collected before the freeze, not kept for good
        assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0  # a stopped app leaves the process as it was


def test_issue14_gc_embedded_app_leaves_the_collector_alone(tmp_path: Path) -> None:
    # an app built into someone else's process (tests, an embedding host) does not freeze
    # the host's objects
    settings = ServerSettings(store=str(tmp_path / "data"), embedder="none")
    with TestClient(create_app(settings=settings)):
        assert gc.get_freeze_count() == 0
