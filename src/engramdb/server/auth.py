"""API keys: creation, hashing, authentication.

A key is a random secret shown once; the store keeps its SHA-256 digest (the secrets are
256-bit random, so a slow password hash would add latency to every request and no safety).
Namespace keys are bound to one namespace; admin keys come from the settings and only
manage keys: they create keys for new namespaces, list and revoke keys, and never get a key
to a namespace that already holds something (that would be reading its data).

A namespace key may create keys for its own namespace with limits no larger than its own
(:func:`child_limits`), and list and revoke only itself and the keys descended from it
(:func:`descendants`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..store import Store
from ..store.base import NewKey
from ..types import ApiKey
from ..validation import check_id
from .errors import ApiError
from .settings import LIMIT_NAMES

SECRET_PREFIX = "egm_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a namespace key, or an admin (``key`` is ``None``). ``ancestors`` are
    the keys the namespace key was created from, its parent first: their per-key limits
    (recalls per day, requests per second) bound it too, so children share their ancestors'
    allowances instead of multiplying them."""

    key: ApiKey | None
    ancestors: tuple[ApiKey, ...] = ()

    @property
    def admin(self) -> bool:
        return self.key is None


def secret_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def child_limits(
    parent: Mapping[str, int | None], requested: Mapping[str, int | None] | None
) -> dict[str, int | None]:
    """The limits of a key a namespace key creates: each requested limit must be no larger
    than the parent's effective one (``None``, unlimited, is larger than any number); a limit
    not requested inherits the parent's effective value, so a child can never exceed it."""
    out: dict[str, int | None] = {}
    for name in LIMIT_NAMES:
        mine = parent.get(name)
        if requested is None or name not in requested:
            out[name] = mine
            continue
        asked = requested[name]
        if mine is not None and (asked is None or asked > mine):
            shown = "unlimited" if asked is None else str(asked)
            raise ApiError(
                403,
                "forbidden",
                f"a namespace key may create keys with limits no larger than its own: "
                f"{name} {shown} exceeds this key's {mine}",
            )
        out[name] = asked
    return out


def descendants(key: ApiKey, keys: Iterable[ApiKey]) -> list[ApiKey]:
    """``key`` and every key created from it (directly or through its children), in the
    order given: what a namespace key may see and revoke."""
    by_parent: dict[str | None, list[ApiKey]] = {}
    for k in keys:
        by_parent.setdefault(k.created_by, []).append(k)
    mine, todo = {key.id}, [key.id]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            if child.id not in mine:
                mine.add(child.id)
                todo.append(child.id)
    return [k for k in keys if k.id in mine]


class KeyRing:
    """Looks keys up and creates them; admin secrets are compared in constant time."""

    def __init__(self, store: Store, admin_keys: list[str]) -> None:
        self.store = store
        self._admin_hashes = [hash_secret(k) for k in admin_keys]

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = secret_from_headers(headers)
        if secret is None:
            raise ApiError(401, "unauthorized", "missing API key: send the X-API-Key header")
        digest = hash_secret(secret)
        if any(hmac.compare_digest(digest, admin) for admin in self._admin_hashes):
            return Principal(None)
        key = self.store.key_by_hash(digest)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown API key")
        if not key.active:
            raise ApiError(401, "unauthorized", "this API key has been revoked")
        return Principal(key, self.ancestors(key))

    def ancestors(self, key: ApiKey) -> tuple[ApiKey, ...]:
        """The keys ``key`` descends from, parent first (one query, only for created keys)."""
        if key.created_by is None:
            return ()
        by_id = {k.id: k for k in self.store.key_list(key.namespace)}
        chain: list[ApiKey] = []
        parent = by_id.get(key.created_by)
        while parent is not None and parent not in chain and parent.id != key.id:
            chain.append(parent)
            parent = by_id.get(parent.created_by) if parent.created_by else None
        return tuple(chain)

    def create(
        self,
        namespace: str | None,
        name: str,
        purpose: str | None = None,
        limits: Mapping[str, Any] | None = None,
        *,
        created_by: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key (and its secret, never stored) bound to ``namespace`` (``None``: a new
        namespace of its own); ``created_by`` is the id of the namespace key creating it."""
        ns = check_id("namespace", namespace) if namespace else "ns_" + secrets.token_hex(8)
        unknown = set(limits or {}) - set(LIMIT_NAMES)
        if unknown:
            raise ApiError(422, "validation_error", f"unknown limits: {sorted(unknown)}")
        secret = new_secret()
        key = self.store.key_insert(
            ns,
            NewKey(
                id="key_" + secrets.token_hex(8),
                secret_hash=hash_secret(secret),
                name=name,
                purpose=purpose,
                prefix=secret[:12],
                limits=dict(limits or {}),
                created_by=created_by,
            ),
        )
        return key, secret

    def family(self, key: ApiKey) -> list[ApiKey]:
        """``key`` and the keys descended from it: what a namespace key sees and revokes."""
        return descendants(key, self.store.key_list(key.namespace))

    def find(self, key_id: str) -> ApiKey | None:
        """A key of any namespace by id (for admins)."""
        return next((k for k in self.store.key_list(None) if k.id == key_id), None)
