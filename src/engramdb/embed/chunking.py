"""Long texts embedded in overlapping chunks: one vector per chunk, each within the model's window.

A model reads a bounded number of tokens (128 for the bundled MiniLM); anything past it was
cut off, so a long memory used to be represented by its opening only. An embedder that knows
its window offers ``chunk_spans(text)``: the ``[start, end)`` character spans of overlapping
windows covering the text (a text that fits is one span, and costs nothing extra). Chunks
start and end on word boundaries and overlap by about :data:`OVERLAP_TOKENS` tokens, so a
sentence cut at one window's end is read whole by the next.

:func:`embed_chunked` embeds every chunk of a batch of texts in one call of the embedder and
returns, per text, its vectors concatenated (float32 bytes, chunk order) with the spans — the
shape the stores keep (see :class:`~engramdb.store.base.NewMemory`). Recall scores a memory
by its best chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .base import Embedder

Span = tuple[int, int]
OVERLAP_TOKENS = 32
"""Tokens shared by consecutive chunks."""
CHARS_PER_TOKEN = 3
"""Characters per token assumed where no tokenizer counts them (English text averages ~4:
3 keeps a chunk under the limit for denser text too)."""

_WORD_START = re.compile(r"\S+")


@runtime_checkable
class Chunking(Protocol):
    """An embedder that embeds long texts in chunks."""

    def chunk_spans(self, text: str) -> list[Span]:
        """Spans of the overlapping chunks covering ``text`` (one span if it fits whole)."""


def token_windows(
    offsets: Sequence[Span], word_ids: Sequence[int | None], window: int, overlap: int
) -> list[Span]:
    """Character spans of overlapping windows of at most ``window`` tokens.

    ``offsets`` are the tokens' character spans and ``word_ids`` the word each belongs to; a
    window starts at a word's first token and ends at a word's last one where it can (a word
    longer than a window is cut)."""
    n = len(offsets)
    if n == 0:
        return [(0, 0)]
    if n <= window:
        return [(offsets[0][0], offsets[-1][1])]
    step = max(1, window - overlap)
    spans: list[Span] = []
    start = 0
    while True:
        end = min(start + window, n)
        last = end
        if end < n:  # end on a word's last token, unless the word fills the window
            while end > start + 1 and _same_word(word_ids, end):
                end -= 1
            last = end
            while last > start + 1 and word_ids[last - 1] is None:
                last -= 1  # (no trailing gap between words)
        spans.append((offsets[start][0], offsets[last - 1][1]))
        if end >= n:
            return spans
        nxt = max(start + 1, min(start + step, end))
        while nxt > start + 1 and _same_word(word_ids, nxt):
            nxt -= 1  # start on a word's first token
        while nxt < end - 1 and word_ids[nxt] is None:
            nxt += 1  # (not on a gap between words)
        start = nxt


def _same_word(word_ids: Sequence[int | None], i: int) -> bool:
    """Whether token ``i`` continues the word of token ``i - 1``."""
    return word_ids[i] is not None and word_ids[i] == word_ids[i - 1]


def char_windows(text: str, window_chars: int, overlap_chars: int) -> list[Span]:
    """Overlapping spans of at most ``window_chars`` characters, cut between words (for
    embedders that count characters, not tokens)."""
    if len(text) <= window_chars:
        return [(0, len(text))]
    words = [(m.start(), m.end()) for m in _WORD_START.finditer(text)]
    if not words:
        return [(0, len(text))]
    offsets = []
    word_ids: list[int | None] = []
    # characters as tokens: a word's characters share its id, so cuts fall between words
    for n, (a, b) in enumerate(words):
        offsets += [(i, i + 1) for i in range(a, b)]
        word_ids += [n] * (b - a)
        if n + 1 < len(words):  # the gap up to the next word belongs to no word
            gap = words[n + 1][0] - b
            offsets += [(i, i + 1) for i in range(b, b + gap)]
            word_ids += [None] * gap
    return token_windows(offsets, word_ids, window_chars, overlap_chars)


def chunk_spans(embedder: Embedder, text: str) -> list[Span]:
    """The chunks ``embedder`` embeds ``text`` in: its own ``chunk_spans`` if it has one,
    else the whole text."""
    if isinstance(embedder, Chunking):
        spans = embedder.chunk_spans(text)
        if spans:
            return spans
    return [(0, len(text))]


def embed_chunked(embedder: Embedder, texts: Sequence[str]) -> list[tuple[bytes, tuple[Span, ...]]]:
    """Per text: its chunks' vectors (float32 bytes, concatenated in chunk order) and their
    spans (empty when the text is one chunk). Every chunk of every text is embedded in one
    ``embed_documents`` call."""
    pieces: list[str] = []
    layout: list[list[Span]] = []
    for text in texts:
        spans = chunk_spans(embedder, text)
        if len(spans) <= 1:
            pieces.append(text)
            layout.append([])
        else:
            pieces += [text[a:b] for a, b in spans]
            layout.append(spans)
    vectors = np.asarray(embedder.embed_documents(pieces), dtype=np.float32)
    out: list[tuple[bytes, tuple[Span, ...]]] = []
    row = 0
    for spans in layout:
        count = max(1, len(spans))
        out.append((vectors[row : row + count].tobytes(), tuple(spans)))
        row += count
    return out


__all__ = [
    "CHARS_PER_TOKEN",
    "OVERLAP_TOKENS",
    "Chunking",
    "Span",
    "char_windows",
    "chunk_spans",
    "embed_chunked",
    "token_windows",
]
