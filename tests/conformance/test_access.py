"""The server's bookkeeping in the store: API keys, usage counters and idempotent requests,
run on every backend."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from engramdb.errors import ConflictError
from engramdb.store import Store
from engramdb.store.base import NewKey
from engramdb.types import now_us
from tests.conftest import Backend


def new_key(n: int, **changes: object) -> NewKey:
    fields: dict[str, object] = {
        "id": f"key_{n}",
        "secret_hash": hashlib.sha256(f"secret {n}".encode()).hexdigest(),
        "name": f"key number {n}",
        "purpose": None,
        "prefix": f"egk_{n:04d}",
        "limits": {},
    }
    fields.update(changes)
    return NewKey(**fields)  # type: ignore[arg-type]


def recent(value: datetime) -> bool:
    return abs(datetime.now(UTC) - value) < timedelta(minutes=1)


# -- API keys ------------------------------------------------------------------------------


def test_key_insert_lookup_and_list(store: Store) -> None:
    limits: dict[str, int | None] = {"recalls_per_day": 500, "max_memories": None}
    a1 = store.key_insert("a", new_key(1, purpose="ci bot", limits=limits))
    a2 = store.key_insert("a", new_key(2))
    b1 = store.key_insert("b", new_key(3))
    assert (a1.id, a1.namespace, a1.name, a1.purpose, a1.prefix) == (
        "key_1",
        "a",
        "key number 1",
        "ci bot",
        "egk_0001",
    )
    assert a1.limits == limits and a1.active and a1.revoked_at is None
    assert recent(a1.created_at)

    assert store.key_by_hash(new_key(1).secret_hash) == a1
    assert store.key_by_hash(new_key(3).secret_hash) == b1  # across namespaces
    assert store.key_by_hash("0" * 64) is None

    assert store.key_list("a") == [a1, a2]  # oldest first, only that namespace
    assert store.key_list("b") == [b1]
    assert store.key_list("nobody") == []
    assert store.key_list(None) == [a1, a2, b1]


def test_key_revoke_is_idempotent_and_scoped_to_its_namespace(store: Store) -> None:
    key = store.key_insert("a", new_key(1))
    other = store.key_insert("b", new_key(2))

    assert store.key_revoke("b", key.id) is None  # another namespace's key: untouched
    assert store.key_revoke("a", "no_such_key") is None
    assert store.key_by_hash(new_key(1).secret_hash) == key

    revoked = store.key_revoke("a", key.id)
    assert revoked is not None and not revoked.active and revoked.revoked_at is not None
    assert recent(revoked.revoked_at)
    assert revoked.created_at == key.created_at and revoked.name == key.name
    time.sleep(0.002)
    assert store.key_revoke("a", key.id) == revoked  # the first revocation time stays
    assert store.key_by_hash(new_key(1).secret_hash) == revoked  # still found, as revoked
    assert store.key_list("a") == [revoked]
    assert store.key_list("b") == [other] and other.active


def test_duplicate_secret_or_id_is_a_conflict(store: Store) -> None:
    secret_hash = new_key(1).secret_hash
    key = store.key_insert("a", new_key(1))
    with pytest.raises(ConflictError):
        store.key_insert("b", new_key(2, secret_hash=secret_hash))
    with pytest.raises(ConflictError):
        store.key_insert("a", new_key(2, id=key.id))
    assert store.key_list(None) == [key]
    assert store.key_by_hash(secret_hash) == key
    assert store.key_by_hash(new_key(2).secret_hash) is None


# -- usage counters ------------------------------------------------------------------------


def test_usage_add_respects_the_limit(store: Store) -> None:
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 0, 5) == (True, 0)
    assert store.usage_get("a", "key_1", "2026-11-21") == {"recalls": 0}  # created by amount 0
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 3, 5) == (True, 3)
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 3, 5) == (False, 3)
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 2, 5) == (True, 5)
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 1, 5) == (False, 5)
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 0, 5) == (True, 5)
    # no limit never refuses
    assert store.usage_add("a", "key_1", "recalls", "2026-11-21", 1000, None) == (True, 1005)
    # a refused first add creates nothing
    assert store.usage_add("a", "key_1", "writes", "2026-11-21", 7, 5) == (False, 0)
    assert store.usage_get("a", "key_1", "2026-11-21") == {"recalls": 1005}


def test_usage_windows_subjects_and_namespaces_are_independent(store: Store) -> None:
    assert store.usage_add("a", "key_1", "recalls", "day-1", 4, 4) == (True, 4)
    assert store.usage_add("a", "key_1", "recalls", "day-2", 4, 4) == (True, 4)
    assert store.usage_add("a", "key_2", "recalls", "day-1", 4, 4) == (True, 4)
    assert store.usage_add("b", "key_1", "recalls", "day-1", 4, 4) == (True, 4)
    assert store.usage_add("a", "key_1", "memories", "day-1", 2, None) == (True, 2)
    assert store.usage_add("a", "key_1", "recalls", "day-1", 1, 4) == (False, 4)
    assert store.usage_get("a", "key_1", "day-1") == {"recalls": 4, "memories": 2}
    assert store.usage_get("a", "key_1", "day-2") == {"recalls": 4}
    assert store.usage_get("a", "key_1", "day-3") == {}
    assert store.usage_get("c", "key_1", "day-1") == {}


def test_concurrent_usage_adds_never_exceed_the_limit(store: Store) -> None:
    accepted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def adder() -> None:
        try:
            for _ in range(50):
                added, value = store.usage_add("a", "key_1", "recalls", "day", 1, 100)
                assert value <= 100
                if added:
                    with lock:
                        accepted.append(value)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=adder) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(accepted) == 100
    assert sorted(accepted) == list(range(1, 101))  # every accepted add saw its own value
    assert store.usage_get("a", "key_1", "day") == {"recalls": 100}


# -- idempotent requests -------------------------------------------------------------------


def test_idempotency_claim_replay_and_release(store: Store) -> None:
    assert store.idempotency_claim("a", "idem-1", "hash-1", stale_after=60) is None
    pending = store.idempotency_claim("a", "idem-1", "hash-1", stale_after=60)
    assert pending is not None and pending.status is None and pending.body is None
    assert pending.request_hash == "hash-1" and recent(pending.created_at)
    # the same key in another namespace is another record
    assert store.idempotency_claim("b", "idem-1", "hash-9", stale_after=60) is None

    body = b'{"ok": true}\x00\xff'
    store.idempotency_complete("a", "idem-1", 201, body)
    done = store.idempotency_claim("a", "idem-1", "other-hash", stale_after=60)
    assert done is not None
    assert (done.request_hash, done.status, done.body) == ("hash-1", 201, body)
    assert done.created_at == pending.created_at
    store.idempotency_release("a", "idem-1")  # a finished record is not released
    assert store.idempotency_claim("a", "idem-1", "hash-1", stale_after=60) == done

    # a failed request releases its claim; a retry then runs again
    store.idempotency_release("b", "idem-1")
    assert store.idempotency_claim("b", "idem-1", "hash-9", stale_after=60) is None
    store.idempotency_complete("b", "idem-1", 200, b"")
    replay = store.idempotency_claim("b", "idem-1", "hash-9", stale_after=60)
    assert replay is not None and replay.status == 200 and replay.body == b""


def test_stale_claim_is_taken_over(store: Store) -> None:
    assert store.idempotency_claim("a", "idem", "first", stale_after=60) is None
    time.sleep(0.05)
    fresh = store.idempotency_claim("a", "idem", "second", stale_after=10)
    assert fresh is not None and fresh.request_hash == "first"  # still running
    before = now_us()
    assert store.idempotency_claim("a", "idem", "second", stale_after=0.01) is None
    taken = store.idempotency_claim("a", "idem", "third", stale_after=60)
    assert taken is not None and taken.status is None and taken.request_hash == "second"
    assert taken.created_at >= datetime.fromtimestamp(before / 1e6, UTC) - timedelta(seconds=1)
    # a finished record is never taken over, however old
    store.idempotency_complete("a", "idem", 200, b"done")
    time.sleep(0.05)
    done = store.idempotency_claim("a", "idem", "fourth", stale_after=0.01)
    assert done is not None and done.status == 200 and done.request_hash == "second"


def test_concurrent_claims_have_one_winner(store: Store) -> None:
    results: list[object] = []
    errors: list[BaseException] = []

    def claimer(n: int) -> None:
        try:
            results.append(store.idempotency_claim("a", "race", f"hash-{n}", stale_after=60))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 8
    assert results.count(None) == 1


def test_idempotency_purge(store: Store) -> None:
    store.idempotency_claim("a", "old-done", "h", stale_after=60)
    store.idempotency_complete("a", "old-done", 200, b"x")
    store.idempotency_claim("b", "old-pending", "h", stale_after=60)
    time.sleep(0.002)
    cutoff = now_us()
    time.sleep(0.002)
    store.idempotency_claim("a", "new", "h", stale_after=60)

    assert store.idempotency_purge(cutoff - 10_000_000) == 0
    assert store.idempotency_purge(cutoff) == 2  # every namespace, finished or not
    assert store.idempotency_purge(cutoff) == 0
    assert store.idempotency_claim("a", "old-done", "h2", stale_after=60) is None  # gone
    assert store.idempotency_claim("b", "old-pending", "h2", stale_after=60) is None
    kept = store.idempotency_claim("a", "new", "h2", stale_after=60)
    assert kept is not None and kept.request_hash == "h"


# -- durability ----------------------------------------------------------------------------


def test_everything_survives_reopening(backend: Backend, store: Store) -> None:
    key = store.key_insert("a", new_key(1, limits={"requests_per_second": 10}))
    gone = store.key_insert("a", new_key(2))
    revoked = store.key_revoke("a", gone.id)
    store.usage_add("a", key.id, "recalls", "day", 7, None)
    store.idempotency_claim("a", "done", "h1", stale_after=60)
    store.idempotency_complete("a", "done", 201, b"\x00body")
    store.idempotency_claim("a", "running", "h2", stale_after=60)
    store.close()

    reopened = backend.open()
    try:
        assert reopened.key_list(None) == [key, revoked]
        assert reopened.key_by_hash(new_key(1).secret_hash) == key
        assert reopened.usage_get("a", key.id, "day") == {"recalls": 7}
        assert reopened.usage_add("a", key.id, "recalls", "day", 1, 7) == (False, 7)
        done = reopened.idempotency_claim("a", "done", "h1", stale_after=60)
        assert done is not None and (done.status, done.body) == (201, b"\x00body")
        running = reopened.idempotency_claim("a", "running", "h2", stale_after=60)
        assert running is not None and running.status is None
    finally:
        reopened.close()
