"""Input checks shared by every layer, so every entry point rejects the same things the same way."""

from __future__ import annotations

import contextlib
import json
import math
import operator
import re
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson

from .errors import CorruptRecordError, InvalidInputError, NotJSONError

MAX_ID_LENGTH = 512
"""Longest identifier (session id, user/agent id, namespace, memory id), in characters."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of a stored JSON value (session items, metadata): a dict or list in a
dict counts 2. Anything deeper is refused on the way in, so everything stored can be read."""
MAX_QUERY_CHARS = 4096
"""Longest recall query by default, in characters (``Memory(max_query_chars=...)``)."""


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


MAX_LIMIT = 10_000
"""Largest ``limit`` of a recall, a list page or a facts query (README "Limits")."""


def check_limit(
    limit: object,
    *,
    allow_none: bool = False,
    minimum: int = 1,
    maximum: int | None = MAX_LIMIT,
) -> int | None:
    """Validate a result-count ``limit``; the one check every entry point uses.

    A limit is an integer from ``minimum`` (1) to ``maximum`` (:data:`MAX_LIMIT`); ``None``
    only where the call supports "all" (``allow_none``). Anything else raises
    :class:`InvalidInputError` with one message: ``limit must be an integer from 1 to
    10,000 (got 0)``. Sessions' ``get_items`` follows the Agents SDK's ``Session`` protocol
    instead: ``minimum=0`` (``0`` returns nothing), no maximum, ``None`` for every item."""
    if limit is None and allow_none:
        return None
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or limit < minimum
        or (maximum is not None and limit > maximum)
    ):
        span = f"from {minimum:,} to {maximum:,}" if maximum is not None else f">= {minimum}"
        all_ = ", or None for all" if allow_none else ""
        shown = repr(limit) if isinstance(limit, (int, type(None))) else type(limit).__name__
        raise InvalidInputError(f"limit must be an integer {span}{all_} (got {shown})")
    return limit


def check_min_score(min_score: object) -> float | None:
    """``min_score`` of a recall if it is a finite number or ``None``, else
    :class:`InvalidInputError`."""
    if min_score is None:
        return None
    if (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not math.isfinite(min_score)
    ):
        raise InvalidInputError(
            f"min_score must be a finite number or None, got {str(min_score)[:40]!r}"
        )
    return float(min_score)


def check_text(kind: str, value: str) -> str:
    """Return ``value`` if it can be stored as UTF-8 (no lone surrogate), else raise."""
    _check_utf8(kind, value)
    return value


