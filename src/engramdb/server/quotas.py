"""Per-key quotas and rate limits.

Daily recall counts live in the store (so every replica sees one count). A key with a daily
recall limit (its own or an ancestor's) is counted exactly: each recall is checked and
counted in one store write, so no number of workers or replicas can overrun the limit. A key
with no such limit needs no check, so its recalls are counted in this process's memory and
written in batches (:class:`RecallCounts`): every :data:`FLUSH_EVERY` recalls, at most
:data:`FLUSH_AFTER` seconds after the first unwritten one, and when the app shuts down — a
recall by an unlimited key does no store write. What a key has used (``/v1/stats``) is the
stored count plus this process's unwritten one. The stored-data
quotas (``max_memories``, ``max_facts``) are not checked here: the key's :class:`Quota` goes
down through the facade, and the store checks it inside the write transaction against
per-namespace counters it maintains (so concurrent writers cannot overrun it, and no
``COUNT(*)`` runs per write); it raises :class:`~engramdb.errors.QuotaExceededError` (429).
The requests-per-second limit is a token bucket in each worker process: it bounds bursts
cheaply, without a store write per request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..store import Store
from ..types import ApiKey, Quota, utc_day
from .errors import ApiError
from .settings import LIMIT_NAMES, Quotas

RECALLS = "recalls"

FLUSH_EVERY = 200
"""Unwritten recalls of unlimited keys (all keys together) that trigger a write."""
FLUSH_AFTER = 1.0
"""Seconds after which unwritten recall counts are written (by the app's flusher, or by the
next recall)."""

log = logging.getLogger("engramdb.server")


def seconds_to_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class TokenBuckets:
    """One token bucket per name (a key id, a client address), in this process: ``rate``
    tokens a second up to ``burst``; :meth:`take` spends one or says how long to wait."""

    MAX_NAMES = 100_000
    """Buckets kept at most; past that the oldest full ones are forgotten (a forgotten bucket
    is a full one, so forgetting loses nothing)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, name: str, rate: float, burst: float) -> int | None:
        """Spend a token of ``name``'s bucket: ``None`` if there was one, else the whole
        seconds to wait for the next."""
        empty = self.take_all([(name, rate, burst)])
        return None if empty is None else empty[1]

    def take_all(self, buckets: Sequence[tuple[str, float, float]]) -> tuple[str, int] | None:
        """Spend one token of each ``(name, rate, burst)`` bucket, or none if one of them is
        empty: ``None``, or the first empty bucket's name and the whole seconds to wait."""
        now = time.monotonic()
        with self._lock:
            refilled: list[tuple[str, float]] = []
            for name, rate, burst in buckets:
                tokens, last = self._buckets.pop(name, (burst, now))
                tokens = min(burst, tokens + (now - last) * rate)
                if len(self._buckets) >= self.MAX_NAMES:
                    self._forget_full(now, rate, burst)
                self._buckets[name] = (tokens, now)
                if tokens < 1.0:
                    return name, max(1, int((1.0 - tokens) / rate + 0.999))
                refilled.append((name, tokens))
            for name, tokens in refilled:
                self._buckets[name] = (tokens - 1.0, now)
            return None

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        for name, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= burst:
                del self._buckets[name]
        while len(self._buckets) >= self.MAX_NAMES:  # all busy: drop the least recent
            del self._buckets[next(iter(self._buckets))]


class RecallCounts:
    """Recall counts not yet written to the store, per ``(namespace, key id, day)``, for keys
    without a daily recall limit. :meth:`flush` writes them all in one transaction; a failed
    write keeps them for the next flush."""

    def __init__(
        self, store: Store, *, every: int = FLUSH_EVERY, after: float = FLUSH_AFTER
    ) -> None:
        self.store = store
        self.every = every
        self.after = after
        self._pending: dict[tuple[str, str, str], int] = {}
        self._total = 0
        self._since: float | None = None  # monotonic time of the oldest unwritten count
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def add(self, namespace: str, subject: str, day: str, amount: int = 1) -> None:
        """Count ``amount`` recalls in memory; flush if enough are unwritten or old enough."""
        with self._lock:
            where = (namespace, subject, day)
            self._pending[where] = self._pending.get(where, 0) + amount
            self._total += amount
            if self._since is None:
                self._since = time.monotonic()
            due = self._total >= self.every or time.monotonic() - self._since >= self.after
        if due:
            self.flush(wait=False)

    def unwritten(self, namespace: str, subject: str, day: str) -> int:
        """This process's recalls of the key on ``day`` not yet in the store."""
        with self._lock:
            return self._pending.get((namespace, subject, day), 0)

    def due(self) -> bool:
        """Whether some count has waited :attr:`after` seconds."""
        with self._lock:
            return self._since is not None and time.monotonic() - self._since >= self.after

    def flush(self, *, wait: bool = True) -> None:
        """Write every unwritten count (in one transaction). With ``wait=False``, a flush
        already running elsewhere is left to do it."""
        if not self._flushing.acquire(blocking=wait):
            return
        try:
            with self._lock:
                taken, self._pending = self._pending, {}
                self._total, self._since = 0, None
            if not taken:
                return
            try:
                with self.store.atomic():
                    for (namespace, subject, day), amount in taken.items():
                        self.store.usage_add(namespace, subject, RECALLS, day, amount, None)
            except Exception:
                log.warning(
                    "writing %d recall counts failed; kept for the next flush",
                    sum(taken.values()),
                    exc_info=True,
                )
                with self._lock:  # put them back, merged with what came meanwhile
                    for where, amount in taken.items():
                        self._pending[where] = self._pending.get(where, 0) + amount
                    self._total += sum(taken.values())
                    self._since = self._since or time.monotonic()
                if wait:
                    raise
        finally:
            self._flushing.release()


