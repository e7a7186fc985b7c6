"""Per-key quotas and rate limits.

Daily recall counts live in the store (so every replica sees one count); the memory quota is
checked against the namespace's stored count. The requests-per-second limit is a token bucket
in each worker process: it bounds bursts cheaply, without a store write per request.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..store import Store
from ..types import ApiKey
from .errors import ApiError
from .settings import LIMIT_NAMES, Quotas

RECALLS = "recalls"


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


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
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(name, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if len(self._buckets) >= self.MAX_NAMES:
                self._forget_full(now, rate, burst)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return max(1, int((1.0 - tokens) / rate + 0.999))
            self._buckets[name] = (tokens - 1.0, now)
            return None

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        for name, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= burst:
                del self._buckets[name]
        while len(self._buckets) >= self.MAX_NAMES:  # all busy: drop the least recent
            del self._buckets[next(iter(self._buckets))]


class Limiter:
    def __init__(self, store: Store, defaults: Quotas) -> None:
        self.store = store
        self.defaults = defaults
        self._buckets = TokenBuckets()  # per key id

    def limits(self, key: ApiKey) -> dict[str, int | None]:
        """The key's limits: its own where set, the server defaults elsewhere."""
        base = self.defaults.model_dump()
        return {name: key.limits.get(name, base[name]) for name in LIMIT_NAMES}

    def check_rate(self, key: ApiKey) -> None:
        rate = self.limits(key)["requests_per_second"]
        if rate is None:
            return
        wait = self._buckets.take(key.id, rate, 2.0 * rate)
        if wait is not None:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {rate} requests per second exceeded for this key",
                {"Retry-After": str(wait)},
            )

    def count_recall(self, key: ApiKey) -> None:
        limit = self.limits(key)["recalls_per_day"]
        added, used = self.store.usage_add(key.namespace, key.id, RECALLS, utc_day(), 1, limit)
        if not added:
            raise ApiError(
                429,
                "quota_exceeded",
                f"daily recall quota of {limit} reached ({used} used today); it resets at "
                "00:00 UTC",
                {"Retry-After": str(seconds_to_midnight())},
            )

    def check_memories(self, key: ApiKey, adding: int) -> None:
        limit = self.limits(key)["max_memories"]
        if limit is None:
            return
        stored = self.store.memory_stats(key.namespace).memories
        if stored + adding > limit:
            raise ApiError(
                429,
                "quota_exceeded",
                f"memory quota of {limit} reached ({stored} stored, {adding} more requested); "
                "forget memories to make room",
                {"Retry-After": "3600"},
            )

    def usage(self, key: ApiKey, memories: int) -> dict[str, Any]:
        """What the key has used and what remains (``None``: unlimited)."""
        limits = self.limits(key)
        recalls = self.store.usage_get(key.namespace, key.id, utc_day()).get(RECALLS, 0)
        used = {"memories": memories, "recalls_today": recalls}

        def left(limit: int | None, n: int) -> int | None:
            return None if limit is None else max(0, limit - n)

        return {
            "usage": used,
            "limits": limits,
            "remaining": {
                "memories": left(limits["max_memories"], memories),
                "recalls_today": left(limits["recalls_per_day"], recalls),
            },
        }
