"""Turning any user string into a valid, affordable full-text query.

User text never reaches the FTS engine's query syntax: it is split into words, each word is
quoted as a literal, and the words are OR-ed. Quotes, ``NEAR``, ``*``, ``-``, ``:``,
parentheses, emoji or 10 KB of text are all just words (or nothing) to it, so no query can
raise a syntax error.

Terms found in a large share of the index are dropped before the query runs (see
:func:`prune_terms`): BM25 gives them almost no weight, yet every document containing them
must be scored, which is what makes a naive OR query slow on a million memories.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence

from ..store.base import TextQuery

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Function words and question words: they match nearly every memory and say nothing about
# which one is wanted ("when did she ...", "what is the ...").
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't
    having he he'd he'll he's her here here's hers herself him himself his how how's i i'd
    i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my
    myself no nor not of off on once only or other ought our ours ourselves out over own
    same shan't she she'd she'll she's should shouldn't so some such than that that's the
    their theirs them themselves then there there's these they they'd they'll they're
    they've this those through to too under until up very was wasn't we we'd we'll we're
    we've were weren't what what's when when's where where's which while who who's whom why
    why's with won't would wouldn't you you'd you'll you're you've your yours yourself
    yourselves s t d ll m re ve also just will shall may might must can't cannot ever kind
    type sort likely
    """.split()
)

MAX_TERMS = 48
POSTINGS_BUDGET = 5_000
"""Most documents a text query may have to score, counted from its terms' document counts."""
MAX_DOC_SHARE = 0.5
"""Terms in more than this share of documents get (almost) no BM25 weight: drop them."""


# A tag-like token: ``key:value`` where the key starts with a letter (so "10:30" is not one)
# and the value is not "//..." (so URLs are not either).
_TAG_TOKEN = re.compile(r"[^\W\d_][\w.-]*:(?!//)\S+", re.UNICODE)
MAX_TAG_TOKEN = 128


def split_tag_tokens(query: str) -> tuple[tuple[str, ...], str]:
    """The ``key:value`` tokens of a query (distinct, in order) and the rest of its text.

    Recall treats these tokens as exact tags, never as words: ``session:abc`` must not match
    every memory tagged ``session:<anything>`` through the word ``session``. A query made only
    of such tokens is a tag lookup (memories carrying every one of them, nothing else).
    """
    tags: dict[str, None] = {}
    rest: list[str] = []
    for token in query.split():
        if len(token) <= MAX_TAG_TOKEN and _TAG_TOKEN.fullmatch(token) and _storable(token):
            tags[token] = None
        else:
            rest.append(token)
    return tuple(tags), " ".join(rest)


def _storable(token: str) -> bool:
    if "\x00" in token:
        return False
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits of any script)."""
    return _WORD.findall(text.lower())


def query_terms(text: str, *, max_terms: int = MAX_TERMS) -> list[str]:
    """Distinct content words of a query, in order; all words if every one is a stopword."""
    tokens = index_words(words(text))
    content = [t for t in tokens if t not in STOPWORDS] or tokens
    return list(dict.fromkeys(content))[:max_terms]


def text_query(terms: Sequence[str]) -> TextQuery:
    """The store's parsed form of query words: each word with its index token. Stores build
    their own query from it (no query syntax crosses the store contract)."""
    return TextQuery(tuple(terms), tuple(index_stems(terms)))


def fts_match(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression (OR of quoted literals); None if there are no terms. Only the
    raw-FTS5 baseline of the benchmarks uses it: stores receive :class:`TextQuery`."""
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


STEM_CACHE = 65_536
"""Words whose tokens are kept (past that the cache starts again)."""

_kept_tokens: dict[str, tuple[str, ...]] = {}
_tokenizer_lock = threading.Lock()
_tokenizer: sqlite3.Connection | None = None


def index_stem(term: str) -> str:
    """The token the SQLite full-text index stores for a word: see :func:`index_stems`."""
    return index_stems([term])[0]


def index_stems(terms: Sequence[str]) -> list[str]:
    """The token the SQLite full-text index stores for each word, as FTS5's own tokenizer
    makes it (a Porter stemmer of our own differs from it on short words, "y" endings and
    long tokens: a count looked up under another token than the index's is wrong, and the
    shared table's scores would then depend on other namespaces' rows). A word it splits
    gives its first token; one it drops gives itself."""
    tokens = index_tokens(terms)
    return [tokens[t][0] if tokens[t] else t for t in terms]


