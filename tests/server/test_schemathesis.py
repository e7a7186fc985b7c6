"""Property-based requests generated from the OpenAPI spec (schemathesis): whatever a client
sends, the server answers with a 2xx or a typed 4xx error body, never a 5xx."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from engramdb.memory import Memory
from engramdb.server import create_app
from engramdb.server.settings import ServerSettings
from engramdb.store import open_store
from tests.live_server import ADMIN_KEY

KEYS: dict[str, str] = {}
SEEN: dict[int, int] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    store = open_store(Path(tmp_path_factory.mktemp("schemathesis")) / "data")
    cfg = ServerSettings(admin_keys=[ADMIN_KEY], embedder="hashing", max_body_bytes=65536)
    app = create_app(settings=cfg, memory=Memory(store, embedder="hashing"))
    # a namespace with some data, so generated ids and queries meet real rows
    keys = app.state.services.keys
    KEYS["tenant"] = keys.create("fuzz", "fuzz")[1]
    app.state.services.memory.scoped("fuzz").remember("seed memory", tags=["seed"])
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def test_no_server_errors(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 25  # every route is in the spec

    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for operation, mode in itertools.product(operations, modes):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            for headers in ({"X-API-Key": KEYS["tenant"]}, {}):
                response = case.call(headers=headers)
                SEEN[response.status_code] = SEEN.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case.method, case.path, response.text)
                if response.status_code >= 400:
                    assert set(response.json()["error"]) == {"code", "message"}, response.text

        try:
            check()
        except Unsatisfiable:
            # an operation without parameters or body has nothing to make invalid
            assert mode is GenerationMode.NEGATIVE, operation.label
    # the generated requests reached the handlers, valid and invalid ones alike
    assert SEEN.get(200, 0) > 50 and SEEN.get(422, 0) > 50 and SEEN.get(400, 0) > 50, SEEN
