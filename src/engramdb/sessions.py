"""Sessions: short-term conversation history, one ordered list of JSON items per session id.

The contract is the OpenAI Agents SDK ``Session`` protocol: ``get_items(limit)`` returns the
last ``limit`` items oldest first (``None`` = all, ``0`` = none; a negative limit is an
:class:`~engramdb.errors.InvalidInputError`), ``add_items`` appends atomically, ``pop_item``
removes and returns the newest item (``None`` when empty), ``clear_session`` empties it.
:class:`Session` is the synchronous face and :class:`AsyncSession` the asynchronous one; both
work over any :class:`~engramdb.store.Store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from .errors import InvalidInputError, LeaseHeldError
from .store import Store, open_store
from .types import DEFAULT_NAMESPACE, JSONItem, SessionInfo, datetime_from_us, us_from_datetime
from .validation import check_id, check_limit, decode_item, encode_items

_T = TypeVar("_T")

DEFAULT_DATA_DIR_ENV = "ENGRAMDB_DATA_DIR"
INLINE_READ_LIMIT = 100
"""``get_items(limit)`` up to this many items runs on the event loop for stores that allow it."""


class SessionSettingsLike(Protocol):
    """Anything with a default ``limit``: engramdb's or the Agents SDK's ``SessionSettings``."""

    @property
    def limit(self) -> int | None: ...


ALL_ITEMS = 2**62
"""A limit at or above this is "all items" (no store can hold more; SQL integers stop at 2**63)."""


def resolve_limit(limit: int | None, settings: SessionSettingsLike | None) -> int | None:
    """The effective ``get_items`` limit: an explicit limit wins, then the settings' default.

    Any non-negative integer is valid; one larger than the session is the whole session (the
    Agents SDK passes ``2**31 - 1``).
    """
    if limit is None and settings is not None:
        limit = settings.limit
    checked = check_limit(limit, allow_none=True, minimum=0, maximum=None)
    return None if checked is not None and checked >= ALL_ITEMS else checked


def coerce_session_settings(value: object) -> SessionSettingsLike:
    """``session_settings`` as the OpenAI Agents SDK's sessions take them.

    ``None`` is the default settings (``limit=None``), as in the SDK's ``SQLiteSession``; a
    dict goes through the SDK's own ``coerce_session_settings`` when the SDK is installed
    (an unknown key raises its ``TypeError``), else through the same rule here; anything
    with a ``limit`` (the SDK's or engramdb's ``SessionSettings``) is kept as it is.
    The SDK is imported only when a dict needs it or when it is already loaded.
    """
    from .types import SessionSettings

    if value is None:
        sdk = sys.modules.get("agents.memory.session_settings")
        default: SessionSettingsLike = (
            sdk.SessionSettings() if sdk is not None else SessionSettings()
        )
        return default
    if isinstance(value, dict):
        try:
            from agents.memory.session_settings import (
                coerce_session_settings as sdk_coerce,
            )
        except ImportError:
            unknown = sorted(str(name) for name in value if name != "limit")
            if unknown:
                raise TypeError(f"Unknown session settings: {', '.join(unknown)}") from None
            return SessionSettings(**value)
        coerced: SessionSettingsLike = sdk_coerce(value)
        return coerced
    if not hasattr(value, "limit"):
        raise TypeError(
            f"session_settings must be a SessionSettings or a dict, got {type(value).__name__}"
        )
    return cast(SessionSettingsLike, value)


def default_data_dir() -> Path:
    """``$ENGRAMDB_DATA_DIR``, or ``./.engramdb``."""
    return Path(os.environ.get(DEFAULT_DATA_DIR_ENV, ".engramdb"))


def resolve_store(store: Store | str | Path | None) -> Store:
    """A Store from a Store, a data directory / URL, or the default data directory."""
    return open_store(store if store is not None else default_data_dir())


class Session:
    """Synchronous session over a store.

    >>> s = Session("chat-1", "./data")   # doctest: +SKIP
    >>> s.add_items([{"role": "user", "content": "hi"}])   # doctest: +SKIP
    """

    def __init__(
        self,
        session_id: str,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = check_id("session_id", session_id)
        self.namespace = check_id("namespace", namespace)
        self.session_settings = coerce_session_settings(session_settings)
        self._owns_store = not isinstance(store, Store)
        self.store = resolve_store(store)

    def close(self) -> None:
        """Close the store this session opened (from a path or URL: its connections, a
        PostgreSQL pool). A :class:`~engramdb.store.Store` passed in belongs to the caller
        and stays open."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _limit(self, limit: int | None) -> int | None:
        return resolve_limit(limit, self.session_settings)

    def get_items(self, limit: int | None = None) -> list[JSONItem]:
        """The last ``limit`` items, oldest first. An explicit limit wins over the settings."""
        return self.store.session_get(self.namespace, self.session_id, self._limit(limit))

    def add_items(self, items: Sequence[JSONItem]) -> None:
        """Append items in order; all or nothing (a bad item rejects the batch).

        An item that is not JSON (a set, an object) raises :class:`~engramdb.NotJSONError`,
        a ``TypeError`` as in the Agents SDK; one nested deeper than 64 levels, or with a lone
        surrogate, raises :class:`~engramdb.InvalidInputError`. Nothing unreadable is stored.
        """
        self.store.session_add(self.namespace, self.session_id, encode_items(items))

    def pop_item(self) -> JSONItem | None:
        """Remove and return the newest item, or ``None`` if the session is empty."""
        return self.store.session_pop(self.namespace, self.session_id)

    def clear_session(self) -> None:
        """Remove every item. Sequence numbers keep counting up; none is reused."""
        self.store.session_clear(self.namespace, self.session_id)

    def replace_items(self, items: Sequence[JSONItem]) -> int:
        """Replace the whole history with ``items`` in one store transaction; returns how many
        items were removed.

        All or nothing: a bad item (checked as in :meth:`add_items`) or a store failure leaves
        the old history exactly as it was, never a cleared session. This is the atomic
        history replacement the OpenAI Agents SDK's ``OpenAIResponsesCompactionSession`` uses
        to swap a conversation for its compacted form. Sequence numbers keep counting up.
        """
        encoded = encode_items(items)
        with self.store.atomic():
            removed = self.store.session_clear(self.namespace, self.session_id)
            if encoded:
                self.store.session_add(self.namespace, self.session_id, encoded)
        return removed

    def tail_snapshot(self, limit: int) -> tuple[list[JSONItem], bool, SessionInfo | None]:
        """The newest ``limit`` items (oldest first), whether they are the whole session, and
        the session's version (its :class:`~engramdb.types.SessionInfo`), read in one
        transaction: what :meth:`replace_tail` checks before it writes."""
        page = check_limit(limit, minimum=0, maximum=None)
        assert page is not None
        with self.store.atomic():
            version = self.store.session_info(self.namespace, self.session_id)
            items = self.store.session_get(self.namespace, self.session_id, page + 1)
        complete = len(items) <= page
        return (items if complete else items[1:]), complete, version

    def replace_tail(
        self,
        expected: Sequence[JSONItem],
        items: Sequence[JSONItem],
        *,
        version: SessionInfo | None = None,
    ) -> bool:
        """Replace the newest ``len(expected)`` items with ``items`` in one store transaction,
        only if they still are ``expected`` and (given ``version``, from :meth:`tail_snapshot`)
        nothing was written since; returns whether it replaced. Older items stay. This is the
        bounded suffix replacement the Agents SDK's compaction uses on its SQL sessions."""
        encoded = encode_items(items)
        if not expected:
            return False
        ns, sid = self.namespace, self.session_id
        try:
            with self.store.atomic():
                if version is not None and self.store.session_info(ns, sid) != version:
                    raise _Changed
                if self.store.session_get(ns, sid, len(expected)) != list(expected):
                    raise _Changed
                for _ in expected:
                    self.store.session_pop(ns, sid)
                if encoded:
                    self.store.session_add(ns, sid, encoded)
        except _Changed:
            return False
        return True

    def info(self) -> SessionInfo | None:
        """Created/updated times and item count, or ``None`` if nothing was ever written."""
        return self.store.session_info(self.namespace, self.session_id)

    def items_after(
        self, after_seq: int = -1, limit: int = 100
    ) -> list[tuple[int, datetime, JSONItem]]:
        """Up to ``limit`` items whose sequence number is above ``after_seq``, oldest first,
        as ``(seq, created_at, item)``: what an extractor reads past its high-water mark
        (``store.extraction_mark``; -1, the default, reads from the first item, numbered 0).
        Sequence numbers only grow: a cleared or popped item's number is never reused."""
        return items_after(self.store, self.namespace, self.session_id, after_seq, limit)

    @contextlib.contextmanager
    def run_lease(self, *, ttl: float = 60.0, wait: float | None = 30.0) -> Iterator[str]:
        """Hold this session's run lease so concurrent agent runs on it do not interleave.

        Waits up to ``wait`` seconds (``None``: forever) and raises
        :class:`~engramdb.errors.LeaseHeldError` if another holder keeps it. The lease is
        renewed while held and expires ``ttl`` seconds after a crashed holder stopped renewing.
        """
        lease = _Lease(self.store, self.namespace, _run_lease_name(self.session_id), ttl)
        deadline = None if wait is None else time.monotonic() + wait
        while not lease.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseHeldError(lease.held_message(wait))
            time.sleep(_LEASE_POLL)
        stop = threading.Event()
        renewer = threading.Thread(target=lease.renew_until, args=(stop.wait,), daemon=True)
        renewer.start()
        try:
            yield lease.owner
        finally:
            stop.set()
            renewer.join()
            lease.release()


