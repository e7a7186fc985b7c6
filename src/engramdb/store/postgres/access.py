"""API keys, usage counters and idempotent requests in PostgreSQL (mixed into
:class:`PostgresStore`).

Transactions run at READ COMMITTED, so nothing here reads and then writes on the strength of
that read: each change is one conditional statement (an upsert guarded by the limit, a claim
that inserts or does nothing, a takeover that updates only a still-stale row), and PostgreSQL's
row locks make concurrent callers queue and re-check the condition on the newest row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from ...errors import ConflictError, StoreError
from ...types import ApiKey, IdempotentResponse, Quota, datetime_from_us, now_us
from ..base import NewKey
from ..quota import quota_error
from ..rows import IDEMPOTENCY_COLUMNS, KEY_COLUMNS, idempotent_record, key_record, to_json

Conn = psycopg.Connection[tuple[Any, ...]]
_T = TypeVar("_T")


class AccessMixin:
    """SQL for the server's bookkeeping; needs ``run``/``read`` from the store core."""

    def run(self, work: Callable[[Conn], _T], *, write: bool = True) -> _T:
        raise NotImplementedError

    def read(self, work: Callable[[Conn], _T]) -> _T:
        raise NotImplementedError

    # -- API keys --------------------------------------------------------------------------
    def key_insert(self, namespace: str, key: NewKey) -> ApiKey:
        now = now_us()

        def work(conn: Conn) -> bool:
            # DO NOTHING covers both the id and the secret_hash uniqueness
            return (
                conn.execute(
                    "INSERT INTO api_keys (id, namespace, name, purpose, prefix, secret_hash, "
                    "limits, created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
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
                ).fetchone()
                is not None
            )

        if not self.run(work):
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
        row = self.read(
            lambda conn: conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = %s", (secret_hash,)
            ).fetchone()
        )
        return key_record(row) if row else None

    def key_list(self, namespace: str | None) -> list[ApiKey]:
        def work(conn: Conn) -> list[tuple[Any, ...]]:
            if namespace is None:
                return conn.execute(
                    f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
                ).fetchall()
            return conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = %s ORDER BY created_at, id",
                (namespace,),
            ).fetchall()

        return [key_record(row) for row in self.read(work)]

    def key_revoke(self, namespace: str, key_id: str) -> ApiKey | None:
        now = now_us()

        def work(conn: Conn) -> tuple[Any, ...] | None:
            # coalesce: revoking again keeps the first revocation time
            return conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) "
                f"WHERE namespace = %s AND id = %s RETURNING {KEY_COLUMNS}",
                (now, namespace, key_id),
            ).fetchone()

        row = self.run(work)
        return key_record(row) if row else None

    def namespace_exists(self, namespace: str) -> bool:
        row = self.read(
            lambda conn: conn.execute(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE namespace = %(ns)s) "
                "OR EXISTS (SELECT 1 FROM memories WHERE namespace = %(ns)s) "
                "OR EXISTS (SELECT 1 FROM triples WHERE namespace = %(ns)s) "
                "OR EXISTS (SELECT 1 FROM sessions WHERE namespace = %(ns)s)",
                {"ns": namespace},
            ).fetchone()
        )
        return bool(row and row[0])

    # -- stored counts and quotas ----------------------------------------------------------
    def usage_counts(self, namespace: str) -> dict[str, int]:
        row = self.read(
            lambda conn: conn.execute(
                "SELECT memories, facts FROM namespace_counts WHERE namespace = %s", (namespace,)
            ).fetchone()
        )
        return {"memories": int(row[0]) if row else 0, "facts": int(row[1]) if row else 0}

    def usage_recount(self, namespace: str) -> dict[str, int]:
        def work(conn: Conn) -> dict[str, int]:
            from .memories import _count

            _count(conn, namespace)  # lock the counts row: concurrent writers wait for this
            row = conn.execute(
                "UPDATE namespace_counts SET "
                "memories = (SELECT count(*) FROM memories WHERE namespace = %(ns)s), "
                "facts = (SELECT count(*) FROM triples WHERE namespace = %(ns)s) "
                "WHERE namespace = %(ns)s RETURNING memories, facts",
                {"ns": namespace},
            ).fetchone()
            assert row is not None
            return {"memories": int(row[0]), "facts": int(row[1])}

        return self.run(work)

    def quota_check(self, namespace: str, quota: Quota, *, memories: int, facts: int) -> None:
        def work(conn: Conn) -> dict[str, int]:
            # FOR UPDATE: inside atomic() the writes before this already hold the row (they
            # updated it); outside, this waits for concurrent writers and sees their result
            row = conn.execute(
                "SELECT memories, facts FROM namespace_counts WHERE namespace = %s FOR UPDATE",
                (namespace,),
            ).fetchone()
            return {"memories": int(row[0]) if row else 0, "facts": int(row[1]) if row else 0}

        error = quota_error(quota, self.run(work), {"memories": memories, "facts": facts})
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
        params = {
            "ns": namespace,
            "subject": subject,
            "counter": counter,
            "window": window,
            "amount": amount,
            "limit": limit,
        }

        def work(conn: Conn) -> tuple[bool, int]:
            # A new row is inserted only if the amount alone fits; an existing row is locked
            # and updated only if the sum fits. Nothing returned: refused (the row, if any,
            # stays locked until commit, so the value read next is the one that refused).
            row = conn.execute(
                'INSERT INTO usage (namespace, subject, counter, "window", value) '
                "SELECT %(ns)s, %(subject)s, %(counter)s, %(window)s, %(amount)s "
                "WHERE %(limit)s::bigint IS NULL OR %(amount)s <= %(limit)s::bigint "
                'ON CONFLICT (namespace, subject, counter, "window") '
                "DO UPDATE SET value = usage.value + excluded.value "
                "WHERE %(limit)s::bigint IS NULL OR usage.value + excluded.value <= %(limit)s "
                "RETURNING value",
                params,
            ).fetchone()
            if row is not None:
                return True, int(row[0])
            current = conn.execute(
                "SELECT value FROM usage WHERE namespace = %(ns)s AND subject = %(subject)s "
                'AND counter = %(counter)s AND "window" = %(window)s',
                params,
            ).fetchone()
            return False, int(current[0]) if current else 0

        return self.run(work)

    def usage_get(self, namespace: str, subject: str, window: str) -> dict[str, int]:
        rows = self.read(
            lambda conn: conn.execute(
                "SELECT counter, value FROM usage WHERE namespace = %s AND subject = %s "
                'AND "window" = %s ORDER BY counter',
                (namespace, subject, window),
            ).fetchall()
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- idempotent requests ---------------------------------------------------------------
    def idempotency_claim(
        self, namespace: str, key: str, request_hash: str, *, stale_after: float
    ) -> IdempotentResponse | None:
        def work(conn: Conn) -> IdempotentResponse | None:
            now = now_us()
            # Each statement sees the latest commits (READ COMMITTED): if the record vanishes
            # between them (released, purged), the next round inserts it afresh.
            for _ in range(5):
                if conn.execute(
                    "INSERT INTO idempotency (namespace, key, request_hash, created_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (namespace, key, request_hash, now),
                ).fetchone():
                    return None
                # a claim whose first attempt died without releasing it: take it over (of two
                # racing takers, the second re-checks the row the first updated, and fails)
                if conn.execute(
                    "UPDATE idempotency SET request_hash = %s, created_at = %s "
                    "WHERE namespace = %s AND key = %s AND status IS NULL AND created_at < %s "
                    "RETURNING 1",
                    (request_hash, now, namespace, key, now - int(stale_after * 1_000_000)),
                ).fetchone():
                    return None
                row = conn.execute(
                    f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency "
                    "WHERE namespace = %s AND key = %s",
                    (namespace, key),
                ).fetchone()
                if row is not None:
                    return idempotent_record(row)
            raise StoreError(f"idempotency key {key!r} kept changing while being claimed; retry")

        return self.run(work)

    def idempotency_complete(self, namespace: str, key: str, status: int, body: bytes) -> None:
        self.run(
            lambda conn: conn.execute(
                "UPDATE idempotency SET status = %s, body = %s WHERE namespace = %s AND key = %s",
                (status, body, namespace, key),
            )
        )

    def idempotency_release(self, namespace: str, key: str) -> None:
        self.run(
            lambda conn: conn.execute(
                "DELETE FROM idempotency WHERE namespace = %s AND key = %s AND status IS NULL",
                (namespace, key),
            )
        )

    def idempotency_purge(self, older_than: int) -> int:
        return self.run(
            lambda conn: int(
                conn.execute(
                    "DELETE FROM idempotency WHERE created_at < %s", (older_than,)
                ).rowcount
            )
        )
