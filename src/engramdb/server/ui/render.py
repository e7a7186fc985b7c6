"""Turning records into what the templates show: session items, diffs, explain rows.

Everything here returns plain data; the templates (Jinja2, autoescaped) escape every string,
so attacker-controlled text (memory content, tags, metadata, session items) is shown as text.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...types import MemoryRecord, MemoryVersion, Triple, parse_datetime

TEMPLATES = __file__.rsplit("/", 1)[0] + "/templates"


def environment() -> Environment:
    """The templates' environment: autoescape on for every template."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["pretty"] = pretty
    env.filters["clip"] = clip
    return env


def when(value: datetime | str | None) -> str:
    """A time (or an API record's RFC 3339 text) as ``YYYY-MM-DD HH:MM:SS UTC`` (empty for
    ``None``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = parse_datetime("time", value).astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def pretty(value: Any) -> str:
    """Any JSON value, indented (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def clip(text: str, limit: int = 400) -> str:
    """At most ``limit`` characters of ``text`` (the memory page shows all of it)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- session items -------------------------------------------------------------------------
def _text_of(content: Any) -> str | None:
    """The text of a Responses-style ``content`` (a string, or parts with ``text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, Mapping) and isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
            else:
                return None  # an image, a file...: shown as JSON
        return "\n".join(texts)
    return None


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        try:
            return pretty(json.loads(value))
        except ValueError:
            return value
    return pretty(value)


def item_view(item: Any) -> dict[str, Any]:
    """How one session item is shown: ``kind`` is ``message`` (by ``role``), ``tool_call``,
    ``tool_output`` (folded) or ``other`` (the item as formatted JSON)."""
    if not isinstance(item, Mapping):
        return {"kind": "other", "json": pretty(item)}
    kind = item.get("type")
    role = item.get("role")
    if isinstance(role, str) and kind in (None, "message"):
        text = _text_of(item.get("content"))
        if text is not None:
            return {"kind": "message", "role": role, "text": text}
    if kind in ("function_call", "custom_tool_call", "mcp_call", "computer_call"):
        name = item.get("name") or item.get("server_label") or kind
        args = item.get("arguments", item.get("input", item.get("action")))
        return {
            "kind": "tool_call",
            "name": str(name),
            "call_id": str(item.get("call_id") or item.get("id") or ""),
            "arguments": _arguments(args),
            "json": pretty(item),
        }
    if kind in ("function_call_output", "custom_tool_call_output", "computer_call_output"):
        output = item.get("output")
        return {
            "kind": "tool_output",
            "call_id": str(item.get("call_id") or ""),
            "output": output if isinstance(output, str) else pretty(output),
            "json": pretty(item),
        }
    return {"kind": "other", "type": str(kind or "item"), "json": pretty(item)}


# -- memories ------------------------------------------------------------------------------
_WORDS = re.compile(r"\s+|[^\s]+")


def diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level changes from ``old`` to ``new`` as ``(op, text)``: ``=``, ``-``, ``+``."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
    return out


def versions(current: MemoryRecord, history: list[MemoryVersion]) -> list[dict[str, Any]]:
    """Each prior version with the change that replaced it, newest change first."""
    if not history:
        return []
    out = []
    nexts: list[tuple[str, tuple[str, ...], float]] = [
        (v.content, v.tags, v.importance) for v in history[1:]
    ] + [(current.content, current.tags, current.importance)]
    for v, (content, tags, importance) in zip(history, nexts, strict=True):
        out.append(
            {
                "version": v.version,
                "replaced_at": v.replaced_at,
                "content": v.content,
                "diff": diff(v.content, content),
                "tags_before": v.tags,
                "tags_after": tags,
                "importance_before": v.importance,
                "importance_after": importance,
                "metadata": v.metadata,
            }
        )
    return list(reversed(out))


def explain_rows(explain: Mapping[str, Any] | None) -> dict[str, Any]:
    """A hit's explain as lane rows (rank, score, contribution) and boosts."""
    if not explain:
        return {"lanes": [], "boosts": []}
    lanes = [
        {
            "lane": str(name),
            "rank": lane.get("rank"),
            "score": lane.get("score"),
            "contribution": lane.get("contribution"),
        }
        for name, lane in sorted((explain.get("lanes") or {}).items())
        if isinstance(lane, Mapping)
    ]
    boosts = [
        {"name": str(name), "value": value}
        for name, value in sorted((explain.get("boosts") or {}).items())
    ]
    return {"lanes": lanes, "boosts": boosts}


# -- knowledge -----------------------------------------------------------------------------
def timeline(facts: list[Triple], as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Facts by predicate, newest first, each with its validity interval and whether it was
    superseded (``valid_to`` set; with ``as_of``, ended by then)."""
    rows = sorted(facts, key=lambda f: (f.subject, f.predicate, f.valid_from), reverse=True)
    return [
        {
            "fact": f,
            "superseded": f.valid_to is not None and (as_of is None or f.valid_to <= as_of),
            "interval": f"{when(f.valid_from)} → {when(f.valid_to) if f.valid_to else 'now'}",
        }
        for f in rows
    ]
