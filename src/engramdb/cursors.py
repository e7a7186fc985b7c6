"""Opaque, namespace-bound page cursors.

A cursor carries where the next page starts (a row position, a timestamp and id) sealed with
a secret kept in the store: encrypted (an HMAC-SHA256 key stream under a random nonce) and
authenticated (HMAC-SHA256 over the namespace, the kind of cursor, the nonce and the
ciphertext). A client learns nothing from it (no row id, no count of other tenants' rows) and
cannot forge or alter one; a cursor issued in one namespace is rejected in every other. Every
process and replica sharing the store shares the secret, so a cursor stays valid across them
and across restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from .errors import InvalidInputError

_NONCE = 12
_TAG = 16
MAX_CURSOR_CHARS = 1024
CURSOR_PATTERN = rf"^[A-Za-z0-9_-]{{{((_NONCE + _TAG + 1) * 4 + 2) // 3},{MAX_CURSOR_CHARS}}}$"
"""What a cursor looks like (the HTTP API declares it): unpadded URL-safe base64 of the
nonce, at least one byte of payload, and the tag."""


def _stream(key: bytes, nonce: bytes, size: int) -> bytes:
    blocks = []
    for counter in range((size + 31) // 32):
        message = b"stream\x00" + nonce + counter.to_bytes(4, "big")
        blocks.append(hmac.new(key, message, hashlib.sha256).digest())
    return b"".join(blocks)[:size]


def _tag(key: bytes, namespace: str, kind: str, nonce: bytes, body: bytes) -> bytes:
    message = b"\x00".join([b"tag", kind.encode(), namespace.encode(), nonce + body])
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG]


def seal(key: bytes, namespace: str, kind: str, payload: bytes) -> str:
    """An opaque cursor for ``payload``, valid only in ``namespace`` for ``kind``."""
    nonce = os.urandom(_NONCE)
    body = bytes(a ^ b for a, b in zip(payload, _stream(key, nonce, len(payload)), strict=True))
    raw = nonce + body + _tag(key, namespace, kind, nonce, body)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unseal(key: bytes, namespace: str, kind: str, cursor: object) -> bytes:
    """The payload of a cursor made by :func:`seal` for this namespace and kind; anything
    else raises :class:`InvalidInputError` (saying nothing about why)."""
    invalid = InvalidInputError("cursor must be a next_cursor value returned by this listing")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) < _NONCE + _TAG:
        raise invalid
    nonce, body, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
    if not hmac.compare_digest(tag, _tag(key, namespace, kind, nonce, body)):
        raise invalid
    return bytes(a ^ b for a, b in zip(body, _stream(key, nonce, len(body)), strict=True))
