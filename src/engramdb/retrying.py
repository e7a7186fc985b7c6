"""Back-off arithmetic shared by everything that retries a remote call (HTTP client, LLMs)."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header value in seconds (a number or an HTTP date), or ``None`` when
    absent or unreadable. Never negative."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(base: float, attempt: int, cap: float) -> float:
    """Exponential back-off with jitter: ``base * 2**attempt``, half of it random, at most
    ``cap`` seconds. ``attempt`` counts from 0."""
    step = base * (2.0**attempt)
    return min(cap, step / 2 + random.uniform(0, step / 2))
