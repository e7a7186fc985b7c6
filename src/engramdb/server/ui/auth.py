"""Signing in to the web page: a server-signed session cookie and CSRF tokens.

The API key is checked once, at sign-in, by the API's :class:`~engramdb.server.auth.KeyRing`.
The cookie then holds the key's id (an admin key: a digest of its hash), a per-session CSRF
token and the sign-in time, signed with HMAC-SHA256 under a secret kept in the store (every
replica shares it). The key is looked up again on every request, so revoking it (or taking
an admin key out of the settings) ends its sessions at once. The secret itself never travels.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ..auth import Principal, hash_secret
from ..tenant import Services

COOKIE = "engramdb_ui"
"""The session cookie (HttpOnly, SameSite=Strict, Path=/ui)."""
LOGIN_COOKIE = "engramdb_ui_login"
"""The sign-in form's double-submit CSRF token (before there is a session)."""
COOKIE_PATH = "/ui"
MAX_AGE = 12 * 3600
"""Seconds a session lasts; signing in again starts a new one."""
SECRET_NAME = "ui-session"
CLOCK_SKEW = 300
"""Seconds a replica's clock may lag the one that signed the visitor in."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(svc: Services) -> bytes:
    """The store's secret for session cookies (made on first use, shared by replicas)."""
    key: bytes = svc.memory.store.secret(SECRET_NAME)
    return key


def sign(key: bytes, payload: dict[str, Any]) -> str:
    """``payload`` as ``base64(json).base64(hmac)``."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(key: bytes, value: str | None) -> dict[str, Any] | None:
    """The payload of a value made by :func:`sign` with ``key``; ``None`` for anything else."""
    if not value or value.count(".") != 1 or len(value) > 4096:
        return None
    body, mac = value.split(".")
    try:
        expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeError):
        return None
    return payload if isinstance(payload, dict) else None


def admin_tag(secret_hash: str) -> str:
    """What an admin session's cookie holds: a digest of the admin key's hash (neither the
    key nor its hash travels)."""
    return hashlib.sha256(b"engramdb-ui-admin:" + secret_hash.encode()).hexdigest()[:32]


def new_session(key: bytes, who: Principal, secret: str) -> str:
    """The cookie value for a principal that just signed in with ``secret``."""
    payload: dict[str, Any] = {"c": secrets.token_urlsafe(24), "t": int(time.time())}
    if who.key is None:
        payload["a"] = admin_tag(hash_secret(secret))
    else:
        payload["n"], payload["k"] = who.key.namespace, who.key.id
    return sign(key, payload)


@dataclass(frozen=True)
class UiSession:
    """A signed-in page visitor: who it is and the session's CSRF token."""

    principal: Principal
    csrf: str

    @property
    def admin(self) -> bool:
        return self.principal.admin


def current(request: Request, svc: Services) -> UiSession | None:
    """The visitor's session, checked now: the cookie's signature and age, and its key still
    active (an admin key still configured). ``None`` when not signed in."""
    payload = unsign(signing_key(svc), request.cookies.get(COOKIE))
    if payload is None:
        return None
    csrf, started = payload.get("c"), payload.get("t")
    if not isinstance(csrf, str) or not isinstance(started, int):
        return None
    if not -CLOCK_SKEW <= time.time() - started < MAX_AGE:
        return None
    tag = payload.get("a")
    if isinstance(tag, str):
        admins = request.app.state.settings.admin_keys
        if any(hmac.compare_digest(tag, admin_tag(hash_secret(k))) for k in admins):
            return UiSession(Principal(None), csrf)
        return None
    namespace, key_id = payload.get("n"), payload.get("k")
    if not isinstance(namespace, str) or not isinstance(key_id, str):
        return None
    key = next((k for k in svc.keys.store.key_list(namespace) if k.id == key_id), None)
    if key is None or not key.active:
        return None  # revoked: the cookie stops working at once
    return UiSession(Principal(key, svc.keys.ancestors(key)), csrf)


def csrf_ok(expected: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), (sent or "").encode())


def same_origin(request: Request) -> bool:
    """A state-changing request must come from this site: its ``Origin`` (when the browser
    sends one) names this host (``Host``, or behind a reverse proxy ``X-Forwarded-Host``: a
    cross-site form cannot set either). The CSRF token is checked as well."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    sent = origin.split("://", 1)[-1]
    hosts = {request.headers.get("host", "")}
    hosts.update(h.strip() for h in request.headers.get("x-forwarded-host", "").split(","))
    return sent in hosts - {""}
