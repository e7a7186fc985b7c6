"""The memory manager's runtime: triggers, a bounded background queue, windows, retries, flush.

The runtime knows nothing about LLMs or memories. It moves *windows* of new session items from
a :class:`WindowSource` (items, a per-session high-water mark, a per-session claim) to a
:class:`WindowProcessor` (extraction + decisions) and advances the mark only after the window
was processed:

* **The conversation is never touched.** A watched session stores items first, exactly as the
  wrapped session does, then tells the manager how many turns/tokens arrived: counters and at
  most one queue append under a lock, no I/O, no waiting for extraction. A failing extraction
  never raises into ``add_items``.
* **Triggers** (:class:`Triggers`): every N *turns* (a turn is one user message: an item whose
  ``role`` is ``"user"``, plain chat or Responses-style; assistant replies, tool calls and tool
  results ride along in the next window), a token threshold (``len(json) / 4`` per item), idle
  time (no new item for ``idle_seconds``), the watched session's ``close()``, and
  :meth:`MemoryManager.extract_now`.
* **One worker per session at a time.** A session is in the ready queue at most once and never
  while one of its jobs runs; a trigger that arrives meanwhile is remembered and served by the
  next job, so windows never overlap. A job reads the items after the mark, cuts a window
  (``max_window_items`` / ``max_window_tokens``; one oversized item still forms a window of
  its own), processes it, advances the mark with a compare-and-set, and repeats until the
  session is caught up, so a huge backlog goes window by window.
* **Bounded queue, coalescing instead of dropping.** The queue holds session ids, not items
  (those stay in the store). Past ``max_queue`` sessions, a triggered session waits in an
  overflow line (counted as ``deferred``) and moves to the queue as slots free; repeated
  triggers of a waiting session coalesce into one job. Nothing is dropped and ``add_items``
  never blocks.
* **Failures**: any exception from the source or the processor fails the job; the mark is not
  advanced (the items stay for the retry) and the session is retried after an exponential
  back-off with jitter (:class:`Backoff`). With ``attempts`` set, the runtime gives up after
  that many consecutive failures (counted as ``gave_up``) until the next trigger; the items
  are still after the mark for a later run or a restarted manager.
* **Across processes**: a job first claims the session (a lease in the store); if another
  process holds it the job polls again later without counting a failure. A lost
  compare-and-set (another process advanced the mark first) counts as ``skipped`` and the
  window's result is not counted twice.
* **Flush**: :meth:`MemoryManager.flush` requests a job for every session with unextracted
  items (a session waiting out a back-off is retried now) and waits until each one ran; it
  returns ``True`` when all of them succeeded. The work runs in the manager's threads, so
  an event loop that closes, or a cancelled :meth:`MemoryManager.aflush`, does not cancel a
  save in progress; the interpreter's exit flushes too (``flush_at_exit``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import heapq
import inspect
import itertools
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, overload, runtime_checkable

import orjson

from ..errors import EngramError, InvalidInputError

log = logging.getLogger("engramdb.manager")

WindowItem = tuple[int, datetime, Mapping[str, Any]]
"""One session item as a window carries it: ``(seq, created_at, item)`` (a
:class:`engramdb.manager.transcript.SessionItem` is one)."""


class ManagerClosedError(EngramError):
    """The memory manager was closed; it takes no more work."""


# -- the two narrow interfaces the runtime drives -------------------------------------------


@runtime_checkable
class WindowSource(Protocol):
    """Where windows come from: session items, the per-session mark, the per-session claim.

    ``mark`` is the sequence number of the last item already extracted, or a value below the
    first sequence number when none was (the runtime only compares and passes it back; the
    SQLite store numbers items from 0, so its "none" must be -1). ``advance``
    is a compare-and-set: it moves the mark from ``from_seq`` to ``to_seq`` and returns
    ``False`` (changing nothing) when the mark is no longer ``from_seq``. ``claim`` takes or
    renews a lease on the session for ``owner`` (``False``: another owner holds it) and
    ``release`` gives it back.
    """

    def mark(self, session_id: str) -> int:
        """The last extracted sequence number of the session (below the first item's when
        nothing was)."""
        ...

    def items_after(self, session_id: str, seq: int, limit: int) -> list[WindowItem]:
        """Up to ``limit`` items with a sequence number above ``seq``, oldest first."""
        ...

    def advance(self, session_id: str, from_seq: int, to_seq: int) -> bool:
        """Move the mark from ``from_seq`` to ``to_seq``; ``False`` if it is not at ``from_seq``."""
        ...

    def claim(self, session_id: str, owner: str, ttl: float) -> bool:
        """Take or renew the session's extraction lease for ``ttl`` seconds."""
        ...

    def release(self, session_id: str, owner: str) -> None:
        """Give the lease back (no-op when ``owner`` does not hold it)."""
        ...


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What processing one window did: decisions by kind and the LLM tokens it used."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    none: int = 0
    tokens: int = 0


