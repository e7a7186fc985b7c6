"""The full-text query builder."""

from __future__ import annotations

import sqlite3

import pytest

from engramdb.search.query import fts_match, index_stem, index_stems, prune_terms, query_terms


def test_query_terms_drop_stopwords_and_keep_order() -> None:
    assert query_terms("When did Caroline go to the LGBTQ support group?") == [
        "caroline",
        "go",
        "lgbtq",
        "support",
        "group",
    ]
    assert query_terms("what is it") == ["what", "is", "it"]  # only stopwords: keep them
    assert query_terms("🧠 (*) --") == []
    assert len(query_terms("word " * 10_000 + " ".join(f"w{i}" for i in range(100)))) == 48


def test_fts_match_quotes_every_term() -> None:
    assert fts_match(['a"b', "near"]) == '"a""b" OR "near"'
    assert fts_match([]) is None


def test_index_stem_matches_the_sqlite_porter_tokenizer() -> None:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE f USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'row')")
    sample = "painting painted caroline café running happiness went photography relational"
    conn.execute("INSERT INTO f VALUES (?)", (sample,))
    stored = {row[0] for row in conn.execute("SELECT term FROM v")}
    assert {index_stem(w) for w in sample.split()} == stored
    # where a Porter stemmer of our own would differ: short words, "y" endings, long tokens
    tricky = ["us", "is", "apology", "bubbly", "x" * 70]
    assert index_stems(tricky) == ["us", "is", "apolog", "bubbl", "x" * 70]
    assert index_stems([]) == [] and index_stems(["café", "café"]) == ["cafe", "cafe"]


def test_prune_keeps_affordable_queries_whole() -> None:
    counts = {"common": 400, "rare": 3}
    assert prune_terms(["common", "rare"], 1000, counts) == ["common", "rare"]


def test_issue14_prune_drops_terms_in_most_rows_of_the_namespace_even_when_affordable() -> None:
    # a term in 90% of the namespace's rows selects nothing (BM25 weight nil) yet makes every
    # one of them a candidate: dropped while a rarer term remains
    counts = {"common": 900, "rare": 3, "mid": 120}
    assert prune_terms(["common", "rare", "mid"], 1000, counts) == ["rare", "mid"]
    assert prune_terms(["common"], 1000, counts) == ["common"]  # never all of them
    # ... and only where it costs: not while it is in fewer documents than a lane keeps
    assert prune_terms(["common", "rare"], 1000, counts, min_docs=1000) == ["common", "rare"]


def test_prune_drops_costly_common_terms_but_never_all() -> None:
    counts = {"common": 600_000, "mid": 15_000, "rare": 40, "other": 9_000}
    kept = prune_terms(["common", "mid", "rare", "other"], 1_000_000, counts, budget=20_000)
    assert kept == ["rare", "other"]  # in query order; within budget; common ones gone
    assert prune_terms(["common"], 1_000_000, counts) == ["common"]


def test_stemming_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server recalls in a thread pool: concurrent stemming must give the same stems."""
    import sys
    import threading

    from engramdb.search import query
    from engramdb.search.query import index_stem

    monkeypatch.setattr(query, "STEM_CACHE", 0)  # the cache starts again at every call
    stem = index_stem
    words = [
        f"{base}{suffix}"
        for base in ("connect", "relat", "generaliz", "happi")
        for suffix in ("ational", "ations", "ingly", "ness", "ed", "s")
    ] * 20
    expected = [stem(w) for w in words]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append([stem(w) for w in words])
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    assert all(r == expected for r in results)


def test_issue14_fts_document_count_decodes_fts5_averages() -> None:
    from engramdb.store.sqlite.text import live_documents

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(a)")
    assert live_documents(conn, "f") == 0
    have = 0
    for rows in (3, 200, 20_000):  # one-, two- and three-byte varints
        with conn:  # one transaction (FTS5 writes its totals at commit)
            conn.executemany("INSERT INTO f VALUES (?)", [("w",)] * (rows - have))
        have = rows
        assert live_documents(conn, "f") == rows
    with conn:
        conn.execute("DELETE FROM f WHERE rowid % 2 = 0")
    assert live_documents(conn, "f") == 10_000


def test_query_words_split_where_the_index_tokenizer_splits() -> None:
    """A character Python's newer Unicode tables count as a letter and FTS5's as a separator
    (U+19BB) splits a query word as the index split the stored text; a word FTS5 makes no
    token of is dropped; other scripts' words stay whole."""
    from engramdb.search.query import index_words

    assert index_words(["abc", "apple\u19bbpie", "\u19bb", "東京", "café"]) == [
        "abc",
        "apple",
        "pie",
        "東京",
        "café",
    ]
    assert query_terms("Apple\u19bbPie crust") == ["apple", "pie", "crust"]