class Limiter:
    def __init__(self, store: Store, defaults: Quotas) -> None:
        self.store = store
        self.defaults = defaults
        self._buckets = TokenBuckets()  # per key id
        self.counts = RecallCounts(store)
        """Recalls of keys without a daily limit, counted in memory and written in batches."""

    def limits(self, key: ApiKey) -> dict[str, int | None]:
        """The key's limits: its own where set, the server defaults elsewhere."""
        base = self.defaults.model_dump()
        return {name: key.limits.get(name, base[name]) for name in LIMIT_NAMES}

    def check_rate(self, key: ApiKey, ancestors: Sequence[ApiKey] = ()) -> None:
        """Take a token from the key's bucket and from each ancestor's (keys created by a
        namespace key share its rate), or none if one of them is empty."""
        rates = {who.id: self.limits(who)["requests_per_second"] for who in (key, *ancestors)}
        empty = self._buckets.take_all(
            [(key_id, rate, 2.0 * rate) for key_id, rate in rates.items() if rate is not None]
        )
        if empty is not None:
            key_id, wait = empty
            rate = rates[key_id]
            whose = "this key" if key_id == key.id else "the key that created this one"
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {rate} requests per second exceeded for {whose}",
                {"Retry-After": str(wait)},
            )

    def count_recall(self, key: ApiKey, ancestors: Sequence[ApiKey] = ()) -> None:
        """Count one recall for the key and each of its ancestors: if any of them is at its
        daily limit, nothing is counted and the recall is refused.

        Keys with a limit are checked and counted in the store, in one unit of work (exact
        across processes); keys without one are counted in memory (:class:`RecallCounts`),
        only once every limited one has accepted the recall."""
        day = utc_day()
        chain = [(who, self.limits(who)["recalls_per_day"]) for who in (key, *ancestors)]
        limited = [(who, limit) for who, limit in chain if limit is not None]
        if limited:
            for who, _ in limited:  # a count batched while the key was unlimited goes first
                if self.counts.unwritten(who.namespace, who.id, day):
                    self.counts.flush()
            with self.store.atomic() if len(limited) > 1 else contextlib.nullcontext():
                for who, limit in limited:
                    added, used = self.store.usage_add(
                        who.namespace, who.id, RECALLS, day, 1, limit
                    )
                    if not added:
                        whose = "" if who is key else " of the key that created this one"
                        raise ApiError(
                            429,
                            "quota_exceeded",
                            f"daily recall quota{whose} of {limit} reached ({used} used today); "
                            "it resets at 00:00 UTC",
                            {"Retry-After": str(seconds_to_midnight())},
                        )
        for who, no_limit in chain:
            if no_limit is None:
                self.counts.add(who.namespace, who.id, day)

    def quota(self, key: ApiKey) -> Quota:
        """The stored-data limits of the key's namespace, for the facade's writes."""
        limits = self.limits(key)
        return Quota(max_memories=limits["max_memories"], max_facts=limits["max_facts"])

    def usage(self, key: ApiKey) -> dict[str, Any]:
        """What the key has used and what remains (``None``: unlimited). Stored counts come
        from the namespace's maintained counters, so this never counts rows."""
        limits = self.limits(key)
        counts = self.store.usage_counts(key.namespace)
        day = utc_day()
        recalls = self.store.usage_get(key.namespace, key.id, day).get(
            RECALLS, 0
        ) + self.counts.unwritten(key.namespace, key.id, day)
        used = {
            "memories": counts["memories"],
            "facts": counts["facts"],
            "recalls_today": recalls,
        }

        def left(limit: int | None, n: int) -> int | None:
            return None if limit is None else max(0, limit - n)

        return {
            "usage": used,
            "limits": limits,
            "remaining": {
                "memories": left(limits["max_memories"], used["memories"]),
                "facts": left(limits["max_facts"], used["facts"]),
                "recalls_today": left(limits["recalls_per_day"], recalls),
            },
        }
