"""Lease-locked jobs, the same SQL on every backend.

Each function runs inside the caller's write transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: the claim locks the row with ``FOR UPDATE``), on a DB-API connection whose
``execute`` returns a cursor. Statements are written with ``?`` placeholders; ``mark`` is the
backend's (``?`` or ``%s``). Every write after the claim is conditioned on the ownership token.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..types import Job, ScopeSettings, Spend, SpendDay, datetime_from_us, now_us
from .rows import JOB_COLUMNS, JOB_EXPIRED_ERROR, job_claim_plan, job_record

_KEY = "namespace = ? AND kind = ? AND job_key = ?"
_OWNED = _KEY + " AND token = ? AND status = 'running'"
_SPEND = (
    "sessions = sessions + ?, llm_calls = llm_calls + ?, input_tokens = input_tokens + ?, "
    "output_tokens = output_tokens + ?"
)


def _spent(spend: Spend | None) -> tuple[int, int, int, int]:
    spend = spend or Spend()
    return (spend.sessions, spend.llm_calls, spend.input_tokens, spend.output_tokens)


def _sql(statement: str, mark: str) -> str:
    return statement if mark == "?" else statement.replace("?", mark)


def claim(
    conn: Any,
    mark: str,
    namespace: str,
    kind: str,
    job_key: str,
    owner: str,
    ttl: float,
    max_attempts: int,
    *,
    lock: str = "",
) -> Job | None:
    """The body of ``Store.job_claim``; ``lock`` is appended to the row read (``FOR UPDATE``)."""
    now = now_us()
    key = (namespace, kind, job_key)
    conn.execute(
        _sql(
            "INSERT INTO jobs (namespace, kind, job_key, status, attempts, max_attempts, "
            "created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            mark,
        ),
        (*key, max_attempts, now, now),
    )
    row = conn.execute(
        _sql(f"SELECT status, lease_expires_at, attempts, retry_at FROM jobs WHERE {_KEY}", mark)
        + lock,
        key,
    ).fetchone()
    status, expires, attempts, retry_at = row
    plan, attempts_after = job_claim_plan(
        status,
        None if expires is None else int(expires),
        int(attempts),
        max_attempts,
        None if retry_at is None else int(retry_at),
        now,
    )
    if plan == "exhaust":
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'failed', token = NULL, lease_expires_at = NULL, "
                f"last_error = ?, updated_at = ? WHERE {_KEY}",
                mark,
            ),
            (JOB_EXPIRED_ERROR, now, *key),
        )
    if plan != "claim":
        return None
    token = secrets.token_urlsafe(24)
    conn.execute(
        _sql(
            "UPDATE jobs SET status = 'running', owner = ?, token = ?, lease_expires_at = ?, "
            "heartbeat_at = ?, attempts = ?, max_attempts = ?, retry_at = NULL, updated_at = ? "
            f"WHERE {_KEY}",
            mark,
        ),
        (owner, token, now + int(ttl * 1_000_000), now, attempts_after, max_attempts, now, *key),
    )
    return get(conn, mark, namespace, kind, job_key, token=token)


def heartbeat(
    conn: Any, mark: str, namespace: str, kind: str, job_key: str, token: str, ttl: float
) -> bool:
    now = now_us()
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ?, updated_at = ? "
                f"WHERE {_OWNED}",
                mark,
            ),
            (now + int(ttl * 1_000_000), now, now, namespace, kind, job_key, token),
        ).rowcount
    )


def complete(
    conn: Any,
    mark: str,
    namespace: str,
    kind: str,
    job_key: str,
    token: str,
    input_watermark: str | None,
    spend: Spend | None = None,
) -> bool:
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'done', token = NULL, lease_expires_at = NULL, "
                f"input_watermark = ?, last_error = NULL, retry_at = NULL, {_SPEND}, "
                f"updated_at = ? WHERE {_OWNED}",
                mark,
            ),
            (input_watermark, *_spent(spend), now_us(), namespace, kind, job_key, token),
        ).rowcount
    )


def fail(
    conn: Any,
    mark: str,
    namespace: str,
    kind: str,
    job_key: str,
    token: str,
    error: str,
    retry_in: float,
    spend: Spend | None = None,
) -> bool:
    now = now_us()
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' "
                "ELSE 'pending' END, "
                "retry_at = CASE WHEN attempts >= max_attempts THEN NULL ELSE ? END, "
                f"token = NULL, lease_expires_at = NULL, last_error = ?, {_SPEND}, "
                f"updated_at = ? WHERE {_OWNED}",
                mark,
            ),
            (
                now + int(retry_in * 1_000_000),
                error,
                *_spent(spend),
                now,
                namespace,
                kind,
                job_key,
                token,
            ),
        ).rowcount
    )


def release(
    conn: Any,
    mark: str,
    namespace: str,
    kind: str,
    job_key: str,
    token: str,
    spend: Spend | None = None,
) -> bool:
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'pending', token = NULL, lease_expires_at = NULL, "
                "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                f"{_SPEND}, updated_at = ? WHERE {_OWNED}",
                mark,
            ),
            (*_spent(spend), now_us(), namespace, kind, job_key, token),
        ).rowcount
    )


def reset(conn: Any, mark: str, namespace: str, kind: str, job_key: str) -> bool:
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'pending', attempts = 0, retry_at = NULL, "
                f"last_error = NULL, updated_at = ? WHERE {_KEY} AND status <> 'running'",
                mark,
            ),
            (now_us(), namespace, kind, job_key),
        ).rowcount
    )


def get(
    conn: Any, mark: str, namespace: str, kind: str, job_key: str, *, token: str | None = None
) -> Job | None:
    row = conn.execute(
        _sql(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {_KEY}", mark), (namespace, kind, job_key)
    ).fetchone()
    return job_record(row, token) if row else None


def list_jobs(
    conn: Any, mark: str, namespace: str, kind: str | None, status: str | None
) -> list[Job]:
    query, params = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = ?", [namespace]
    if kind is not None:
        query += " AND kind = ?"
        params.append(kind)
    if status is not None:
        query += " AND status = ?"
        params.append(status)
    query += " ORDER BY kind, job_key"
    return [job_record(row) for row in conn.execute(_sql(query, mark), params).fetchall()]


# -- the spend ledger ------------------------------------------------------------------------
def spend_add(conn: Any, mark: str, namespace: str, day: str, scope: str, spend: Spend) -> None:
    """Add ``spend`` to the ledger row of ``(namespace, day, scope)``."""
    conn.execute(
        _sql(
            "INSERT INTO spend_days (namespace, day, scope, sessions, llm_calls, input_tokens, "
            "output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, day, scope) DO UPDATE SET "
            "sessions = spend_days.sessions + excluded.sessions, "
            "llm_calls = spend_days.llm_calls + excluded.llm_calls, "
            "input_tokens = spend_days.input_tokens + excluded.input_tokens, "
            "output_tokens = spend_days.output_tokens + excluded.output_tokens",
            mark,
        ),
        (namespace, day, scope, *_spent(spend)),
    )


def spend_list(
    conn: Any, mark: str, namespace: str, since: str | None, scope: str | None
) -> list[SpendDay]:
    query = (
        "SELECT day, scope, sessions, llm_calls, input_tokens, output_tokens FROM spend_days "
        "WHERE namespace = ?"
    )
    params: list[Any] = [namespace]
    if since is not None:
        query += " AND day >= ?"
        params.append(since)
    if scope is not None:
        query += " AND scope = ?"
        params.append(scope)
    query += " ORDER BY day DESC, scope"
    return [
        SpendDay(namespace, row[0], row[1], Spend(*(int(value) for value in row[2:])))
        for row in conn.execute(_sql(query, mark), params).fetchall()
    ]


# -- consolidation scope settings -------------------------------------------------------------
_SCOPE_COLUMNS = "namespace, scope, enabled, session_prefix, created_at, updated_at"


def _scope_record(row: Any) -> ScopeSettings:
    return ScopeSettings(
        namespace=row[0],
        scope=row[1],
        enabled=bool(row[2]),
        session_prefix=row[3],
        created_at=datetime_from_us(int(row[4])),
        updated_at=datetime_from_us(int(row[5])),
    )


def scope_put(
    conn: Any,
    mark: str,
    namespace: str,
    scope: str,
    enabled: bool,
    session_prefix: str | None,
) -> ScopeSettings:
    now = now_us()
    conn.execute(
        _sql(
            f"INSERT INTO consolidation_scopes ({_SCOPE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, scope) DO UPDATE SET enabled = excluded.enabled, "
            "session_prefix = excluded.session_prefix, updated_at = excluded.updated_at",
            mark,
        ),
        (namespace, scope, enabled if mark != "?" else int(enabled), session_prefix, now, now),
    )
    found = scope_get(conn, mark, namespace, scope)
    assert found is not None  # written just above, in the same transaction
    return found


def scope_get(conn: Any, mark: str, namespace: str, scope: str) -> ScopeSettings | None:
    row = conn.execute(
        _sql(
            f"SELECT {_SCOPE_COLUMNS} FROM consolidation_scopes WHERE namespace = ? AND scope = ?",
            mark,
        ),
        (namespace, scope),
    ).fetchone()
    return _scope_record(row) if row else None


def scope_list(conn: Any, mark: str, namespace: str) -> list[ScopeSettings]:
    rows = conn.execute(
        _sql(
            f"SELECT {_SCOPE_COLUMNS} FROM consolidation_scopes WHERE namespace = ? ORDER BY scope",
            mark,
        ),
        (namespace,),
    ).fetchall()
    return [_scope_record(row) for row in rows]
