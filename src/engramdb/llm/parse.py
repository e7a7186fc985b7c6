"""Structured-output parsing: a model's text answer → one JSON object matching a schema.

Models wrap JSON in code fences or prose ("Here is the result: ...") even when asked not to,
so :func:`extract_json_object` finds the first balanced top-level JSON object in the text. It
stays strict otherwise: a bare list, a truncated object or several disagreeing objects are not
guessed into shape. :func:`validate` checks the object against the JSON Schema the caller
asked for (with the maintained ``jsonschema`` validator, Draft 2020-12) and reports the first
problem as ``<path>: <reason>`` in an :class:`~engramdb.errors.LLMResponseError`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidInputError, LLMResponseError

__all__ = ["extract_json_object", "parse_json_answer", "validate"]

MAX_ANSWER_CHARS = 1_000_000
"""Longer answers are rejected without parsing (a runaway model; the scan is quadratic at
worst)."""

_MAX_START_ATTEMPTS = 200
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5|javascript)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _excerpt(text: str, limit: int = 200) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer: the whole text, else the first fenced block that
    is an object, else the first balanced ``{...}`` in the text that parses.

    Raises :class:`LLMResponseError` when there is none (empty answer, invalid JSON, a value
    that is not an object)."""
    if not isinstance(text, str) or not text.strip():
        raise LLMResponseError("the model's answer is empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise LLMResponseError(
            f"the model's answer is {len(text)} characters long, over {MAX_ANSWER_CHARS}"
        )
    stripped = text.strip()
    try:
        whole = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    else:
        if isinstance(whole, dict):
            return whole
        raise LLMResponseError(f"the model answered {_kind(whole)}, not a JSON object")
    for block in _FENCE.findall(stripped):
        try:
            fenced = orjson.loads(block.strip())
        except orjson.JSONDecodeError:
            continue
        if isinstance(fenced, dict):
            return fenced
        raise LLMResponseError(f"the model answered {_kind(fenced)}, not a JSON object")
    start = stripped.find("{")
    attempts = 0
    while start != -1 and attempts < _MAX_START_ATTEMPTS:
        attempts += 1
        try:
            found, _ = _DECODER.raw_decode(stripped, start)
        except ValueError:
            start = stripped.find("{", start + 1)
            continue
        if isinstance(found, dict):
            return found
        start = stripped.find("{", start + 1)  # pragma: no cover - '{' always decodes a dict
    raise LLMResponseError(f"no JSON object in the model's answer: {_excerpt(text)}")


@functools.lru_cache(maxsize=64)
def _validator(schema_json: bytes) -> Any:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - installed with the openai extra
        raise InvalidInputError(
            "validating model answers needs the jsonschema package: pip install 'engramdb[openai]'"
        ) from None
    schema = orjson.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInputError(f"invalid JSON schema for a model answer: {exc.message}") from None
    return Draft202012Validator(schema)


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(value: Any, schema: Mapping[str, Any]) -> None:
    """Check ``value`` against ``schema`` (JSON Schema, Draft 2020-12: types, ``properties``,
    ``required``, ``items``, ``enum``, ``additionalProperties``, ``anyOf``, type lists for
    nullable fields, ...).

    Raises :class:`LLMResponseError` naming where and why the first error is (``$.facts[0]
    .type: 'fact2' is not one of ['fact', 'preference']``); an invalid schema is the caller's
    mistake: :class:`~engramdb.errors.InvalidInputError`."""
    try:
        key = orjson.dumps(dict(schema), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise InvalidInputError(f"the schema for a model answer is not JSON: {exc}") from None
    validator = _validator(key)
    errors = sorted(
        validator.iter_errors(value), key=lambda e: (len(e.absolute_path), list(map(str, e.path)))
    )
    if not errors:
        return
    from jsonschema.exceptions import best_match

    first = best_match(errors)
    ordered = [first, *(e for e in errors if e is not first)]
    problems = [f"at {_path(e.absolute_path)}: {_short(e.message)}" for e in ordered[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    raise LLMResponseError(
        "the model's answer does not match the schema " + "; ".join(problems) + more
    )


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


def parse_json_answer(text: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`extract_json_object` then :func:`validate`: the object, or
    :class:`LLMResponseError`."""
    data = extract_json_object(text)
    validate(data, schema)
    return data