class _Changed(Exception):
    """The session changed since it was read: roll the transaction back."""


class AsyncSession:
    """Asynchronous session over a store; satisfies the OpenAI Agents SDK ``Session`` protocol.

    Store calls run in worker threads so the event loop never waits on disk or on another
    process's write lock. A write runs in place when the store can do it without waiting
    (SQLite's ``run_inline``: the write lock free, no fsync, no checkpoint), else on the
    store's ``write_executor`` (SQLite: one writer thread per database, with its own
    connection), else on a worker thread; bounded reads of stores with ``inline_reads`` run
    in place.
    """

    def __init__(
        self,
        session_id: str,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        session_settings: SessionSettingsLike | dict[str, Any] | None = None,
    ) -> None:
        self._sync = Session(
            session_id, store, namespace=namespace, session_settings=session_settings
        )
        self.session_id = self._sync.session_id
        self.namespace = self._sync.namespace
        self.store = self._sync.store
        self.session_settings = self._sync.session_settings

    def close(self) -> None:
        """Close the store this session opened (see :meth:`Session.close`); synchronous, as
        the Agents SDK's ``SQLiteSession.close``."""
        self._sync.close()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _limit(self, limit: int | None) -> int | None:
        return resolve_limit(limit, self.session_settings)

    async def get_items(self, limit: int | None = None) -> list[JSONItem]:
        """The last ``limit`` items, oldest first. An explicit limit wins over the settings."""
        limit = self._limit(limit)
        if self.store.inline_reads and limit is not None and limit <= INLINE_READ_LIMIT:
            # cheaper than the hop to a worker thread, and it cannot block (see Store)
            inline = getattr(self.store, "run_inline", None)
            if inline is None:
                return self.store.session_get(self.namespace, self.session_id, limit)
            done, items = inline(
                self.store.session_get, self.namespace, self.session_id, limit, write=False
            )
            if done:
                return cast(list[JSONItem], items)
        return await _in_thread(self.store.session_get, self.namespace, self.session_id, limit)

    async def add_items(self, items: list[JSONItem]) -> None:
        """Append items in order; all or nothing (a bad item rejects the batch)."""
        encoded = encode_items(items)
        await self._write(self.store.session_add, self.namespace, self.session_id, encoded)

    async def pop_item(self) -> JSONItem | None:
        """Remove and return the newest item, or ``None`` if the session is empty."""
        return await self._write(self.store.session_pop, self.namespace, self.session_id)

    async def clear_session(self) -> None:
        """Remove every item. Sequence numbers keep counting up; none is reused."""
        await self._write(self.store.session_clear, self.namespace, self.session_id)

    async def replace_items(self, items: Sequence[JSONItem]) -> int:
        """Replace the whole history atomically; see :meth:`Session.replace_items`."""
        return await self._write(self._sync.replace_items, items)

    async def _write(self, func: Callable[..., _T], *args: Any) -> _T:
        """``func(*args)`` in place when the store can run it without blocking (SQLite,
        nobody else writing: no hop at all), else on the store's writer thread (one hop), or
        a worker thread."""
        inline = getattr(self.store, "run_inline", None)
        if inline is not None:
            done, result = inline(func, *args)
            if done:
                return cast(_T, result)
        executor: Executor | None = getattr(self.store, "write_executor", None)
        if executor is None:
            return await _in_thread(func, *args)
        return await asyncio.get_running_loop().run_in_executor(executor, func, *args)

    async def _atomic_replace_items(self, items: list[JSONItem]) -> bool:
        """The Agents SDK's atomic history-replacement hook (used by
        ``OpenAIResponsesCompactionSession``): the old history or the new one, never a gap."""
        await self.replace_items(items)
        return True

    async def info(self) -> SessionInfo | None:
        """Created/updated times and item count, or ``None`` if nothing was ever written."""
        return await _in_thread(self._sync.info)

    async def items_after(
        self, after_seq: int = -1, limit: int = 100
    ) -> list[tuple[int, datetime, JSONItem]]:
        """See :meth:`Session.items_after`."""
        return await _in_thread(self._sync.items_after, after_seq, limit)

    @contextlib.asynccontextmanager
    async def run_lease(
        self, *, ttl: float = 60.0, wait: float | None = 30.0
    ) -> AsyncIterator[str]:
        """Hold this session's run lease; see :meth:`Session.run_lease`.

        >>> async with session.run_lease():            # doctest: +SKIP
        ...     await Runner.run(agent, "hi", session=session)
        """
        lease = _Lease(self.store, self.namespace, _run_lease_name(self.session_id), ttl)
        deadline = None if wait is None else time.monotonic() + wait
        while not await _in_thread(lease.try_acquire):
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseHeldError(lease.held_message(wait))
            await asyncio.sleep(_LEASE_POLL)
        stop = threading.Event()
        renewer = asyncio.ensure_future(_in_thread(lease.renew_until, stop.wait))
        try:
            yield lease.owner
        finally:
            stop.set()
            await renewer
            await _in_thread(lease.release)


