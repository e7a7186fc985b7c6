"""Session items rendered as a compact, numbered transcript for an extraction prompt.

Items are what sessions store: Responses-style input items (messages with string or
content-part bodies, ``function_call`` / ``function_call_output`` and other ``*_call`` items,
reasoning items) and plain chat messages (``{"role", "content"}``). Each rendered line starts
with ``[#SEQ TIMESTAMP]`` so the model can cite its source and resolve relative dates against
the moment the line was said; continuation lines are indented, so a text can never fake the
start of another item.

Tool traffic follows a rule: ``"drop"`` leaves it out, ``"summarize"`` (the default) keeps the
tool name and a truncated view of the arguments / output, ``"keep"`` keeps it whole.

Token counts are *estimates*: ``ceil(characters / 4)``, the usual rule of thumb for English
text with BPE tokenizers. They are used only to keep prompts within a budget.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from ..errors import InvalidInputError

ToolRule = Literal["drop", "summarize", "keep"]
Redactor = Callable[[str], str]
"""Turns a text into the same text with secrets masked (``engramdb.redact.redact``)."""

DEFAULT_TOOL_CHARS = 200
"""How many characters of a tool call's arguments or output ``"summarize"`` keeps."""

CHARS_PER_TOKEN = 4


def identity(text: str) -> str:
    """The redactor that changes nothing (the default until one is configured)."""
    return text


def estimate_tokens(text: str) -> int:
    """An estimate of how many tokens ``text`` is: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class SessionItem(NamedTuple):
    """One stored session item with its sequence number and the time it was added."""

    seq: int
    created_at: datetime
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Transcript:
    """A rendered window: its text (one or more lines per item), the sequence numbers it
    shows, and its estimated size in tokens."""

    text: str
    seqs: tuple[int, ...]
    tokens: int


def as_session_items(items: Iterable[Sequence[Any]]) -> list[SessionItem]:
    """Check and normalise ``(seq, created_at, item)`` tuples; raises
    :class:`~engramdb.errors.InvalidInputError` for anything else."""
    out: list[SessionItem] = []
    for entry in items:
        if not isinstance(entry, Sequence) or len(entry) != 3:
            raise InvalidInputError("each item must be a (seq, created_at, item) tuple")
        seq, created_at, item = entry
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise InvalidInputError(f"an item's seq must be an integer, got {seq!r}")
        if not isinstance(created_at, datetime):
            raise InvalidInputError(f"item #{seq}: created_at must be a datetime")
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"item #{seq} must be a JSON object")
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        out.append(SessionItem(seq, created_at, item))
    return out


def format_time(value: datetime) -> str:
    """``2026-05-03T14:02Z``: minute precision, UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def fence(text: str, label: str) -> str:
    """``text`` inside a Markdown code fence labelled ``label``; the fence is longer than any
    run of backticks in ``text``, so nothing inside can close it early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{label}\n{text}\n{marks}"


_MARKER_CHARS = 32  # room for "… [N more chars]" and continuation indents


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f"… [{len(text) - limit} more chars]"


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _parts_text(content: Any) -> str:
    """The text of a message body: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else _json_text(content)
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if isinstance(part.get("text"), str):  # input_text, output_text, text
                texts.append(part["text"])
            elif isinstance(part.get("refusal"), str):
                texts.append(f"(refused) {part['refusal']}")
            elif kind in ("input_image", "image_url", "image"):
                texts.append("[image]")
            elif kind in ("input_file", "file"):
                texts.append(f"[file {part.get('filename') or ''}]".replace(" ]", "]"))
            elif kind in ("input_audio", "audio"):
                texts.append("[audio]")
    return "\n".join(t for t in texts if t)


def _tool_line(head: str, body: str, tools: ToolRule, tool_chars: int) -> str:
    body = " ".join(body.split()) if tools == "summarize" else body
    if tools == "summarize":
        body = _truncate(body, tool_chars)
    return f"{head} {body}".rstrip()


def render_item(
    item: Mapping[str, Any],
    *,
    tools: ToolRule = "summarize",
    tool_chars: int = DEFAULT_TOOL_CHARS,
    call_names: Mapping[str, str] | None = None,
) -> str | None:
    """The speaker and text of one item (``"user: ..."``), or ``None`` when the item shows
    nothing: reasoning items (the model's private notes), tool items under ``tools="drop"``,
    and messages without text."""
    kind = item.get("type")
    if kind == "reasoning":
        return None
    if kind is None or kind == "message" or ("role" in item and not str(kind).endswith("_call")):
        return _message(item, tools, tool_chars, call_names or {})
    kind = str(kind)
    if tools == "drop" and (kind.endswith("_call") or kind.endswith("_call_output")):
        return None
    if kind.endswith("_call_output"):
        call_id = item.get("call_id")
        name = (call_names or {}).get(call_id) if isinstance(call_id, str) else None
        head = f"tool result ({name}):" if name else "tool result:"
        return _tool_line(head, _json_text(item.get("output", "")), tools, tool_chars)
    if kind.endswith("_call"):
        if kind == "function_call":
            name = str(item.get("name") or "function")
            args = _json_text(item.get("arguments", ""))
        else:  # web_search_call, file_search_call, computer_call, ...
            name = kind.removesuffix("_call")
            shown = {k: v for k, v in item.items() if k not in ("type", "id", "call_id", "status")}
            args = _json_text(shown) if shown else ""
        return _tool_line(f"tool call {name}:", args, tools, tool_chars)
    text = _parts_text(item.get("content")).strip()
    return f"{kind}: {text}" if text else None


