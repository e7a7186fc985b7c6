"""Stored-data quotas: the check every backend runs inside the write transaction."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import QuotaExceededError
from ..types import Quota

RETRY_AFTER = 3600
"""Seconds a client is told to wait: stored-data quotas free up only when data is forgotten."""


def quota_error(
    quota: Quota, counts: Mapping[str, int], adding: Mapping[str, int]
) -> QuotaExceededError | None:
    """The error for the first limit ``counts`` (which already include ``adding``) exceed."""
    for name, counter, noun in (
        ("max_memories", "memories", "memory"),
        ("max_facts", "facts", "fact"),
    ):
        limit: int | None = getattr(quota, name)
        stored, added = counts.get(counter, 0), adding.get(counter, 0)
        if limit is not None and added > 0 and stored > limit:
            before = stored - added
            return QuotaExceededError(
                f"{noun} quota of {limit} reached ({before} stored, {added} more requested); "
                f"forget {counter} to make room",
                quota=name,
                limit=limit,
                used=before,
                adding=added,
                retry_after=RETRY_AFTER,
            )
    return None
