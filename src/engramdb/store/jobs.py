"""Lease-locked jobs, the same SQL on every backend.

Each function runs inside the caller's write transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: the claim locks the row with ``FOR UPDATE``), on a DB-API connection whose
``execute`` returns a cursor. Statements are written with ``?`` placeholders; ``mark`` is the
backend's (``?`` or ``%s``). Every write after the claim is conditioned on the ownership token.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..types import Job, now_us
from .rows import JOB_COLUMNS, JOB_EXPIRED_ERROR, job_claim_plan, job_record

_KEY = "namespace = ? AND kind = ? AND job_key = ?"
_OWNED = _KEY + " AND token = ? AND status = 'running'"


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
) -> bool:
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'done', token = NULL, lease_expires_at = NULL, "
                "input_watermark = ?, last_error = NULL, retry_at = NULL, updated_at = ? "
                f"WHERE {_OWNED}",
                mark,
            ),
            (input_watermark, now_us(), namespace, kind, job_key, token),
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
) -> bool:
    now = now_us()
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' "
                "ELSE 'pending' END, "
                "retry_at = CASE WHEN attempts >= max_attempts THEN NULL ELSE ? END, "
                "token = NULL, lease_expires_at = NULL, last_error = ?, updated_at = ? "
                f"WHERE {_OWNED}",
                mark,
            ),
            (now + int(retry_in * 1_000_000), error, now, namespace, kind, job_key, token),
        ).rowcount
    )


def release(conn: Any, mark: str, namespace: str, kind: str, job_key: str, token: str) -> bool:
    return bool(
        conn.execute(
            _sql(
                "UPDATE jobs SET status = 'pending', token = NULL, lease_expires_at = NULL, "
                "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ? "
                f"WHERE {_OWNED}",
                mark,
            ),
            (now_us(), namespace, kind, job_key, token),
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