def _message(
    item: Mapping[str, Any], tools: ToolRule, tool_chars: int, call_names: Mapping[str, str]
) -> str | None:
    """A chat message. Chat-completions tool traffic follows the tool rule too: a ``tool`` (or
    ``function``) role message is a tool result, an assistant's ``tool_calls`` are tool calls
    (shown on continuation lines after its text)."""
    role = item.get("role")
    text = _parts_text(item.get("content")).strip()
    if role in ("tool", "function"):
        if tools == "drop":
            return None
        call_id = item.get("tool_call_id")
        name = item.get("name") or (call_names.get(call_id) if isinstance(call_id, str) else None)
        head = f"tool result ({name}):" if name else "tool result:"
        return _tool_line(head, text, tools, tool_chars)
    lines = [text] if text else []
    calls = item.get("tool_calls")
    if tools != "drop" and isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                name = str(function.get("name") or "function")
                args = _json_text(function.get("arguments", ""))
                lines.append(_tool_line(f"tool call {name}:", args, tools, tool_chars))
    if not lines:
        return None
    speaker = role if isinstance(role, str) and role else "unknown"
    return f"{speaker}: " + "\n".join(lines)


def _call_names(items: Iterable[SessionItem]) -> dict[str, str]:
    """Tool names by call id (Responses ``function_call`` items and chat ``tool_calls``)."""
    names: dict[str, str] = {}
    for entry in items:
        call_id, name = entry.item.get("call_id"), entry.item.get("name")
        if entry.item.get("type") == "function_call" and isinstance(call_id, str):
            names[call_id] = str(name or "function")
        calls = entry.item.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                function = call.get("function")
                fname = function.get("name") if isinstance(function, Mapping) else None
                names[call["id"]] = str(fname or "function")
    return names


def render_line(
    entry: SessionItem,
    *,
    tools: ToolRule = "summarize",
    tool_chars: int = DEFAULT_TOOL_CHARS,
    redact: Redactor = identity,
    call_names: Mapping[str, str] | None = None,
    max_chars: int | None = None,
) -> str | None:
    """One transcript entry: ``[#SEQ TIMESTAMP] speaker: text``, continuation lines indented
    by two spaces, redacted, and cut to ``max_chars`` when given."""
    body = render_item(entry.item, tools=tools, tool_chars=tool_chars, call_names=call_names)
    if body is None:
        return None
    body = redact(body)
    head = f"[#{entry.seq} {format_time(entry.created_at)}] "
    if max_chars is not None:  # the whole line, marker included, stays within max_chars
        body = _truncate(body, max(20, max_chars - len(head) - _MARKER_CHARS))
    lines = [line.rstrip() for line in body.splitlines()] or [""]
    return head + "\n".join([lines[0], *("  " + line for line in lines[1:] if line.strip())])


def render_transcript(
    items: Iterable[Sequence[Any]],
    *,
    tools: ToolRule = "summarize",
    tool_chars: int = DEFAULT_TOOL_CHARS,
    redact: Redactor = identity,
    max_item_tokens: int | None = None,
) -> Transcript:
    """The transcript of ``items`` (``(seq, created_at, item)`` tuples), oldest first.

    Every line is passed through ``redact`` before it can reach a prompt; an item longer than
    ``max_item_tokens`` is cut (its head kept, the cut marked)."""
    _check_tools(tools)
    entries = as_session_items(items)
    names = _call_names(entries)
    max_chars = None if max_item_tokens is None else max_item_tokens * CHARS_PER_TOKEN
    lines: list[str] = []
    seqs: list[int] = []
    for entry in entries:
        line = render_line(
            entry,
            tools=tools,
            tool_chars=tool_chars,
            redact=redact,
            call_names=names,
            max_chars=max_chars,
        )
        if line is not None:
            lines.append(line)
            seqs.append(entry.seq)
    text = "\n".join(lines)
    return Transcript(text, tuple(seqs), estimate_tokens(text))


def split_windows(
    items: Iterable[Sequence[Any]],
    *,
    max_window_tokens: int,
    tools: ToolRule = "summarize",
    tool_chars: int = DEFAULT_TOOL_CHARS,
) -> list[list[SessionItem]]:
    """Consecutive windows of ``items`` whose transcripts each fit ``max_window_tokens``
    (estimated). Order is kept and no item is split or lost; an item that alone exceeds the
    budget gets a window of its own (and is cut when rendered with ``max_item_tokens``).
    Items that render to nothing ride along with their neighbours."""
    _check_tools(tools)
    if max_window_tokens < 1:
        raise InvalidInputError("max_window_tokens must be at least 1")
    entries = as_session_items(items)
    names = _call_names(entries)
    windows: list[list[SessionItem]] = []
    current: list[SessionItem] = []
    used = 0
    for entry in entries:
        line = render_line(entry, tools=tools, tool_chars=tool_chars, call_names=names)
        cost = 0 if line is None else estimate_tokens(line + "\n")
        if current and cost and used + cost > max_window_tokens:
            windows.append(current)
            current, used = [], 0
        current.append(entry)
        used += cost
    if current:
        windows.append(current)
    return windows


def _check_tools(tools: object) -> None:
    if tools not in ("drop", "summarize", "keep"):
        raise InvalidInputError(f"tools must be 'drop', 'summarize' or 'keep', got {tools!r}")


__all__ = [
    "Redactor",
    "SessionItem",
    "ToolRule",
    "Transcript",
    "as_session_items",
    "estimate_tokens",
    "fence",
    "format_time",
    "identity",
    "render_item",
    "render_line",
    "render_transcript",
    "split_windows",
]