def index_tokens(terms: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each word's tokens in the SQLite full-text index (kept in a process-wide cache)."""
    known = {t: v for t in terms if (v := _kept_tokens.get(t)) is not None}
    missing = [t for t in dict.fromkeys(terms) if t not in known]
    if missing:
        fresh = _tokens(missing)
        if len(_kept_tokens) > STEM_CACHE:
            _kept_tokens.clear()
        _kept_tokens.update(fresh)
        known.update(fresh)
    return known


def index_words(found: Sequence[str]) -> list[str]:
    """``found`` split where the full-text index's tokenizer splits words: Python's Unicode
    tables are newer than FTS5's, so a few characters (of recent scripts) are letters here and
    separators there. Such a word, quoted, would be searched as a phrase, whose statistics
    are not one word's; its pieces are searched instead (a piece FTS5 makes no single token
    of is dropped)."""
    if all(w.isascii() for w in found):
        return list(found)
    tokens = index_tokens([w for w in found if not w.isascii()])
    split = [w for w, t in tokens.items() if len(t) > 1]
    chars = index_tokens([c for w in split for c in w if not c.isascii()])
    out: list[str] = []
    for word in found:
        if word.isascii() or len(tokens[word]) == 1:
            out.append(word)
        elif tokens[word]:
            pieces = "".join(c if c.isascii() or chars[c] else " " for c in word).split()
            whole = index_tokens(pieces)
            out += [p for p in pieces if len(whole[p]) == 1]
    return out


def _tokens(terms: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each word's tokens, read back from a private in-memory FTS5 table (written in a
    transaction that is rolled back: nothing is ever stored)."""
    global _tokenizer
    with _tokenizer_lock:
        conn = _tokenizer
        if conn is None:
            from ..store.sqlite.text import TOKENIZE  # (the SQLite store's modules: on use)

            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.execute(f"CREATE VIRTUAL TABLE words USING fts5(word, tokenize='{TOKENIZE}')")
            conn.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, instance)")
            _tokenizer = conn
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(terms))
            rows = conn.execute("SELECT doc, term FROM tokens ORDER BY doc, offset").fetchall()
        finally:
            conn.execute("ROLLBACK")
    found: dict[int, list[str]] = {}
    for doc, token in rows:
        found.setdefault(doc, []).append(token)
    return {term: tuple(found.get(i, ())) for i, term in enumerate(terms)}


def prune_terms(
    terms: Sequence[str],
    documents: int,
    doc_counts: Mapping[str, int],
    *,
    budget: int = POSTINGS_BUDGET,
    max_share: float = MAX_DOC_SHARE,
    min_docs: int = 0,
) -> list[str]:
    """Keep the rarest terms while their documents fit the budget; drop near-zero-weight ones.

    Terms in more than ``max_share`` of the documents — and in more than ``min_docs`` (the
    candidates a lane keeps: below that they cost nothing) — are dropped while a rarer term
    remains (their BM25 weight is nil: they would only add candidates that score nothing). A query
    whose other terms' documents fit the budget then runs unchanged. ``doc_counts`` maps
    :func:`index_stem` of a term to its document count (the namespace's own). The rarest term
    is always kept, so a query with words never loses all of them.
    """
    if not terms or not doc_counts or documents <= 0:
        return list(terms)
    floor = max(max_share * documents, min_docs)
    common = {t for t in terms if doc_counts.get(index_stem(t), 0) > floor}
    if any(doc_counts.get(index_stem(t), 0) > 0 for t in terms if t not in common):
        terms = [t for t in terms if t not in common]
    if sum(doc_counts.get(index_stem(t), 0) for t in terms) <= budget:
        return list(terms)  # affordable as it is: rank exactly
    counted = sorted(terms, key=lambda t: doc_counts.get(index_stem(t), 0))
    kept: list[str] = []
    spent = 0
    for term in counted:
        df = doc_counts.get(index_stem(term), 0)
        if kept and (df > max_share * documents or spent + df > budget):
            continue
        kept.append(term)
        spent += df
    order = {t: i for i, t in enumerate(terms)}
    return sorted(kept, key=order.__getitem__)