@runtime_checkable
class WindowProcessor(Protocol):
    """Extraction + decisions for one window. Raises on failure (any exception); the runtime
    then keeps the mark where it was and retries the same items later."""

    def process(self, session_id: str, items: Sequence[WindowItem]) -> WindowResult:
        """Turn ``items`` (consecutive, oldest first) into memory decisions."""
        ...


# -- configuration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Triggers:
    """When a watched session's new items are extracted.

    ``every_n_turns``: after this many user messages (``None``: off). ``token_threshold``:
    after this many estimated tokens of new items (``None``: off). ``idle_seconds``: when no
    item arrived for this long and some are unextracted (``None``: off). ``on_close``: when
    the watched session is closed.
    """

    every_n_turns: int | None = 5
    token_threshold: int | None = None
    idle_seconds: float | None = None
    on_close: bool = True

    def __post_init__(self) -> None:
        for name in ("every_n_turns", "token_threshold"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be an integer or None, got {value!r}")
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value!r}")
        if self.idle_seconds is not None and not self.idle_seconds > 0:
            raise InvalidInputError(f"idle_seconds must be > 0, got {self.idle_seconds!r}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays after failed windows: ``initial * 2**(n-1)`` capped at ``max`` seconds for
    the n-th consecutive failure, minus up to ``jitter`` of it at random (so managers that
    failed together do not retry together). ``attempts``: give up after this many consecutive
    failures until the next trigger (``None``: keep retrying)."""

    initial: float = 1.0
    max: float = 300.0
    attempts: int | None = None
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.max >= self.initial):
            raise InvalidInputError(
                f"need 0 < initial <= max, got initial={self.initial!r} max={self.max!r}"
            )
        if self.attempts is not None and self.attempts < 1:
            raise InvalidInputError(f"attempts must be >= 1 or None, got {self.attempts!r}")
        if not 0 <= self.jitter <= 1:
            raise InvalidInputError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        exponent = min(max(failures, 1) - 1, 64)
        base = min(self.max, self.initial * 2.0**exponent)
        return base * (1.0 - self.jitter * (rng or random).random())


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One processed window: items ``from_seq < seq <= to_seq`` of a session.

    ``applied`` is ``False`` when another process advanced the mark first (counted as
    ``skipped``; ``result`` is then not added to the counters)."""

    session_id: str
    from_seq: int
    to_seq: int
    items: int
    result: WindowResult
    applied: bool = True


@dataclass(frozen=True, slots=True)
class ExtractReport:
    """What :meth:`MemoryManager.extract_now` did: ``ok`` when every requested session was
    extracted up to its newest item; ``errors`` maps a session id to why it was not."""

    ok: bool
    windows: tuple[WindowRecord, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ManagerStats:
    """Counters since the manager started (``queued``/``running``/``waiting`` are current)."""

    triggered: int = 0
    """Extraction requests: triggers fired, flushes and ``extract_now`` calls, per session."""
    windows: int = 0
    """Windows processed and committed (mark advanced)."""
    items: int = 0
    """Session items in those windows."""
    added: int = 0
    updated: int = 0
    deleted: int = 0
    none: int = 0
    tokens: int = 0
    """LLM tokens reported by the processor (also for windows another process committed)."""
    failed: int = 0
    """Jobs that raised (the mark stayed; the items are retried)."""
    retried: int = 0
    """Retries scheduled after a failure."""
    gave_up: int = 0
    """Sessions left after ``Backoff.attempts`` consecutive failures (items kept)."""
    skipped: int = 0
    """Windows another process committed first (compare-and-set lost)."""
    lease_busy: int = 0
    """Jobs postponed because another process held the session's claim."""
    deferred: int = 0
    """Triggers that found the queue full and waited in the overflow line."""
    queued: int = 0
    running: int = 0
    waiting: int = 0
    """Sessions waiting for a retry or for another process's claim."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


_COUNTERS = (
    "triggered",
    "windows",
    "items",
    "added",
    "updated",
    "deleted",
    "none",
    "tokens",
    "failed",
    "retried",
    "gave_up",
    "skipped",
    "lease_busy",
    "deferred",
)


# -- sessions the manager can watch ---------------------------------------------------------


class SyncSessionLike(Protocol):
    """A synchronous session (:class:`engramdb.Session` or the same shape)."""

    @property
    def session_id(self) -> str: ...

    def get_items(self, limit: int | None = None) -> list[Any]: ...

    def add_items(self, items: list[Any]) -> None: ...

    def pop_item(self) -> Any: ...

    def clear_session(self) -> None: ...


class AsyncSessionLike(Protocol):
    """An asynchronous session: :class:`engramdb.AsyncSession`, or any OpenAI Agents SDK
    ``Session`` (``get_items`` / ``add_items`` / ``pop_item`` / ``clear_session``)."""

    @property
    def session_id(self) -> str: ...

    async def get_items(self, limit: int | None = None) -> list[Any]: ...

    async def add_items(self, items: list[Any]) -> None: ...

    async def pop_item(self) -> Any: ...

    async def clear_session(self) -> None: ...


def item_tokens(item: object) -> int:
    """A cheap token estimate of one raw item: its JSON length / 4, rounded up (the same
    chars/4 rule as the transcript's estimate, without rendering)."""
    try:
        size = len(orjson.dumps(item))
    except TypeError:
        size = len(str(item))
    return -(-size // 4)


def is_user_turn(item: object) -> bool:
    """Whether ``item`` is a user message (``{"role": "user", ...}``, chat or Responses)."""
    return isinstance(item, Mapping) and item.get("role") == "user"


class _Watched:
    def __init__(self, manager: MemoryManager, session: Any) -> None:
        self._manager = manager
        self.session = session
        self.session_id: str = session.session_id
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        # everything else (info, run_lease, session_settings, ...) is the wrapped session's
        return getattr(self.session, name)

    def _close_targets(self) -> dict[str, int]:
        if self._closed:
            return {}
        self._closed = True
        return self._manager._session_closed(self.session_id)


class WatchedSession(_Watched):
    """A synchronous session the manager watches; the same API as the wrapped session.

    ``add_items`` stores the items first (an error there is the session's own, raised as
    usual) and then notifies the manager without waiting for it. ``close()`` extracts what
    is left (when ``Triggers.on_close``) and stops watching.
    """

    session: SyncSessionLike

    def get_items(self, limit: int | None = None) -> list[Any]:
        """The wrapped session's ``get_items``."""
        return self.session.get_items(limit)

    def add_items(self, items: Sequence[Any]) -> None:
        """Store ``items`` in the wrapped session, then notify the manager (no I/O)."""
        batch = list(items)
        self.session.add_items(batch)
        self._manager.notify(self.session_id, batch)

    def pop_item(self) -> Any:
        """The wrapped session's ``pop_item``."""
        return self.session.pop_item()

    def clear_session(self) -> None:
        """The wrapped session's ``clear_session``."""
        self.session.clear_session()

    def close(self, timeout: float | None = None) -> bool:
        """Extract the session's remaining items (``Triggers.on_close``) and stop watching.

        Returns whether that extraction succeeded within ``timeout`` (``True`` when there was
        nothing to do). The wrapped session itself stays usable."""
        return self._manager._wait(self._close_targets(), timeout)

    def __enter__(self) -> WatchedSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWatchedSession(_Watched):
    """An asynchronous session the manager watches (an Agents SDK ``Session`` too)."""

    session: AsyncSessionLike

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The wrapped session's ``get_items``."""
        return await self.session.get_items(limit)

    async def add_items(self, items: list[Any]) -> None:
        """Store ``items`` in the wrapped session, then notify the manager (no I/O)."""
        batch = list(items)
        await self.session.add_items(batch)
        self._manager.notify(self.session_id, batch)

    async def pop_item(self) -> Any:
        """The wrapped session's ``pop_item``."""
        return await self.session.pop_item()

    async def clear_session(self) -> None:
        """The wrapped session's ``clear_session``."""
        await self.session.clear_session()

    async def close(self, timeout: float | None = None) -> bool:
        """Extract the remaining items (``Triggers.on_close``) and stop watching; see
        :meth:`WatchedSession.close`. Waits without blocking the event loop; cancelling the
        wait does not cancel the extraction."""
        return await self._manager._await(self._close_targets(), timeout)

    async def __aenter__(self) -> AsyncWatchedSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- the manager ----------------------------------------------------------------------------

_Phase = Literal["idle", "queued", "overflow", "running", "waiting"]


class _State:
    """One session's bookkeeping (guarded by the manager's lock).

    Tickets: every request (trigger, flush, extract_now) takes a new ticket number and sets
    ``wanted``; a job serves the ``wanted`` it saw when it started; ``done`` is the newest
    ticket a job finished (successfully or not) and ``ok`` the newest one that succeeded.
    """

    __slots__ = (
        "done",
        "error",
        "failures",
        "idle_armed",
        "last_activity",
        "new_items",
        "new_tokens",
        "new_turns",
        "ok",
        "phase",
        "records",
        "serving",
        "session_id",
        "timer_gen",
        "wanted",
        "watchers",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.new_items = self.new_turns = self.new_tokens = 0
        self.last_activity = 0.0
        self.wanted = self.serving = self.done = self.ok = 0
        self.phase: _Phase = "idle"
        self.failures = 0
        self.error: str | None = None
        self.timer_gen = 0
        self.idle_armed = False
        self.watchers = 0
        self.records: deque[tuple[int, WindowRecord]] = deque(maxlen=1000)


@dataclass(slots=True)
class _Outcome:
    kind: Literal["ok", "failed", "busy", "stopped"]
    error: str | None = None


class MemoryManager:
    """Runs extraction for watched sessions in the background.

    >>> manager = MemoryManager(source, processor)        # doctest: +SKIP
    >>> session = manager.watch(Session("chat-1", store)) # doctest: +SKIP
    >>> session.add_items([{"role": "user", "content": "I moved to Lyon"}])  # doctest: +SKIP
    >>> manager.close()                                   # flushes  # doctest: +SKIP

    ``workers`` threads serve the ready queue (one job per session at a time); one timer
    thread handles idle triggers and retries, looking at ``clock`` at least every
    ``resolution`` seconds while timers are pending (so a test may pass a fake clock).
    ``lease_ttl`` is the claim's lifetime (renewed between windows), ``lease_poll`` how soon
    a session held by another process is tried again.
    """

    def __init__(
        self,
        source: WindowSource,
        processor: WindowProcessor | Callable[[str, Sequence[WindowItem]], WindowResult],
        *,
        triggers: Triggers | None = None,
        max_window_items: int = 50,
        max_window_tokens: int = 8000,
        retry: Backoff | None = None,
        max_queue: int = 1000,
        workers: int = 2,
        lease_ttl: float = 300.0,
        lease_poll: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        resolution: float = 0.05,
        flush_at_exit: float | None = 30.0,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        for name, value in (
            ("max_window_items", max_window_items),
            ("max_window_tokens", max_window_tokens),
            ("max_queue", max_queue),
            ("workers", workers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1, got {value!r}")
        for name, number in (
            ("lease_ttl", lease_ttl),
            ("lease_poll", lease_poll),
            ("resolution", resolution),
        ):
            if not number > 0:
                raise InvalidInputError(f"{name} must be > 0, got {number!r}")
        self.source = source
        self.processor: WindowProcessor = (
            processor if isinstance(processor, WindowProcessor) else _CallableProcessor(processor)
        )
        self.triggers = triggers if triggers is not None else Triggers()
        self.retry = retry if retry is not None else Backoff()
        self.max_window_items = max_window_items
        self.max_window_tokens = max_window_tokens
        self.max_queue = max_queue
        self.lease_ttl = lease_ttl
        self.lease_poll = lease_poll
        self.owner = owner or f"manager-{os.getpid()}-{uuid.uuid4().hex}"
        self._clock = clock
        self._resolution = resolution
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._finished = threading.Condition(self._lock)
        self._timer_wake = threading.Condition(self._lock)
        self._states: dict[str, _State] = {}
        self._ready: deque[str] = deque()
        self._overflow: deque[str] = deque()
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._timer_seq = itertools.count()
        self._ticket = 0
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._worker, name=f"engramdb-manager-{i}", daemon=True)
            for i in range(workers)
        ]
        self._threads.append(
            threading.Thread(target=self._timer_loop, name="engramdb-manager-timer", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        self._exit_hook: Callable[[], None] | None = None
        if flush_at_exit is not None:
            ref = weakref.ref(self)

            def at_exit() -> None:
                manager = ref()
                if manager is not None:
                    manager.close(timeout=flush_at_exit)

            self._exit_hook = at_exit
            atexit.register(at_exit)

    # -- watching ---------------------------------------------------------------------------
    @overload
    def watch(
        self, session: AsyncSessionLike, *, catch_up: bool = False
    ) -> AsyncWatchedSession: ...

    @overload
    def watch(self, session: SyncSessionLike, *, catch_up: bool = False) -> WatchedSession: ...

    def watch(
        self, session: Any, *, catch_up: bool = False
    ) -> WatchedSession | AsyncWatchedSession:
        """Wrap ``session`` so its new items are extracted in the background.

        Sync sessions give a :class:`WatchedSession`, async ones (``add_items`` a coroutine
        function: :class:`engramdb.AsyncSession`, Agents SDK sessions) an
        :class:`AsyncWatchedSession`. Items stored before ``watch`` (by an earlier run, a
        crashed process) are extracted by the session's next job; ``catch_up=True`` starts
        that job now, in the background.
        """
        session_id = getattr(session, "session_id", None)
        if not isinstance(session_id, str) or not session_id:
            raise InvalidInputError("a watched session needs a non-empty string session_id")
        with self._lock:
            self._check_open()
            state = self._state(session_id)
            state.watchers += 1
            if catch_up:
                self._request(state)
        if inspect.iscoroutinefunction(session.add_items):
            return AsyncWatchedSession(self, session)
        return WatchedSession(self, session)

    def notify(self, session_id: str, items: Sequence[Any]) -> None:
        """Tell the manager that ``items`` were just stored in ``session_id``.

        Watched sessions call it after each ``add_items``; call it yourself where items are
        stored another way (a server's session route). The hot path: counters, the trigger
        check and at most one queue append under a lock; no I/O, never raises for a closed
        manager, never waits for extraction."""
        triggers = self.triggers
        turns = sum(1 for item in items if is_user_turn(item))
        tokens = (
            sum(item_tokens(item) for item in items) if triggers.token_threshold is not None else 0
        )
        now = self._clock()
        with self._lock:
            if self._closing:
                return  # stored all the same; the next manager picks the items up
            state = self._state(session_id)
            state.new_items += len(items)
            state.new_turns += turns
            state.new_tokens += tokens
            state.last_activity = now
            if (
                triggers.every_n_turns is not None and state.new_turns >= triggers.every_n_turns
            ) or (
                triggers.token_threshold is not None
                and state.new_tokens >= triggers.token_threshold
            ):
                self._request(state)
            elif triggers.idle_seconds is not None and not state.idle_armed and state.new_items:
                state.idle_armed = True
                self._push_timer(now + triggers.idle_seconds, "idle", state)

    def _session_closed(self, session_id: str) -> dict[str, int]:
        with self._lock:
            state = self._state(session_id)
            state.watchers = max(0, state.watchers - 1)
            if self._closing or not self.triggers.on_close:
                return {}
            return {session_id: self._request(state, expedite=True)}

    # -- public control ---------------------------------------------------------------------
    def extract_now(
        self, session_id: str | None = None, *, timeout: float | None = None
    ) -> ExtractReport:
        """Extract ``session_id`` (any session of the source, watched or not) or every
        watched session up to its newest item, now, and wait for it.

        A session waiting out a retry back-off is retried at once. Failures are reported in
        the result (and retried in the background as usual), not raised."""
        targets = self._extract_targets(session_id)
        return self._report(targets, self._wait(targets, timeout), timeout)

    async def aextract_now(
        self, session_id: str | None = None, *, timeout: float | None = None
    ) -> ExtractReport:
        """:meth:`extract_now` without blocking the event loop; cancelling it stops the
        waiting, never the extraction."""
        targets = self._extract_targets(session_id)
        return self._report(targets, await self._await(targets, timeout), timeout)

    def _extract_targets(self, session_id: str | None) -> dict[str, int]:
        with self._lock:
            self._check_open()
            if session_id is not None:
                ids = [session_id]
            else:
                ids = [s.session_id for s in self._states.values() if s.watchers]
            return {sid: self._request(self._state(sid), expedite=True) for sid in ids}

    def _report(
        self, targets: Mapping[str, int], finished: bool, timeout: float | None
    ) -> ExtractReport:
        with self._lock:
            windows: list[WindowRecord] = []
            errors: dict[str, str] = {}
            for sid, ticket in targets.items():
                state = self._states[sid]
                windows.extend(rec for served, rec in state.records if served >= ticket)
                if state.ok < ticket:
                    errors[sid] = (
                        (state.error or "failed")
                        if state.done >= ticket
                        else f"not finished within {timeout}s"
                    )
        return ExtractReport(ok=finished and not errors, windows=tuple(windows), errors=errors)

    def flush(self, timeout: float | None = None) -> bool:
        """Extract every session with unextracted items now and wait for those jobs.

        Sessions with new items, queued, running, waiting for a retry or given up after
        failures (both retried at once) are served; ``True`` when every one succeeded within
        ``timeout`` seconds (``None``: no limit). A failed window keeps its items after the
        mark and is retried in the background; then ``False``.

        Only items the manager saw arrive (through watched sessions) or sessions it already
        worked on are known to it; for items written elsewhere use :meth:`extract_now`."""
        return self._wait(self._flush_targets(), timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` without blocking the event loop (no thread is parked either: the
        workers wake the coroutine). Cancelling it, or the loop closing, stops the waiting,
        never the work: a later :meth:`flush` or :meth:`close` finds it done."""
        return await self._await(self._flush_targets(), timeout)

    def _flush_targets(self) -> dict[str, int]:
        with self._lock:
            targets: dict[str, int] = {}
            if self._stopped:
                return targets
            for state in self._states.values():
                if state.new_items or state.phase == "waiting" or state.ok < state.done:
                    # new items, a retry ahead, or a session given up after failures
                    targets[state.session_id] = self._request(state, expedite=True)
                elif state.phase != "idle" or state.wanted > state.done:
                    targets[state.session_id] = state.wanted
            return targets

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the timer and worker threads (a job in progress finishes its
        current window). Returns what the flush returned; idempotent.

        ``timeout`` bounds the whole call: a worker still inside a processor call when it
        runs out is left behind (a daemon thread: it commits its window if it finishes
        before the process exits; otherwise the mark stays and the next run extracts those
        items)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closing:
                return True
        ok = self.flush(timeout)
        with self._lock:
            self._closing = True
            self._stopped = True
            self._timers.clear()
            self._work.notify_all()
            self._timer_wake.notify_all()
            self._wake()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        return ok

    async def aclose(self, timeout: float | None = None) -> bool:
        """:meth:`close` without blocking the event loop: the flush is awaited, then the
        threads are joined in a worker thread."""
        ok = await self.aflush(timeout)
        await asyncio.to_thread(self.close, 0)
        return ok

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> ManagerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            phases = [s.phase for s in self._states.values()]
            return ManagerStats(
                **self._counters,
                queued=len(self._ready) + len(self._overflow),
                running=phases.count("running"),
                waiting=phases.count("waiting"),
            )

    # -- scheduling (all under self._lock) --------------------------------------------------
    def _check_open(self) -> None:
        if self._closing:
            raise ManagerClosedError("the memory manager is closed")

    def _state(self, session_id: str) -> _State:
        state = self._states.get(session_id)
        if state is None:
            state = self._states[session_id] = _State(session_id)
        return state

    def _request(self, state: _State, *, expedite: bool = False) -> int:
        """A new ticket for the session; queue it unless a job will serve it anyway."""
        self._ticket += 1
        self._counters["triggered"] += 1
        state.wanted = self._ticket
        state.new_items = state.new_turns = state.new_tokens = 0
        if expedite and state.phase == "waiting":
            state.timer_gen += 1  # cancels the pending retry timer
            state.phase = "idle"
        if state.phase == "idle":
            self._enqueue(state)
        return self._ticket

    def _enqueue(self, state: _State) -> None:
        if len(self._ready) < self.max_queue:
            state.phase = "queued"
            self._ready.append(state.session_id)
            self._work.notify()
        else:
            state.phase = "overflow"
            self._overflow.append(state.session_id)
            self._counters["deferred"] += 1

    def _push_timer(self, due: float, kind: str, state: _State) -> None:
        heapq.heappush(
            self._timers, (due, next(self._timer_seq), kind, state.session_id, state.timer_gen)
        )
        self._timer_wake.notify()

    def _outcome(self, targets: Mapping[str, int]) -> bool | None:
        """``None`` while a target ticket is not done, else whether all succeeded (locked)."""
        if any(self._states[s].done < t for s, t in targets.items()):
            return False if self._stopped else None
        return all(self._states[s].ok >= t for s, t in targets.items())

    def _wait(self, targets: Mapping[str, int], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                outcome = self._outcome(targets)
                if outcome is not None:
                    return outcome
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._finished.wait(remaining)

    async def _await(self, targets: Mapping[str, int], timeout: float | None) -> bool:
        """:meth:`_wait` for coroutines: a future per wake-up, set from the worker threads."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._lock:
                outcome = self._outcome(targets)
                if outcome is not None:
                    return outcome
                woken: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, woken))
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(woken, remaining)
            except TimeoutError:
                return False

    def _wake(self) -> None:
        """Wake every waiter (locked): threads in :meth:`_wait`, coroutines in :meth:`_await`."""
        self._finished.notify_all()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, woken in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
                loop.call_soon_threadsafe(_resolve, woken)

    # -- threads ----------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._ready and not self._stopped:
                    self._work.wait()
                if self._stopped:
                    return
                state = self._states[self._ready.popleft()]
                if self._overflow:
                    moved = self._states[self._overflow.popleft()]
                    moved.phase = "queued"
                    self._ready.append(moved.session_id)
                    self._work.notify()
                state.phase = "running"
                state.serving = state.wanted
                serving = state.serving
            outcome = self._run_job(state.session_id, serving)
            with self._lock:
                self._finish(state, outcome)

    def _finish(self, state: _State, outcome: _Outcome) -> None:
        now = self._clock()
        if outcome.kind == "busy" and not self._stopped:
            self._counters["lease_busy"] += 1
            state.phase = "waiting"
            self._push_timer(now + self.lease_poll, "retry", state)
            return  # not done: the ticket is served once the claim is ours
        state.done = max(state.done, state.serving)
        if outcome.kind == "ok":
            state.ok = max(state.ok, state.serving)
            state.failures = 0
            state.error = None
            state.phase = "idle"
        elif outcome.kind == "failed":
            self._counters["failed"] += 1
            state.failures += 1
            state.error = outcome.error
            state.phase = "idle"
            if self.retry.attempts is not None and state.failures >= self.retry.attempts:
                self._counters["gave_up"] += 1
                state.failures = 0
                log.error(
                    "extraction of session %r failed %d times; giving up until the next "
                    "trigger (its items stay unextracted): %s",
                    state.session_id,
                    self.retry.attempts,
                    outcome.error,
                )
            elif not self._closing:
                self._counters["retried"] += 1
                state.phase = "waiting"
                delay = self.retry.delay(state.failures, self._rng)
                self._push_timer(now + delay, "retry", state)
        else:
            state.phase = "idle"
        if state.phase == "idle" and state.wanted > state.serving and not self._stopped:
            self._enqueue(state)
        self._wake()

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._stopped:
                now = self._clock()
                while self._timers and self._timers[0][0] <= now:
                    _, _, kind, sid, gen = heapq.heappop(self._timers)
                    state = self._states[sid]
                    if gen != state.timer_gen:
                        continue
                    if kind == "retry" and state.phase == "waiting":
                        state.phase = "idle"
                        self._enqueue(state)
                    elif kind == "idle":
                        self._idle_due(state, now)
                if self._timers:
                    wait = min(self._resolution, max(0.0, self._timers[0][0] - now))
                    self._timer_wake.wait(wait)
                else:
                    self._timer_wake.wait()

    def _idle_due(self, state: _State, now: float) -> None:
        idle = self.triggers.idle_seconds
        state.idle_armed = False
        if idle is None or not state.new_items:
            return
        due = state.last_activity + idle
        if due <= now:
            self._request(state)
        else:
            state.idle_armed = True
            self._push_timer(due, "idle", state)

    # -- one job: windows until the session is caught up ------------------------------------
    def _run_job(self, session_id: str, serving: int) -> _Outcome:
        source = self.source
        try:
            if not source.claim(session_id, self.owner, self.lease_ttl):
                return _Outcome("busy")
        except Exception as exc:
            log.warning("claiming session %r for extraction failed: %r", session_id, exc)
            return _Outcome("failed", _describe(exc))
        try:
            while True:
                if self._stopped:
                    return _Outcome("stopped")
                mark = source.mark(session_id)
                rows = source.items_after(session_id, mark, self.max_window_items)
                if not rows:
                    return _Outcome("ok")
                window = self._cut(rows)
                result = self.processor.process(session_id, window)
                to_seq = window[-1][0]
                applied = source.advance(session_id, mark, to_seq)
                record = WindowRecord(session_id, mark, to_seq, len(window), result, applied)
                with self._lock:
                    self._count(record)
                    self._states[session_id].records.append((serving, record))
                if not applied and source.mark(session_id) <= mark:
                    raise RuntimeError(
                        f"the mark of session {session_id!r} did not move past {mark} "
                        "but advance() refused it"
                    )
                if not source.claim(session_id, self.owner, self.lease_ttl):
                    return _Outcome("busy")  # the lease expired and someone else took it
        except Exception as exc:
            log.warning("extraction of session %r failed (will retry): %r", session_id, exc)
            return _Outcome("failed", _describe(exc))
        finally:
            try:
                source.release(session_id, self.owner)
            except Exception as exc:
                log.warning("releasing the claim on session %r failed: %r", session_id, exc)

    def _cut(self, rows: Sequence[WindowItem]) -> list[WindowItem]:
        """The longest prefix within ``max_window_tokens`` (at least one item)."""
        window = [rows[0]]
        budget = self.max_window_tokens - item_tokens(rows[0][2])
        for row in rows[1:]:
            budget -= item_tokens(row[2])
            if budget < 0:
                break
            window.append(row)
        return window

    def _count(self, record: WindowRecord) -> None:
        counters = self._counters
        counters["tokens"] += record.result.tokens
        if not record.applied:
            counters["skipped"] += 1
            return
        counters["windows"] += 1
        counters["items"] += record.items
        counters["added"] += record.result.added
        counters["updated"] += record.result.updated
        counters["deleted"] += record.result.deleted
        counters["none"] += record.result.none


class _CallableProcessor:
    """A plain function used as a :class:`WindowProcessor`."""

    def __init__(self, func: Callable[[str, Sequence[WindowItem]], WindowResult]) -> None:
        if not callable(func):
            raise InvalidInputError("processor must have process(session_id, items) or be callable")
        self.func = func

    def process(self, session_id: str, items: Sequence[WindowItem]) -> WindowResult:
        return self.func(session_id, items)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "AsyncSessionLike",
    "AsyncWatchedSession",
    "Backoff",
    "ExtractReport",
    "ManagerClosedError",
    "ManagerStats",
    "MemoryManager",
    "SyncSessionLike",
    "Triggers",
    "WatchedSession",
    "WindowItem",
    "WindowProcessor",
    "WindowRecord",
    "WindowResult",
    "WindowSource",
    "is_user_turn",
    "item_tokens",
]
