"""Records that cross the public API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

JSONItem = dict[str, Any]
"""One session item: any JSON object (for the Agents SDK, a Responses input item)."""

DEFAULT_NAMESPACE = "default"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_us() -> int:
    """The current time as integer microseconds since the epoch (how stores keep time)."""
    return time.time_ns() // 1000


def datetime_from_us(us: int) -> datetime:
    """Stored microseconds to an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=us)


def us_from_datetime(value: datetime) -> int:
    """An aware datetime to stored microseconds, exactly (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Metadata of one session: when it started, when it last changed, how many items it has."""

    namespace: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    item_count: int


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Default settings of a session; ``limit`` bounds ``get_items()`` when no limit is given."""

    limit: int | None = None
