"""Filters for recall, list and forget: which memories a call may see."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from .errors import InvalidInputError
from .types import parse_datetime as parse_datetime
from .validation import check_id, check_text

MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Filter:
    """Constraints on memories; every field given must hold (AND).

    ``tags``: the memory has every one of these tags. ``metadata``: each key equals the value.
    ``since`` / ``until``: when it happened (``occurred_at``, else when it was stored).
    """

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def scoped(self) -> bool:
        """True if the filter narrows below the whole namespace (any field set; forget needs
        more: :attr:`has_scope`)."""
        return any(
            (
                self.user_id,
                self.agent_id,
                self.session_id,
                self.tags,
                self.metadata,
                self.since,
                self.until,
            )
        )

    @property
    def has_scope(self) -> bool:
        """True if the filter names *who or what*: user, agent, session, tags or metadata.

        A time range alone is not a scope - "everything before June" is the whole namespace -
        so forget-by-filter needs one of these (or an explicit ``all``)."""
        return any((self.user_id, self.agent_id, self.session_id, self.tags, self.metadata))

    @classmethod
    def parse(cls, value: Filter | Mapping[str, Any] | None) -> Filter:
        """A Filter from a Filter, a dict with the same field names, or None (no filter)."""
        if value is None:
            return cls()
        if isinstance(value, Filter):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"filters must be a dict or Filter, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown filter field(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        args: dict[str, Any] = {}
        for name in ("user_id", "agent_id", "session_id"):
            if value.get(name) is not None:
                args[name] = check_id(name, value[name])
        if value.get("tags") is not None:
            args["tags"] = normalize_tags(value["tags"])
        if value.get("metadata") is not None:
            args["metadata"] = _metadata_filter(value["metadata"])
        for name in ("since", "until"):
            if value.get(name) is not None:
                args[name] = parse_datetime(name, value[name])
        return cls(**args)


MAX_TAGS = 64
MAX_TAG_LENGTH = 128
MAX_METADATA_FILTER_KEYS = 32


def _finite(value: str | float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def normalize_tags(tags: object) -> tuple[str, ...]:
    """Validated, stripped, de-duplicated tags in their first-seen order."""
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise InvalidInputError(f"tags must be a list of strings, got {type(tags).__name__}")
    out: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidInputError(f"each tag must be a string, got {type(tag).__name__}")
        tag = tag.strip()
        if not tag:
            raise InvalidInputError("tags must not be empty strings")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInputError(f"a tag is at most {MAX_TAG_LENGTH} characters")
        check_id("tag", tag)
        out[tag] = None
    if len(out) > MAX_TAGS:
        raise InvalidInputError(f"at most {MAX_TAGS} tags per memory")
    return tuple(out)


def tags_to_merge(existing: Sequence[str], incoming: Sequence[str]) -> tuple[str, ...]:
    """The ``incoming`` tags that ``existing`` lacks (tags compare case-insensitively), in
    order; raises if the union would exceed :data:`MAX_TAGS`."""
    have = {t.casefold() for t in existing}
    out: dict[str, None] = {}
    for tag in incoming:
        if tag.casefold() not in have:
            have.add(tag.casefold())
            out[tag] = None
    if out and len(existing) + len(out) > MAX_TAGS:
        raise InvalidInputError(
            f"merging tags {', '.join(map(repr, out))} into an identical memory would give it "
            f"more than {MAX_TAGS} tags"
        )
    return tuple(out)


def _metadata_filter(value: object) -> dict[str, MetadataValue]:
    if not isinstance(value, Mapping):
        raise InvalidInputError("metadata filter must be a dict of key -> value")
    if len(value) > MAX_METADATA_FILTER_KEYS:
        raise InvalidInputError(f"a metadata filter has at most {MAX_METADATA_FILTER_KEYS} keys")
    out: dict[str, MetadataValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError("metadata filter keys must be non-empty strings")
        check_id("metadata filter key", key)
        if not isinstance(item, (str, int, float, bool)) or not _finite(item):
            raise InvalidInputError(
                f"metadata filter value for {key!r} must be a string, number or boolean"
            )
        if isinstance(item, str):
            check_text(f"metadata filter value for {key!r}", item)
        if isinstance(item, int) and not -(2**63) <= item < 2**63:
            raise InvalidInputError(f"metadata filter value for {key!r} is out of range")
        out[key] = item
    return out
