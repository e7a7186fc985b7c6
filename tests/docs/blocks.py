"""Fenced code blocks of the documentation, and how each one is checked.

The conventions (also in docs/contributing.md):

- A block's info string is its language (```` ```python ````). Flags go in an HTML comment
  on the line before the fence, hidden when the page is rendered: ``<!-- docs: skip -->``,
  ``<!-- docs: server -->``.
- ```` ```python ```` blocks of one file run in order, sharing one namespace, in a fresh
  temporary working directory. Top-level ``await`` is allowed.
- Shell blocks (``bash``, ``sh``, ``shell``, ``console``) run line by line in the same
  directory (``engramdb`` commands through Typer's ``CliRunner``, in process; a command
  substitution through ``bash``). Every command must be an ``engramdb`` command or a variable
  assignment (``export NAME=value``, ``ID=$(engramdb ...)``; a leading ``$ `` is dropped);
  anything else needs ``skip``.
- ``json`` and ``toml`` blocks must parse.
- A block followed directly by an ```` ```output ```` block must print exactly that output
  (trailing spaces ignored; ``...`` matches any text, within a line or across lines).
- ``skip``: shown, never run (installation lines, docker, an external service).
  ``server``: runs against a live test server: ``http://127.0.0.1:8765`` (the server's
  default address) in the block is replaced by its URL, and a key of a fresh namespace (one
  per file) is ``$KEY`` in the environment and ``KEY`` / ``api_key`` in Python.
  ``postgres``: ``postgresql://engram:secret@db.internal:5432/engram`` in the block is replaced
  by the URL of a fresh, empty schema of the test run's embedded PostgreSQL.
- Blocks of any other language (``text``, ``output``, ...) are not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PYTHON = frozenset({"python", "py", "pycon"})
SHELL = frozenset({"bash", "sh", "shell", "console"})
PARSED = frozenset({"json", "toml"})
FLAGS = frozenset({"skip", "server", "postgres"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


class DocsSyntaxError(ValueError):
    """A block the docs test cannot understand (an unknown flag, an unclosed fence)."""


@dataclass
class Block:
    """One fenced block: where it is, its language and flags, its text and the output a
    following ```` ```output ```` block shows (``None`` when there is none)."""

    path: str
    line: int  # 1-based line of the opening fence
    lang: str
    flags: frozenset[str]
    code: str
    output: str | None = None
    output_line: int | None = None
    end_line: int = 0  # 0-based index of the line after the closing fence

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        """Whether the docs test executes (or parses) this block."""
        return "skip" not in self.flags and self.lang in PYTHON | SHELL | PARSED


def parse_blocks(text: str, path: str) -> list[Block]:
    """Every fenced block of a markdown text, in order (fences nested in a longer fence are
    part of its text). Raises :class:`DocsSyntaxError` for an unknown flag or an unclosed
    fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        words = m["info"].split()
        lang = words[0].lower() if words else ""
        flags = _flags(lines, i)
        start = i
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if (
                stripped
                and set(stripped) == {fence[0]}
                and len(stripped) >= len(fence)
                and line.startswith(indent)
            ):
                closed = True
                i += 1
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if not closed:
            raise DocsSyntaxError(f"{path}:{start + 1}: the fence {fence!r} is never closed")
        unknown = flags - FLAGS
        if unknown:
            raise DocsSyntaxError(
                f"{path}:{start + 1}: unknown flag(s) {sorted(unknown)} (known: {sorted(FLAGS)})"
            )
        code = "\n".join(body) + ("\n" if body else "")
        block = Block(path, start + 1, lang, flags, code, end_line=i)
        if lang == "output":
            previous = blocks[-1] if blocks else None
            if previous is None or previous.output is not None or previous.lang == "output":
                raise DocsSyntaxError(f"{path}:{start + 1}: an output block must follow a block")
            if not _only_blank_between(lines, previous.end_line, start):
                raise DocsSyntaxError(
                    f"{path}:{start + 1}: an output block must follow its code block directly"
                )
            previous.output = code
            previous.output_line = start + 1
        blocks.append(block)
    return blocks


_DIRECTIVE = re.compile(
    r"^\s*<!--\s*docs:\s*(?P<flags>[a-z][a-z ,]*?)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$"
)


def _flags(lines: list[str], fence_index: int) -> frozenset[str]:
    """The flags of the ``<!-- docs: skip (why) -->`` comment on the nearest non-blank line
    before a fence (hidden when the page is rendered, so the info string stays the plain
    language); the reason in parentheses is for readers of the source."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not re.match(r"^\s*<!--\s*docs:", lines[j]):
        return frozenset()
    m = _DIRECTIVE.match(lines[j])
    if not m:
        raise DocsSyntaxError(
            f"line {j + 1}: write `<!-- docs: skip (why) -->`, got {lines[j].strip()!r}"
        )
    return frozenset(f for f in re.split(r"[\s,]+", m["flags"]) if f)


def _only_blank_between(lines: list[str], end: int, start: int) -> bool:
    """Whether lines[end:start] (0-based, between a block's closing fence and the next
    opening fence) hold nothing but blank lines."""
    return all(not line.strip() for line in lines[end:start])


def doc_files(root: Path) -> list[Path]:
    """README.md and every markdown file under docs/, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block, one per logical line (``\\`` continuations joined,
    comments and blank lines dropped). Raises :class:`DocsSyntaxError` naming the first line
    that is neither an ``engramdb`` command nor a variable assignment (such a block needs
    ``<!-- docs: skip -->``)."""
    logical: list[tuple[int, str]] = []
    pending = ""
    first = 0
    for n, raw in enumerate(block.code.splitlines()):
        line = raw.rstrip()
        if not pending:
            first = n
            if line.startswith("$ "):
                line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((first, pending + line))
        pending = ""
    commands: list[str] = []
    for n, line in logical:
        command = line.strip()
        if not command or command.startswith("#"):
            continue
        if not re.match(r"^(engramdb(\s|$)|(export\s+)?[A-Za-z_][A-Za-z0-9_]*=)", command):
            raise DocsSyntaxError(
                f"{block.path}:{block.line + 1 + n}: {command.split()[0]!r} is not an engramdb "
                "command: run it elsewhere or mark the block <!-- docs: skip -->"
            )
        commands.append(command)
    return commands


def output_matches(expected: str, actual: str) -> bool:
    """Whether printed output matches the shown output: lines compared without trailing
    spaces, surrounding blank lines ignored, ``...`` matching any text."""

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip("\n")

    pattern = ".*?".join(re.escape(part) for part in norm(expected).split("..."))
    return re.fullmatch(pattern, norm(actual), flags=re.DOTALL) is not None