def items_after(
    store: Store, namespace: str, session_id: str, after_seq: int, limit: int
) -> list[tuple[int, datetime, JSONItem]]:
    """``(seq, created_at, item)`` of up to ``limit`` items with ``seq > after_seq`` (see
    :meth:`Session.items_after`), read through the store's paged item reader."""
    if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < -1:
        raise InvalidInputError(f"after_seq must be an integer >= -1, got {after_seq!r}")
    page = check_limit(limit)
    if not page:
        return []
    rows = store.session_export_items(namespace, session_id, after=after_seq, limit=page)
    where = f"session {session_id!r}"
    return [
        (r.seq, datetime_from_us(r.created_at), decode_item(r.data, record_id=r.seq, where=where))
        for r in rows
    ]


def list_sessions(
    store: Store | str | Path | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    limit: int = 100,
    before: tuple[datetime, str] | None = None,
) -> list[SessionInfo]:
    """Sessions of a namespace, most recently updated first.

    Page with ``before=(last.updated_at, last.session_id)`` of the previous page's last entry.
    """
    check_id("namespace", namespace)
    page = check_limit(limit)
    assert page is not None
    cursor = (us_from_datetime(before[0]), before[1]) if before else None
    return resolve_store(store).session_list(namespace, limit=page, before=cursor)


