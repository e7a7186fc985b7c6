"""Structured-output parsing: a model's text → one JSON object that matches the schema."""

from __future__ import annotations

from typing import Any

import pytest

from engramdb.errors import InvalidInputError, LLMResponseError
from engramdb.llm.parse import extract_json_object, parse_json_answer, validate

OBJ = {"facts": [{"text": 'a {brace} and "quotes"', "kind": "fact"}], "n": 1}
JSON = '{"facts": [{"text": "a {brace} and \\"quotes\\"", "kind": "fact"}], "n": 1}'


@pytest.mark.parametrize(
    "text",
    [
        JSON,
        f"  \n{JSON}\n ",
        f"```json\n{JSON}\n```",
        f"```JSON\n{JSON}```",
        f"```\n{JSON}\n```",
        f"Here is the result:\n\n```json\n{JSON}\n```\n\nLet me know!",
        f"Sure. {JSON} That is all.",
        f"Sure. {{not json}} then the answer: {JSON}",
        f"Thinking... {{'single': 'quotes'}} no; {JSON}",
        f"```python\nprint(1)\n```\nand {JSON}",
    ],
)
def test_issue11_parse_tolerates_fences_and_prose(text: str) -> None:
    assert extract_json_object(text) == OBJ


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("no json here", "no JSON object"),
        ('{"facts": [1, 2', "no JSON object"),
        ("[1, 2]", "an array"),
        ('"just a string"', "a string"),
        ("42", "a number"),
        ("null", "null"),
        ("```json\n[1, 2]\n```", "an array"),
        ("{'single': 'quotes'}", "no JSON object"),
        ("x" * 1_000_001, "over 1000000"),
    ],
)
def test_issue11_parse_rejects_what_is_not_an_object(text: str, reason: str) -> None:
    with pytest.raises(LLMResponseError, match=reason):
        extract_json_object(text)


def test_issue11_parse_many_braces_is_bounded() -> None:
    text = "{" * 5000 + ' {"a": 1}'
    with pytest.raises(LLMResponseError, match="no JSON object"):
        extract_json_object(text)  # gives up after a bounded number of starts


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "kind": {"type": "string", "enum": ["fact", "preference", "event"]},
                    "confidence": {"type": "number"},
                    "count": {"type": "integer"},
                    "pinned": {"type": "boolean"},
                    "when": {"type": ["string", "null"]},
                    "handle": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                },
                "required": ["text", "kind"],
                "additionalProperties": False,
            },
        },
        "note": {"type": "null"},
    },
    "required": ["items"],
    "additionalProperties": False,
}


def item(**extra: Any) -> dict[str, Any]:
    return {"items": [{"text": "t", "kind": "fact", **extra}]}


@pytest.mark.parametrize(
    "value",
    [
        {"items": []},
        item(),
        item(confidence=0.5, count=3, pinned=True, when=None, handle=None),
        item(when="2024-05-01", handle=2, confidence=1),
        {"items": [], "note": None},
    ],
)
def test_issue11_parse_valid_values_pass(value: dict[str, Any]) -> None:
    validate(value, SCHEMA)


@pytest.mark.parametrize(
    ("value", "where", "why"),
    [
        ({}, r"\$", "'items' is a required property"),
        ({"items": {}}, r"\$\.items", "is not of type 'array'"),
        ({"items": [], "extra": 1}, r"\$", "Additional properties"),
        (item(kind="opinion"), r"\$\.items\[0\]\.kind", "is not one of"),
        (item(count=1.5), r"\$\.items\[0\]\.count", "is not of type 'integer'"),
        (item(count=True), r"\$\.items\[0\]\.count", "is not of type 'integer'"),
        (item(confidence="high"), r"\$\.items\[0\]\.confidence", "not of type 'number'"),
        (item(pinned="yes"), r"\$\.items\[0\]\.pinned", "not of type 'boolean'"),
        (item(when=5), r"\$\.items\[0\]\.when", "not of type 'string', 'null'"),
        (item(handle="3"), r"\$\.items\[0\]\.handle", "is not valid under any"),
        ({"items": [{"kind": "fact"}]}, r"\$\.items\[0\]", "'text' is a required property"),
        ({"items": [], "note": 1}, r"\$\.note", "is not of type 'null'"),
    ],
)
def test_issue11_parse_schema_mismatch_names_path_and_reason(
    value: dict[str, Any], where: str, why: str
) -> None:
    with pytest.raises(LLMResponseError, match=rf"at {where}: .*{why}"):
        validate(value, SCHEMA)


def test_issue11_parse_reports_several_problems() -> None:
    with pytest.raises(LLMResponseError) as caught:
        validate({"fact": []}, SCHEMA)
    message = str(caught.value)
    assert "'items' is a required property" in message and "Additional properties" in message


def test_issue11_parse_json_answer_validates() -> None:
    assert parse_json_answer('ok: {"items": []}', SCHEMA) == {"items": []}
    with pytest.raises(LLMResponseError, match="kind"):
        parse_json_answer('```json\n{"items": [{"text": "t", "kind": 1}]}\n```', SCHEMA)


def test_issue11_parse_invalid_schema_is_the_callers_error() -> None:
    with pytest.raises(InvalidInputError, match="invalid JSON schema"):
        validate({}, {"type": "objekt"})
