"""Input checks shared by every layer, so every entry point rejects the same things the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import InvalidInputError

MAX_ID_LENGTH = 512


def check_id(kind: str, value: object) -> str:
    """Return ``value`` if it is a usable identifier (session id, namespace, ...), else raise."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{kind} must be a string, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidInputError(f"{kind} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            f"{kind} is {len(value)} characters long; the maximum is {MAX_ID_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidInputError(f"{kind} must not contain NUL characters")
    _check_utf8(kind, value)
    return value


def check_limit(
    limit: object, *, allow_none: bool = True, maximum: int | None = None
) -> int | None:
    """Validate a result-count limit: ``None`` (if allowed) or an int ``>= 0``."""
    if limit is None:
        if allow_none:
            return None
        raise InvalidInputError("limit is required")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInputError(f"limit must be an integer or None, got {type(limit).__name__}")
    if limit < 0:
        raise InvalidInputError(
            f"limit must be >= 0 (got {limit}); use None for no limit, 0 for nothing"
        )
    if maximum is not None and limit > maximum:
        raise InvalidInputError(f"limit must be <= {maximum} (got {limit})")
    return limit


def encode_item(index: int, item: object) -> str:
    """Serialise one session item to compact JSON text, or raise saying which item is wrong."""
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"item {index} must be a JSON object (dict), got {type(item).__name__}"
        )
    try:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"item {index} is not JSON-serialisable: {exc}") from None
    _check_utf8(f"item {index}", text)
    return text


def encode_items(items: Sequence[object]) -> list[str]:
    """Serialise a batch; any bad item rejects the whole batch before anything is written."""
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Sequence):
        raise InvalidInputError(f"items must be a list of dicts, got {type(items).__name__}")
    return [encode_item(i, item) for i, item in enumerate(items)]


def _check_utf8(kind: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{kind} contains text that is not valid Unicode (a lone surrogate)"
        ) from None


def decode_item(text: Any, *, record_id: object, where: str) -> dict[str, Any]:
    """Parse a stored item; a record that does not parse to an object is corrupt."""
    from .errors import CorruptRecordError

    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise CorruptRecordError(
            f"stored item {record_id} in {where} is not a JSON object; it was left in place. "
            "Inspect it with `engramdb sessions show` and remove it explicitly if it is garbage.",
            record_id=record_id if isinstance(record_id, (int, str)) else None,
        )
    return value
