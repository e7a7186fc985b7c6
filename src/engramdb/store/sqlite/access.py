"""API keys, usage counters and idempotent requests in SQLite (mixed into :class:`SQLiteStore`).

Every write runs in one ``BEGIN IMMEDIATE`` transaction, which holds SQLite's write lock from
its first statement: a read-then-write inside it (a quota check, a claim) cannot interleave
with another writer, thread or process.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Any

from ...errors import ConflictError
from ...types import ApiKey, IdempotentResponse, Quota, datetime_from_us, now_us
from ..base import NewKey
from ..quota import quota_error
from ..rows import IDEMPOTENCY_COLUMNS, KEY_COLUMNS, idempotent_record, key_record, to_json


class AccessMixin:
    """SQL for the server's bookkeeping; needs ``_read``/``_write`` from the store core."""

    _read: Any
    _write: Any

    def _reader(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._read()  # type: ignore[no-any-return]

    def _writer(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._write()  # type: ignore[no-any-return]

    # -- API keys --------------------------------------------------------------------------
    def key_insert(self, namespace: str, key: NewKey) -> ApiKey:
        now = now_us()
        with self._writer() as conn:
            # DO NOTHING covers both the id and the secret_hash uniqueness
            inserted = conn.execute(
                "INSERT INTO api_keys (id, namespace, name, purpose, prefix, secret_hash, limits, "
                "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    key.id,
                    namespace,
                    key.name,
                    key.purpose,
                    key.prefix,
                    key.secret_hash,
                    to_json(key.limits),
                    now,
                    key.created_by,
                ),
            ).rowcount
        if not inserted:
            raise ConflictError("an API key with this id or secret already exists")
        return ApiKey(
            id=key.id,
            namespace=namespace,
            name=key.name,
            purpose=key.purpose,
            prefix=key.prefix,
            limits=dict(key.limits),
            created_at=datetime_from_us(now),
            revoked_at=None,
            created_by=key.created_by,
        )

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
        return key_record(row) if row else None

    def key_list(self, namespace: str | None) -> list[ApiKey]:
        with self._reader() as conn:
            if namespace is None:
                rows = conn.execute(
                    f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, rowid"
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = ? "
                    "ORDER BY created_at, rowid",
                    (namespace,),
                ).fetchall()
        return [key_record(row) for row in rows]

    def key_revoke(self, namespace: str, key_id: str) -> ApiKey | None:
        with self._writer() as conn:
            # coalesce: revoking again keeps the first revocation time
            row = conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                f"WHERE namespace = ? AND id = ? RETURNING {KEY_COLUMNS}",
                (now_us(), namespace, key_id),
            ).fetchone()
        return key_record(row) if row else None

    def namespace_exists(self, namespace: str) -> bool:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE namespace = ?1) "
                "OR EXISTS (SELECT 1 FROM memories WHERE namespace = ?1) "
                "OR EXISTS (SELECT 1 FROM triples WHERE namespace = ?1) "
                "OR EXISTS (SELECT 1 FROM sessions WHERE namespace = ?1)",
                (namespace,),
            ).fetchone()
        return bool(row[0])

    # -- stored counts and quotas ----------------------------------------------------------
    def usage_counts(self, namespace: str) -> dict[str, int]:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT memories, facts FROM namespace_counts WHERE namespace = ?", (namespace,)
            ).fetchone()
        return {"memories": int(row[0]) if row else 0, "facts": int(row[1]) if row else 0}

    def usage_recount(self, namespace: str) -> dict[str, int]:
        with self._writer() as conn:
            memories, facts = conn.execute(
                "SELECT (SELECT count(*) FROM memories WHERE namespace = ?1), "
                "(SELECT count(*) FROM triples WHERE namespace = ?1)",
                (namespace,),
            ).fetchone()
            conn.execute(
                "INSERT INTO namespace_counts (namespace, memories, facts) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace) DO UPDATE SET memories = excluded.memories, "
                "facts = excluded.facts",
                (namespace, memories, facts),
            )
        return {"memories": int(memories), "facts": int(facts)}

    def quota_check(self, namespace: str, quota: Quota, *, memories: int, facts: int) -> None:
        # inside atomic(), this read is in the write transaction: BEGIN IMMEDIATE holds the
        # write lock, so the counts cannot change before the block commits or rolls back
        counts = self.usage_counts(namespace)
        error = quota_error(quota, counts, {"memories": memories, "facts": facts})
        if error is not None:
            raise error

    # -- usage counters --------------------------------------------------------------------
    def usage_add(
        self,
        namespace: str,
        subject: str,
        counter: str,
        window: str,
        amount: int,
        limit: int | None,
    ) -> tuple[bool, int]:
        where = (namespace, subject, counter, window)
        with self._writer() as conn:
            row = conn.execute(
                "SELECT value FROM usage WHERE namespace = ? AND subject = ? AND counter = ? "
                'AND "window" = ?',
                where,
            ).fetchone()
            current = int(row[0]) if row else 0
            if limit is not None and current + amount > limit:
                return False, current
            conn.execute(
                'INSERT INTO usage (namespace, subject, counter, "window", value) '
                'VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, subject, counter, "window") '
                "DO UPDATE SET value = value + excluded.value",
                (*where, amount),
            )
            return True, current + amount

    def usage_get(self, namespace: str, subject: str, window: str) -> dict[str, int]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT counter, value FROM usage WHERE namespace = ? AND subject = ? "
                'AND "window" = ? ORDER BY counter',
                (namespace, subject, window),
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # -- idempotent requests ---------------------------------------------------------------
    def idempotency_claim(
        self, namespace: str, key: str, request_hash: str, *, stale_after: float
    ) -> IdempotentResponse | None:
        now = now_us()
        with self._writer() as conn:
            row = conn.execute(
                f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO idempotency (namespace, key, request_hash, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (namespace, key, request_hash, now),
                )
                return None
            record = idempotent_record(row)
            if record.status is None and row[3] < now - int(stale_after * 1_000_000):
                # the first attempt died without releasing its claim: take it over
                conn.execute(
                    "UPDATE idempotency SET request_hash = ?, created_at = ? "
                    "WHERE namespace = ? AND key = ?",
                    (request_hash, now, namespace, key),
                )
                return None
            return record

    def idempotency_complete(self, namespace: str, key: str, status: int, body: bytes) -> None:
        with self._writer() as conn:
            conn.execute(
                "UPDATE idempotency SET status = ?, body = ? WHERE namespace = ? AND key = ?",
                (status, body, namespace, key),
            )

    def idempotency_release(self, namespace: str, key: str) -> None:
        with self._writer() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE namespace = ? AND key = ? AND status IS NULL",
                (namespace, key),
            )

    def idempotency_purge(self, older_than: int) -> int:
        with self._writer() as conn:
            return int(
                conn.execute("DELETE FROM idempotency WHERE created_at < ?", (older_than,)).rowcount
            )