def check_depth(kind: str, value: object, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`InvalidInputError` if ``value`` nests dicts/lists deeper than
    ``max_depth`` (a flat dict is depth 1). Iterative, so any depth is safe to check."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth > max_depth:
            raise InvalidInputError(
                f"{kind} is nested more than {max_depth} levels deep; the limit is {max_depth}"
            )
        stack.extend((child, depth + 1) for child in children)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_json(kind: str, value: object) -> str:
    """``value`` as compact JSON text, checked so it can be stored and read back: nesting
    within :data:`MAX_JSON_DEPTH`, valid Unicode, finite numbers, only JSON types.

    A value that is not JSON (a set, an object, ...) raises :class:`NotJSONError`, which is
    also a ``TypeError`` (what ``json.dumps`` raises); other problems raise
    :class:`InvalidInputError`.
    """
    try:
        text = _ENCODER.encode(value)  # json.dumps(value, <the same options>), minus its setup
    except TypeError as exc:
        raise NotJSONError(f"{kind} is not JSON-serialisable: {exc}") from None
    except ValueError as exc:
        raise InvalidInputError(f"{kind} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        text = ""  # far deeper than the limit: check_depth below says so
    # walking the value is the slow part: only a text with enough brackets can be too deep
    if not text or text.count("{") + text.count("[") > MAX_JSON_DEPTH:
        check_depth(kind, value)
    _check_utf8(kind, text)
    return text


def encode_item(index: int, item: object) -> str:
    """Serialise one session item to compact JSON text, or raise saying which item is wrong."""
    if not isinstance(item, dict):
        raise NotJSONError(f"item {index} must be a JSON object (dict), got {type(item).__name__}")
    return encode_json(f"item {index}", item)


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


LONG_NUMBER = re.compile(r"[0-9][0-9]{18}")
"""A run of 19 digits: orjson reads integers beyond 64 bits as floats, so texts that may hold
one use ``json``. (Spelled so that the regex engine scans for its first character quickly;
JSON numbers are ASCII digits.)"""


def plain_item(text: str) -> bool:
    """Whether a session item text may be read with ``orjson.loads`` alone, decided once when
    it is written (stored beside it as ``session_items.plain``): it is one JSON object that
    orjson reads exactly as the json module does (no integer beyond 64 bits, which orjson
    would turn into a float) and nests no deeper than :data:`MAX_JSON_DEPTH`. Anything else
    (and every row written before the flag existed) is read by the careful path of
    :func:`decode_item`."""
    if text[:1] != "{" or text[-1:] != "}":
        return False
    long_number = LONG_NUMBER.search(text) is not None
    if not long_number and text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
        return True  # the common case: nothing to parse
    try:
        value = orjson.loads(text)
        if long_number and orjson.dumps(value) != orjson.dumps(json.loads(text)):
            return False
        check_depth("item", value)
    except (InvalidInputError, TypeError, ValueError, RecursionError):
        return False  # orjson.JSONDecodeError is a ValueError; a big integer a TypeError
    return type(value) is dict


def plain_items(texts: Sequence[str]) -> list[bool]:
    """:func:`plain_item` of each text, with one search for long numbers over the whole batch
    when it finds none (the usual case)."""
    # NUL never occurs in JSON text unescaped: it keeps digit runs of neighbours apart
    if len(texts) > 1 and not LONG_NUMBER.search("\x00".join(texts)):
        return [
            t[:1] == "{"
            and t[-1:] == "}"
            and (t.count("{") + t.count("[") <= MAX_JSON_DEPTH or plain_item(t))
            for t in texts
        ]
    return [plain_item(t) for t in texts]


def decode_item(
    text: str, *, record_id: int | str, where: str, plain: object = None
) -> dict[str, Any]:
    """Parse one stored item; a record that does not parse to an object is corrupt.

    ``plain`` is the row's stored :func:`plain_item` flag: when true the text is parsed with
    orjson straight away; otherwise (false, or ``None`` for a row written before the flag)
    big integers and over-deep nesting are looked for first."""
    if plain:
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(text)
            if type(value) is dict:
                return cast(dict[str, Any], value)
    try:
        if LONG_NUMBER.search(text):
            raise orjson.JSONDecodeError("may hold a big integer", text, 0)
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # orjson is stricter than the json module that wrote it (huge integers, ...)
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
    if type(value) is not dict:
        raise corrupt_item(record_id, where)
    _check_stored_depth(text, value, record_id, where)
    return value


def _check_stored_depth(text: str, value: object, record_id: int | str, where: str) -> None:
    """An item nested deeper than :data:`MAX_JSON_DEPTH` (only an older engramdb could store
    one) is reported like a corrupt one: never served, never popped, left in place."""
    if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:  # cannot be that deep
        return
    try:
        check_depth("item", value)
    except InvalidInputError:
        raise corrupt_item(
            record_id, where, f"is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None


_TEXT = operator.itemgetter(1)
_PLAIN = operator.itemgetter(2)


def decode_items(rows: Sequence[Sequence[Any]], *, where: str) -> list[dict[str, Any]]:
    """Parse ``(record_id, text)`` or ``(record_id, text, plain)`` rows; raise
    :class:`CorruptRecordError` naming a bad one.

    The texts are parsed as one JSON array, several times faster than one call per item. When
    every row carries a true ``plain`` flag (see :func:`plain_item`: checked when written),
    that is all; otherwise every text is first checked to look like one object and searched
    for big integers. Either way the parse must yield exactly one object per row, so damaged
    neighbours cannot merge into a plausible item; any doubt falls back to parsing row by row,
    which names the corrupt record.
    """
    if not rows:
        return []
    values: Any = None
    if len(rows[0]) > 2 and all(map(_PLAIN, rows)):  # map/itemgetter: no Python-level loop
        with contextlib.suppress(orjson.JSONDecodeError):
            values = orjson.loads("[" + ",".join(map(_TEXT, rows)) + "]")
        if values is not None and len(values) == len(rows) and set(map(type, values)) == {dict}:
            return cast(list[dict[str, Any]], values)
        values = None
    texts = [row[1] for row in rows]
    if all(isinstance(t, str) and t[:1] == "{" and t[-1:] == "}" for t in texts):
        joined = "[" + ",".join(texts) + "]"
        if not LONG_NUMBER.search(joined):
            with contextlib.suppress(orjson.JSONDecodeError):
                values = orjson.loads(joined)
    if values is None or len(values) != len(rows) or any(type(v) is not dict for v in values):
        return [
            decode_item(
                row[1], record_id=row[0], where=where, plain=row[2] if len(row) > 2 else None
            )
            for row in rows
        ]
    # too deep needs more than MAX_JSON_DEPTH opening brackets (and as many closing ones)
    for i in [
        i
        for i, text in enumerate(texts)
        if len(text) > 2 * MAX_JSON_DEPTH and text.count("{") + text.count("[") > MAX_JSON_DEPTH
    ]:
        _check_stored_depth(texts[i], values[i], rows[i][0], where)
    return cast(list[dict[str, Any]], values)


def decode_page(text: str, count: int) -> list[dict[str, Any]] | None:
    """A page of ``count`` plain items (see :func:`plain_item`) joined by the store into one
    JSON array text, parsed in one call; ``None`` if it does not parse to exactly ``count``
    objects (then read the rows one by one, which names a corrupt record)."""
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(values) is not list or len(values) != count or set(map(type, values)) != {dict}:
        return None
    return cast(list[dict[str, Any]], values)


def corrupt_item(
    record_id: int | str, where: str, problem: str = "is not a JSON object"
) -> CorruptRecordError:
    return CorruptRecordError(
        f"stored item {record_id} in {where} {problem}; it was left in place. "
        "Inspect it with `engramdb sessions show` and remove it explicitly if it is garbage.",
        record_id=record_id,
    )
