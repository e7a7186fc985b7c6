"""Issue 14 "one record shape" end to end: the server's JSON for a memory, the record the
client parses from it, the library's record and the exported line are one shape; issue 17
item 4 through the client (limit, min_score, batch errors, occurred_at, history limit)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from engramdb import Client, Memory
from engramdb.errors import InvalidInputError
from engramdb.transfer import export_records
from engramdb.types import EntryError, MemoryRecord
from tests.live_server import LiveServer


def test_issue14_record_shape_server_client_library_export_agree(
    live_server: LiveServer, client: Client, key: str
) -> None:
    made = client.remember(
        "Ada prefers tea",
        user_id="ada",
        tags=["prefs"],
        metadata={"n": 1},
        occurred_at=datetime(2026, 5, 1, 16, 30),  # naive: UTC
    )
    client.update(made.id, content="Ada prefers green tea")
    raw = httpx.get(f"{live_server.url}/v1/memories/{made.id}", headers={"X-API-Key": key}).json()
    parsed = client.get(made.id)
    assert parsed == MemoryRecord.from_dict(raw)
    assert parsed.to_dict() == raw  # the client's record says exactly what the server said
    assert raw["occurred_at"] == "2026-05-01T16:30:00Z" and raw["created_at"].endswith("Z")
    namespace = client.stats()["namespace"]
    with Memory(live_server.store, embedder=None) as mem:  # the server's own database
        stored = mem.get(made.id, namespace=namespace)
        assert stored == parsed
        lines = list(export_records(mem, [namespace]))
    line = next(x for x in lines if x.get("type") == "memory" and x.get("id") == made.id)
    assert {k: v for k, v in raw.items() if k != "namespace"} == {
        k: v for k, v in line.items() if k not in ("type", "embedding_model", "history")
    }
    assert [v.to_dict() for v in client.history(made.id)] == [
        {"memory_id": made.id, **v} for v in line["history"]
    ]


def test_issue17_api_client_speaks_the_library_api(client: Client) -> None:
    """The client takes ``limit``, ``min_score``, ``errors`` and times as the library does,
    refusing the same bad values with the same messages before sending."""
    out = client.remember_many(
        [{"content": "Ada prefers green tea"}, {"content": " "}, {"content": "Bob fixes bikes"}],
        errors="skip",
    )
    assert isinstance(out[0], MemoryRecord) and isinstance(out[2], MemoryRecord)
    assert isinstance(out[1], EntryError) and out[1].index == 1
    assert out[1].code == "validation_error" and "content" in out[1].message
    with pytest.raises(InvalidInputError):
        client.remember_many([{"content": "x"}, {"content": " "}])
    assert len(client.list().items) == 2

    hits = client.recall("green tea", mode="text")
    assert [h.memory.content for h in hits] == ["Ada prefers green tea"]
    every = client.recall("green tea", mode="text", min_score=None, limit=10)
    assert len(every) >= len(hits)
    for bad in (0, -1, 10_001, None):
        with pytest.raises(InvalidInputError, match="limit must be an integer from 1 to 10,000"):
            client.recall("tea", limit=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="limit must be an integer from 1"):
        client.facts(limit=0)
    with pytest.raises(InvalidInputError, match=r"occurred_at.*2026-05-01T14:30:00Z"):
        client.remember("when?", occurred_at="next tuesday")
    made = client.remember("dated", occurred_at="2026-05-01T16:30:00+02:00")
    assert made.occurred_at == datetime(2026, 5, 1, 14, 30, tzinfo=UTC)
    for n in range(3):
        client.update(made.id, content=f"dated, version {n + 2}")
    assert [v.version for v in client.history(made.id, limit=2)] == [2, 3]
    assert len(client.history(made.id)) == 3
