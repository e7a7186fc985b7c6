"""``engramdb migrate``: a populated SQLite store round-trips into PostgreSQL, resumably."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from engramdb import Memory, Session
from engramdb.cli import app
from engramdb.embed import HashingEmbedder
from engramdb.errors import ConflictError
from engramdb.store import open_store
from engramdb.store.base import NewKey
from engramdb.store.transfer import transfer
from tests.pg_server import PgServer

ITEMS = [
    {"role": "user", "content": 'héllo 👋 "quoted" \\ \u202e', "z": 1, "a": 2},
    {"deep": {"k": [1, 2.5, None, True, 1e-300]}},
    {},
]


def populate(data_dir: Path) -> dict[str, str]:
    store = open_store(data_dir)
    Session("chat", store).add_items(ITEMS)
    s2 = Session("chat", store, namespace="tenant-b")
    s2.add_items([{"n": n} for n in range(30)])
    s2.pop_item()  # sequence numbers have a gap: order must still survive
    Session("emptied", store).add_items([{"x": 1}])
    Session("emptied", store).clear_session()
    mem = Memory(store, embedder=HashingEmbedder(64))
    a = mem.remember(
        "Ada prefers green tea",
        user_id="ada",
        session_id="chat",
        tags=["prefs", "Drinks"],
        metadata={"source": "chat", "n": 3},
        importance=0.8,
        occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    mem.update(a.id, content="Ada prefers jasmine tea", importance=0.9)
    mem.remember_many([{"content": f"note number {n}", "user_id": "bob"} for n in range(40)])
    Memory(store, embedder=None).remember("stored without a vector")
    mem.learn("Ada", "lives_in", "London", single_valued=True)
    mem.learn("Ada", "lives_in", "Paris", single_valued=True)
    mem.remember("tenant b memory", namespace="tenant-b")
    store.close()
    return {"updated": a.id}


def test_sqlite_store_round_trips_into_postgres(tmp_path: Path, pg_server: PgServer) -> None:
    data_dir = tmp_path / "data"
    ids = populate(data_dir)
    url = pg_server.new_schema()
    source, target = open_store(data_dir), open_store(url)
    try:
        report = transfer(source, target, batch_size=7)
        assert report.ok, report.mismatches
        assert report.source_counts == report.target_counts
        assert report.copied["memories"] == report.source_counts["memories"] == 44
        assert report.copied["history"] == 1 and report.copied["triples"] == 2
        assert sorted(report.namespaces) == ["default", "tenant-b"]

        # everything reads back the same through the facades
        for ns in ("default", "tenant-b"):
            for sid in ("chat", "emptied"):
                assert (
                    Session(sid, target, namespace=ns).get_items()
                    == Session(sid, source, namespace=ns).get_items()
                )
        assert Session("chat", target).get_items() == ITEMS
        old = Memory(source, embedder=HashingEmbedder(64))
        new = Memory(target, embedder=HashingEmbedder(64))
        assert new.get(ids["updated"]) == old.get(ids["updated"])
        assert new.history(ids["updated"]) == old.history(ids["updated"])
        assert list(new.export()) == list(old.export())
        assert new.stats() == old.stats()
        assert new.facts("ada", include_history=True) == old.facts("ada", include_history=True)
        hits = new.recall("jasmine", mode="vector", filters={"user_id": "ada"})
        assert [h.memory.id for h in hits] == [ids["updated"]]
        assert [h.memory.id for h in new.recall("drinks", mode="text")] == [ids["updated"]]

        # resumable: a second run copies nothing and still verifies
        again = transfer(source, target)
        assert again.ok and sum(again.copied.values()) == 0
        assert again.skipped["memories"] == 44
    finally:
        source.close()
        target.close()


def test_interrupted_migration_resumes(tmp_path: Path, pg_server: PgServer) -> None:
    data_dir = tmp_path / "data"
    populate(data_dir)
    url = pg_server.new_schema()
    source, target = open_store(data_dir), open_store(url)
    try:
        transfer(source, target)
        with psycopg.connect(url, autocommit=True) as conn:  # lose part of the copy
            conn.execute("DELETE FROM memories WHERE id IN (SELECT id FROM memories LIMIT 10)")
            conn.execute(
                "DELETE FROM session_items WHERE session_id = 'chat' AND namespace = 'tenant-b' "
                "AND seq > 20"
            )
            conn.execute("DELETE FROM triples WHERE valid_to IS NOT NULL")
        report = transfer(source, target)
        assert report.ok, report.mismatches
        assert report.copied["memories"] == 10 and report.copied["triples"] == 1
        assert report.copied["session_items"] == 8
    finally:
        source.close()
        target.close()


def test_conflicting_target_is_refused(tmp_path: Path, pg_server: PgServer) -> None:
    data_dir = tmp_path / "data"
    populate(data_dir)
    url = pg_server.new_schema()
    target = open_store(url)
    Session("chat", target).add_items([{"something": "else"}])
    source = open_store(data_dir)
    try:
        with pytest.raises(ConflictError, match="different items"):
            transfer(source, target)
    finally:
        source.close()
        target.close()


def test_migrate_command(tmp_path: Path, pg_server: PgServer) -> None:
    data_dir = tmp_path / "data"
    populate(data_dir)
    url = pg_server.new_schema()
    result = CliRunner().invoke(app, ["migrate", "--from", str(data_dir), "--to", url])
    assert result.exit_code == 0, result.output
    assert "checksums match" in result.output
    result = CliRunner().invoke(app, ["migrate", "--from", str(tmp_path / "nothing"), "--to", url])
    assert result.exit_code == 1 and "no engramdb database" in result.output


def _key(n: int, **changes: object) -> NewKey:
    fields: dict[str, object] = {
        "id": f"key_{n}",
        "secret_hash": hashlib.sha256(f"secret {n}".encode()).hexdigest(),
        "name": f"key {n}",
        "purpose": "tests" if n % 2 else None,
        "prefix": f"egk_{n}",
        "limits": {"recalls_per_day": 10 * n, "max_memories": None},
    }
    fields.update(changes)
    return NewKey(**fields)  # type: ignore[arg-type]


def test_api_keys_are_migrated(tmp_path: Path, pg_server: PgServer) -> None:
    data_dir = tmp_path / "data"
    populate(data_dir)
    source = open_store(data_dir)
    source.key_insert("default", _key(1))
    source.key_insert("default", _key(2))
    source.key_insert("keys-only", _key(3))  # a namespace holding nothing but a key
    source.key_revoke("default", "key_2")
    # not copied: short-lived bookkeeping
    source.usage_add("default", "key_1", "recalls", "day", 3, None)
    source.idempotency_claim("default", "idem", "h", stale_after=60)
    url = pg_server.new_schema()
    target = open_store(url)
    try:
        report = transfer(source, target, batch_size=2)
        assert report.ok, report.mismatches
        assert report.copied["api_keys"] == report.source_counts["api_keys"] == 3
        assert sorted(report.namespaces) == ["default", "keys-only", "tenant-b"]
        assert target.key_list(None) == source.key_list(None)  # ids, times, revocations
        for n in (1, 2, 3):
            secret_hash = _key(n).secret_hash
            assert target.key_by_hash(secret_hash) == source.key_by_hash(secret_hash)
        assert target.usage_get("default", "key_1", "day") == {}
        assert target.idempotency_claim("default", "idem", "h", stale_after=60) is None

        again = transfer(source, target)
        assert again.ok and again.copied["api_keys"] == 0 and again.skipped["api_keys"] == 3

        # a key revoked in the source after a run is revoked in the target by the next one
        source.key_revoke("default", "key_1")
        third = transfer(source, target)
        assert third.ok, third.mismatches
        assert third.copied["api_keys"] == 1
        assert target.key_list("default") == source.key_list("default")
        assert not any(k.active for k in target.key_list("default"))
    finally:
        source.close()
        target.close()


def test_key_with_the_same_secret_under_another_id_is_refused(
    tmp_path: Path, pg_server: PgServer
) -> None:
    source = open_store(tmp_path / "data")
    source.key_insert("default", _key(1))
    target = open_store(pg_server.new_schema())
    target.key_insert("default", _key(1, id="key_other"))
    try:
        with pytest.raises(ConflictError, match="same secret"):
            transfer(source, target)
    finally:
        source.close()
        target.close()


def test_issue11_migrate_carries_invalidation_and_memory_events(
    tmp_path: Path, pg_server: PgServer
) -> None:
    from engramdb.store.base import NewMemoryEvent

    source = open_store(tmp_path / "data")
    mem = Memory(source, embedder=HashingEmbedder(64))
    live = mem.remember("a live memory")
    wrong = mem.remember("an invalidated memory")
    mem.record_events([NewMemoryEvent(live.id, "add", model="fake", item_seqs=(1, 2))])
    mem.invalidate(wrong.id, reason="contradicted")
    url = pg_server.new_schema()
    target = open_store(url)
    try:
        transfer(source, target)
        transfer(source, target)  # a repeated migrate records no event twice
        copied = Memory(target, embedder=HashingEmbedder(64))
        assert copied.get(wrong.id).invalidated_reason == "contradicted"
        assert wrong.id not in [h.memory.id for h in copied.recall("invalidated memory")]
        for memory_id in (live.id, wrong.id):
            assert [
                (e.at, e.action, e.reason, e.model, e.item_seqs) for e in mem.events(memory_id)
            ] == [
                (e.at, e.action, e.reason, e.model, e.item_seqs) for e in copied.events(memory_id)
            ]
    finally:
        target.close()
        source.close()