_LEASE_POLL = 0.05


def _run_lease_name(session_id: str) -> str:
    return f"session-run:{session_id}"


class _Lease:
    """One lease held by a unique owner token; the sync and async faces share it."""

    def __init__(self, store: Store, namespace: str, name: str, ttl: float) -> None:
        if not ttl > 0:
            from .errors import InvalidInputError

            raise InvalidInputError(f"ttl must be > 0 seconds, got {ttl!r}")
        self.store, self.namespace, self.name, self.ttl = store, namespace, name, ttl
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex}"

    def try_acquire(self) -> bool:
        return self.store.lease_acquire(self.namespace, self.name, self.owner, self.ttl)

    def renew_until(self, wait: Callable[[float], bool]) -> None:
        # wait(t) returns True once the holder is done; until then renew every third of the ttl.
        while not wait(self.ttl / 3):
            self.try_acquire()

    def release(self) -> None:
        self.store.lease_release(self.namespace, self.name, self.owner)

    def held_message(self, wait: float | None) -> str:
        return (
            f"{self.name!r} is held by another run (waited {wait:g}s); wait for it to finish, "
            f"or for the lease to expire ({self.ttl:g}s after its holder stops renewing)"
        )


async def _in_thread(func: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.to_thread(func, *args)


__all__ = [
    "AsyncSession",
    "Session",
    "SessionSettingsLike",
    "coerce_session_settings",
    "default_data_dir",
    "list_sessions",
]
