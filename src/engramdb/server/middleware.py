"""ASGI middleware: request ids and access logs, body size limit, idempotent replays."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

from ..errors import EngramError
from ..store import Store
from .auth import KeyRing
from .errors import ApiError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("engramdb.access")
log = logging.getLogger("engramdb.server")

IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENCY_TTL = 24 * 3600.0
UNRECORDED = ("/v1/keys", "/api/keys/")
"""Responses that carry a new key's secret are never stored, so key creation is not replayed."""
STALE_CLAIM = 60.0
"""A claim whose request has run this long is taken to have died with its worker."""


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _store_failed(scope: Scope, send: Send, exc: Exception) -> None:
    """503 without the store's own message (it may name files): the log has it."""
    request_id = scope.get("state", {}).get("request_id", "-")
    log.error("%s %s failed (request %s): %s", scope["method"], scope["path"], request_id, exc)
    await send_error(
        send,
        503,
        "store_unavailable",
        f"the store is unavailable (request id {request_id}; details in the server log)",
    )


class AccessLog:
    """One structured log line per request: id, method, path, status, duration, namespace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = scope["state"].get("principal")
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "namespace": principal.key.namespace if principal and principal.key else None,
                },
            )


class BodyLimit:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming.

    A body without Content-Length (chunked) is read here, up to the limit, before the app
    sees it: the app's body parser would turn any error while reading into a 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        too_large = f"request body larger than {self.max_bytes} bytes"
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            if length.isdigit():
                await send_error(send, 413, "body_too_large", too_large)
            else:
                await send_error(send, 400, "bad_request", "invalid Content-Length header")
            return
        if length is None:
            try:
                body = await read_body(receive, limit=self.max_bytes)
            except _TooLarge:
                await send_error(send, 413, "body_too_large", too_large)
                return
            except _Disconnected:
                return
            receive = _replay(body, receive)
        received = 0
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send_tracked)
        except _TooLarge:
            if not started:
                await send_error(send, 413, "body_too_large", too_large)


class _TooLarge(Exception):
    pass


async def read_body(receive: Receive, *, limit: int | None = None) -> bytes:
    """The whole request body; :class:`_TooLarge` as soon as it passes ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over ``body`` once, then listens to the client again."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class _Disconnected(Exception):
    pass


class Idempotency:
    """A POST or PATCH with ``Idempotency-Key`` runs once per namespace and key; retries get the
    first response replayed. Failed requests (status >= 400) are not recorded."""

    def __init__(self, app: ASGIApp, store: Store, keys: KeyRing) -> None:
        self.app = app
        self.store = store
        self.keys = keys
        self._last_purge = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        idem_key = headers.get(IDEMPOTENCY_HEADER)
        if idem_key is None or scope["path"].startswith(UNRECORDED):
            await self.app(scope, receive, send)
            return
        from anyio import to_thread

        if not idem_key or len(idem_key) > 255:
            await send_error(
                send, 422, "invalid_input", "Idempotency-Key must be 1 to 255 characters"
            )
            return
        try:
            principal = await to_thread.run_sync(self.keys.authenticate, headers)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message, exc.headers)
            return
        except EngramError as exc:
            await _store_failed(scope, send, exc)
            return
        if principal.key is None:  # admins write nothing worth replaying
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        namespace = principal.key.namespace
        try:
            body = await read_body(receive)
        except _Disconnected:
            return
        fingerprint = hashlib.sha256(
            b"\0".join(
                [scope["method"].encode(), scope.get("raw_path") or scope["path"].encode(), body]
            )
        ).hexdigest()
        try:
            found = await to_thread.run_sync(
                lambda: self.store.idempotency_claim(
                    namespace, idem_key, fingerprint, stale_after=STALE_CLAIM
                )
            )
        except EngramError as exc:
            await _store_failed(scope, send, exc)
            return
        if found is not None:
            await self._answer_existing(send, found.request_hash == fingerprint, found)
            return
        await self._run_and_record(scope, body, send, namespace, idem_key)

    async def _answer_existing(self, send: Send, same: bool, found: Any) -> None:
        if not same:
            await send_error(
                send,
                409,
                "idempotency_conflict",
                "this Idempotency-Key was used for a different request",
            )
        elif found.status is None:
            await send_error(
                send,
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
                {"Retry-After": "1"},
            )
        else:
            body = found.body or b""
            await send(
                {
                    "type": "http.response.start",
                    "status": found.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _run_and_record(
        self, scope: Scope, body: bytes, send: Send, namespace: str, idem_key: str
    ) -> None:
        from anyio import to_thread

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        # the response is held back until it is recorded: a client that saw it can retry
        # and will get the same answer
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay, capture)
        except BaseException:
            await to_thread.run_sync(self.store.idempotency_release, namespace, idem_key)
            raise
        if start is None:  # the app sent nothing: nothing to record
            await to_thread.run_sync(self.store.idempotency_release, namespace, idem_key)
            return
        body = b"".join(chunks)
        if start["status"] < 400:
            await to_thread.run_sync(
                self.store.idempotency_complete, namespace, idem_key, start["status"], body
            )
        else:
            await to_thread.run_sync(self.store.idempotency_release, namespace, idem_key)
        await send(start)
        await send({"type": "http.response.body", "body": body})
        await self._maybe_purge()

    async def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < 600:
            return
        self._last_purge = now
        from anyio import to_thread

        from ..types import now_us

        cutoff = now_us() - int(IDEMPOTENCY_TTL * 1_000_000)
        await to_thread.run_sync(self.store.idempotency_purge, cutoff)
