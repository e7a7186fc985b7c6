"""Turning any user string into a valid full-text query.

User text never reaches the FTS engine's query syntax: it is split into words, each word is
quoted as a literal, and the words are OR-ed. Quotes, ``NEAR``, ``*``, ``-``, ``:``,
parentheses, emoji or 10 KB of text are all just words (or nothing) to it, so no query can
raise a syntax error.
"""

from __future__ import annotations

import re

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
    yourselves s t d ll m re ve also just will shall may might must
    """.split()
)

MAX_TERMS = 48


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits of any script)."""
    return _WORD.findall(text.lower())


def query_terms(text: str, *, max_terms: int = MAX_TERMS) -> list[str]:
    """Distinct content words of a query, in order; all words if every one is a stopword."""
    tokens = words(text)
    content = [t for t in tokens if t not in STOPWORDS] or tokens
    return list(dict.fromkeys(content))[:max_terms]


def fts_match(text: str, *, max_terms: int = MAX_TERMS) -> str | None:
    """An FTS5 MATCH expression (OR of quoted terms) for any string; None if it has no words."""
    terms = query_terms(text, max_terms=max_terms)
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
