"""The recall pipeline: plan → lanes → fuse → boosts → hits (with an explanation if asked).

:class:`Retriever` is what :meth:`engramdb.Memory.recall` runs. It owns every ranking
decision; the store only answers parsed questions (:class:`~engramdb.store.base.TextQuery`
terms, tag lookups, nearest vectors, adjacency) and builds its own queries from them.

- **plan**: validate the query, split ``key:value`` tag tokens from its words, choose the
  text terms (the scope's own user names left out, the commonest words of the namespace
  pruned with its own statistics) and the candidate pool.
- **lanes**: full text (BM25), exact tags, vectors — each a ranked candidate list, filtered
  inside the store's query.
- **fuse**: one score per candidate (:func:`~engramdb.search.fusion.fuse`).
- **boosts**: neighbours in a session, the one speaker the query names, recency, importance.
- **hits**: records for the best ``limit`` only; lane details only when ``explain`` is asked.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from datetime import datetime
from functools import lru_cache, partial
from itertools import groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInputError, PayloadTooLargeError
from ..filters import MAX_TAG_LENGTH, Filter, normalize_tags
from ..store.base import Adjacency, TextQuery, VectorHit
from ..types import Hit, MemoryRecord, now_us, us_from_datetime
from ..validation import MAX_LIMIT, check_limit, check_min_score, check_text
from .fusion import (
    Fused,
    Fusion,
    Lane,
    add_lane,
    apply_boosts,
    boost_speaker,
    diversify,
    fuse,
    neighbor_lane,
)
from .query import (
    MAX_DOC_SHARE,
    POSTINGS_BUDGET,
    prune_terms,
    query_terms,
    split_tag_tokens,
    text_query,
    words,
)
from .temporal import TimeIntent, resolve

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..store import Store
    from .rerank import Reranker
    from .vectors import VectorIndex

log = logging.getLogger("engramdb")

LANE_THREADS = 32
"""Vector lanes running at once beside their recalls' other lanes (more wait their turn)."""

Mode = Literal["hybrid", "text", "vector"]
TimeMode = Literal["boost", "filter", "off"]
FilterInput = Filter | Mapping[str, Any] | None


@dataclass(frozen=True)
class RecallSettings:
    """How recall ranks. The defaults are the ones the LoCoMo benchmark confirmed."""

    fusion: Fusion = "score"
    """``score``: add normalised lane scores; ``rrf``: reciprocal rank fusion."""
    text_weight: float = 1.0
    vector_weight: float = 1.0
    tag_weight: float = 1.0
    rrf_k: float = 60.0
    candidates: int = 200
    """Candidates each lane contributes (at least ``limit``). LoCoMo hybrid R@5 / R@10: 0.718
    / 0.803 at 200, 0.721 / 0.803 at 1,000 (five times the fusion work), R@10 0.772 at 100."""
    boost_depth: int = 200
    """How many of the best fused candidates get the neighbour and speaker boosts."""
    text_budget: int = POSTINGS_BUDGET
    """Most documents the text lane may score; the commonest query terms are dropped beyond."""
    neighbor_weight: float = 0.0
    """Weight of the neighbour lane: a memory next to a candidate in its session scores
    ``w * s(best neighbour) / s(best candidate)`` (0, the default, turns the lane off).
    LoCoMo hybrid R@5 / R@10 0.730 / 0.814 at 0, 0.733 / 0.817 at 0.2, 0.735 / 0.817 at 0.5;
    one memory per document 0.821 / 0.906, 0.816 / 0.901, 0.810 / 0.895 — and the top 5
    crowds into fewer sessions as it grows. The neighbours' *text* is indexed with each
    memory (``Memory(index_neighbors=True)``, the default), which is what lifts LoCoMo."""
    session_decay: float = 0.0
    """Diversity: while the top is built, each memory already picked from a session
    multiplies the scores of that session's other candidates by ``1 - session_decay``
    (0: off, the default). Memories without a session are never penalised. LoCoMo, whose
    evidence often spans turns of one session, loses R@10 0.799 -> 0.770 at 0.1 (distinct
    sessions in the top 5: 2.9 -> 3.6); corpora with one session per document are unchanged."""
    session_cap: int | None = None
    """Diversity: at most this many memories of one session before every other candidate
    (``None``: no cap)."""
    window_weight: float = 0.3
    """Share of the vector score taken from the memory's session window (its vector summed
    with its two neighbours' on each side) rather than from the memory alone."""
    speaker_weight: float = 0.5
    """When the query names exactly one user of the namespace, their memories score ×(1 + w);
    user names are also left out of the text embedded for the query."""
    recency_weight: float = 0.0
    recency_half_life_days: float = 30.0
    importance_weight: float = 0.0
    time_mode: TimeMode = "boost"
    """What a time the query names (:mod:`engramdb.search.temporal`: "last weekend", "in May
    2023") does: ``boost`` multiplies the scores of memories that happened in the window by
    ``1 + time_weight``; ``filter`` keeps only those (added to the filter's since / until);
    ``off`` reads no time in the query."""
    time_weight: float = 1.0
    """LoCoMo hybrid R@10 (turns / one memory per document): 0.810 / 0.903 at 0.5, 0.814 /
    0.906 at 1.0 (temporal 0.847 -> 0.859), 0.814 / 0.907 at 1.5, 0.812 / 0.907 at 2.0; no
    category loses at 1.0."""
    time_grace_days: float = 7.0
    """Memories up to this many days after the window still get part of the time boost
    (falling linearly to nothing): a memory often records when something was told, which
    can be after it happened."""
    order_weight: float = 0.2
    """When the query asks for the first / the latest ("when did I first …", "most recent"),
    candidates score ×(1 + w·p), ``p`` from 1 for the earliest (latest) to 0 for the other
    end."""
    time_strip: bool = False
    """Take the words that named the window out of the text the lanes search for. Off: on
    LoCoMo keeping them scored higher (R@10 0.816 against 0.812; the questions that name a
    time 0.835 against 0.812) — the memories often say "last weekend" or "in May" too."""
    rerank_depth: int = 20
    """How many of the best fused candidates the reranker (if the memory has one) reorders."""

    def __post_init__(self) -> None:
        if self.fusion not in ("score", "rrf"):
            raise InvalidInputError(f"fusion must be 'score' or 'rrf', got {self.fusion!r}")
        for name in (
            "text_weight",
            "vector_weight",
            "tag_weight",
            "neighbor_weight",
            "window_weight",
            "speaker_weight",
            "recency_weight",
            "importance_weight",
            "time_weight",
            "time_grace_days",
            "order_weight",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int | float):
            raise InvalidInputError(f"rrf_k must be a number > 0, got {self.rrf_k!r}")
        if not self.rrf_k > 0:
            raise InvalidInputError(f"rrf_k must be a number > 0, got {self.rrf_k!r}")
        if (
            isinstance(self.session_decay, bool)
            or not isinstance(self.session_decay, int | float)
            or not 0 <= self.session_decay <= 1
        ):
            raise InvalidInputError(
                f"session_decay must be between 0 and 1, got {self.session_decay!r}"
            )
        if self.time_mode not in ("boost", "filter", "off"):
            raise InvalidInputError(
                f"time_mode must be 'boost', 'filter' or 'off', got {self.time_mode!r}"
            )
        depth = self.rerank_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise InvalidInputError(f"rerank_depth must be an integer >= 0, got {depth!r}")
        cap = self.session_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidInputError(f"session_cap must be an integer >= 1 or None, got {cap!r}")


@dataclass
class RecallPlan:
    """What one recall will run: decided before any lane does."""

    namespace: str
    flt: Filter
    k: int
    mode: Mode
    explain: bool
    settings: RecallSettings
    query: str
    """The query as given (a plain query may equal a tag)."""
    text: str
    """The query without its ``key:value`` tag tokens."""
    query_tags: tuple[str, ...]
    users: list[str] = field(default_factory=list)
    """The namespace's user ids."""
    named: list[str] = field(default_factory=list)
    """The users the query names (when the speaker boost is on)."""
    min_score: float | None = 0.0
    """Hits must score at least this and have a signal (``None``: every candidate)."""
    chunks: dict[int, VectorHit] = field(default_factory=dict)
    """The vector lane's hits by rowid: which chunk of each memory matched (for explain)."""
    time: TimeIntent | None = None
    """The time window / order the query names (relative to ``as_of`` or now), if any."""

    @property
    def pool(self) -> int:
        return max(self.settings.candidates, self.k)


class Retriever:
    """Ranks a namespace's memories for a query over one store (and an optional embedder).

    ``vector_index`` gives the process's in-memory index for stores without native vector
    search (called only when the vector lane runs)."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None,
        vector_index: Callable[[], VectorIndex],
        *,
        max_query_chars: int,
        reranker: Reranker | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.vector_index = vector_index
        self.max_query_chars = max_query_chars
        self.reranker = reranker

    # -- the pipeline ------------------------------------------------------------------
    def recall(
        self,
        namespace: str,
        query: str,
        *,
        filters: FilterInput = None,
        tags: Sequence[str] | None = None,
        limit: int = 10,
        mode: Mode = "hybrid",
        explain: bool = False,
        settings: RecallSettings,
        min_score: float | None = 0.0,
        as_of: datetime | None = None,
    ) -> list[Hit]:
        """See :meth:`engramdb.Memory.recall`."""
        plan = self.plan(
            namespace,
            query,
            filters,
            tags,
            limit,
            mode,
            explain,
            settings,
            as_of,
            min_score=min_score,
        )
        if plan.k == 0:
            return []
        if not plan.text.strip():
            # nothing fuzzy to search for: a pure tag lookup, or nothing at all
            lookup = normalize_tags([*plan.flt.tags, *plan.query_tags])
            return (
                self._tag_lookup(plan, dataclass_replace(plan.flt, tags=lookup)) if lookup else []
            )
        lanes, tag_matches = self.lanes(plan)
        cfg = plan.settings
        fused = fuse(
            lanes,
            method=cfg.fusion,
            rrf_k=cfg.rrf_k,
            explain=plan.explain,
            k=plan.k,
            headroom=self.headroom(plan, tag_matches),
        )
        if plan.explain:
            explain_chunks(fused, plan.chunks)
        if len(fused) > cfg.boost_depth:  # the tail cannot reach the top k, even boosted
            best = heapq.nlargest(
                cfg.boost_depth, fused.values(), key=lambda f: (tag_matches.get(f.key, 0), f.score)
            )
            fused = {f.key: f for f in best}
        fused, records = self.boost(plan, fused)
        if plan.time is not None:
            fused = self.time_boost(plan, fused, records)
        # exact tag matches first (more of the query's tags first), then by score (ties:
        # newest first; keys are distinct, so the reversed sort is the same order)
        ordered = sorted(fused.values(), key=_by_score, reverse=True)
        if tag_matches:
            ordered.sort(key=lambda f: -tag_matches.get(f.key, 0))  # (stable)
        if self.reranker is not None and cfg.rerank_depth > 0:
            ordered = self.rerank(plan, ordered, records)
        ordered = self.diversify(plan, ordered, records, tag_matches)
        return self.hits(plan, ordered, records)

    def plan(
        self,
        namespace: str,
        query: str,
        filters: FilterInput,
        tags: Sequence[str] | None,
        limit: int,
        mode: Mode,
        explain: bool,
        settings: RecallSettings,
        as_of: datetime | None = None,
        *,
        min_score: float | None = 0.0,
    ) -> RecallPlan:
        """Validate the request and decide what runs (raises on bad input)."""
        check_min_score(min_score)
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        if len(query) > self.max_query_chars:
            raise PayloadTooLargeError(
                f"query is {len(query):,} characters; the limit is {self.max_query_chars:,}"
            )
        check_text("query", query)
        k = check_limit(limit) or 0
        if mode not in ("hybrid", "text", "vector"):
            raise InvalidInputError(f"mode must be 'hybrid', 'text' or 'vector', got {mode!r}")
        if mode == "vector" and self.embedder is None:
            raise InvalidInputError("mode='vector' needs an embedder; this Memory has none")
        flt = Filter.parse(filters)
        if tags is not None:
            flt = dataclass_replace(flt, tags=normalize_tags([*flt.tags, *normalize_tags(tags)]))
        query_tags, text = split_tag_tokens(query)
        plan = RecallPlan(namespace, flt, k, mode, explain, settings, query, text, query_tags)
        plan.min_score = min_score
        if settings.time_mode not in ("boost", "filter", "off"):
            raise InvalidInputError(
                f"time_mode must be 'boost', 'filter' or 'off', got {settings.time_mode!r}"
            )
        if k and text.strip() and settings.time_mode != "off":
            self.plan_time(plan, as_of)
        if k and text.strip():
            plan.users = self.store.memory_users(namespace)
            plan.named = named_users(text, plan.users) if settings.speaker_weight else []
        return plan

    def plan_time(self, plan: RecallPlan, as_of: datetime | None) -> None:
        """Read the time the query names (:func:`~engramdb.search.temporal.resolve`, relative
        to ``as_of`` or now); with ``time_mode="filter"`` narrow the filter to its window."""
        intent = resolve(plan.text, as_of)
        if not intent:
            return
        plan.time = intent
        if plan.settings.time_strip and intent.window is not None:
            plan.text = intent.text
        window = intent.window
        if plan.settings.time_mode == "filter" and window is not None:
            flt = plan.flt
            since = max((t for t in (flt.since, window.start) if t is not None), default=None)
            until = min((t for t in (flt.until, window.end) if t is not None), default=None)
            plan.flt = dataclass_replace(flt, since=since, until=until)

    def lanes(self, plan: RecallPlan) -> tuple[list[Lane], dict[int, int]]:
        """Every lane's ranked candidates, and how many of the query's tags each carries."""
        cfg, ns, flt, pool = plan.settings, plan.namespace, plan.flt, plan.pool
        lanes: list[Lane] = []
        tag_matches: dict[int, int] = {}
        search = None
        if plan.mode in ("hybrid", "vector") and self.embedder is not None:
            vector_text = without_names(plan.text, plan.users) if cfg.speaker_weight else plan.text
            search = partial(self.vector_hits, ns, vector_text, flt, pool, cfg.window_weight)
        # a store whose reads wait on a server (not inline) runs the vector lane on another
        # connection meanwhile: the lanes are independent, so a hybrid recall waits for the
        # slower one, not for both in turn. Inside atomic() both stay on this thread (another
        # connection would not see the block's uncommitted writes).
        overlap = plan.mode == "hybrid" and not self.store.inline_reads
        ahead = (
            lane_executor().submit(copy_context().run, search)
            if search is not None and overlap and not self.store.in_atomic()
            else None
        )
        for tag in plan.query_tags:
            for rowid in self.store.memory_tag_search(ns, tag, flt, limit=pool):
                tag_matches[rowid] = tag_matches.get(rowid, 0) + 1
        if plan.mode in ("hybrid", "text"):
            text_lane = self.text_lane(plan)
            if text_lane is not None:
                lanes.append(text_lane)
            plain = plan.query.strip()
            # a query equal to a (plain) tag also finds that tag; a longer one cannot be a tag
            if not plan.query_tags and len(plain) <= MAX_TAG_LENGTH:
                tagged = self.store.memory_tag_search(ns, plain, flt, limit=MAX_LIMIT)
                if tagged:
                    lanes.append(Lane("tag", [(r, 1.0) for r in tagged], cfg.tag_weight))
        if tag_matches:
            ranked_tags = sorted(tag_matches.items(), key=lambda kv: (-kv[1], -kv[0]))
            lanes.append(Lane("tag", [(r, float(n)) for r, n in ranked_tags], cfg.tag_weight))
        if search is not None:
            found, floor = search() if ahead is None else ahead.result()
            if floor is not None and len(found) < pool:
                # fewer candidates than the pool: the namespace (or the filter) is small, and
                # its least similar memory is no floor — min-max over two memories would turn
                # cosines 0.41 and 0.38 into 1 and 0. Scale from 0 instead.
                floor = min(floor, 0.0)
            plan.chunks = {h.rowid: h for h in found}
            ranked = [(h.rowid, h.score) for h in found]
            lanes.append(Lane("vector", ranked, cfg.vector_weight, floor=floor))
        return lanes, tag_matches

    def text_terms(self, plan: RecallPlan) -> list[str]:
        """The words the text lane searches for.

        The scope's own names — the namespace's user ids and the filter's user and agent
        — are left out while other words remain: in a conversation every turn starts with
        its speaker's name, so a name matches (nearly) every row and selects nothing (the
        speaker boost ranks the named user's memories instead). The commonest remaining
        words are pruned with the namespace's own statistics."""
        terms = query_terms(plan.text)
        names = name_words([*plan.users, plan.flt.user_id or "", plan.flt.agent_id or ""])
        content = [t for t in terms if t not in names]
        if content:
            terms = content
        budget = plan.settings.text_budget
        stems = list(dict.fromkeys(text_query(terms).stems))
        documents, doc_counts = self.store.memory_term_docs(plan.namespace, stems, at_most=budget)
        # counts past the budget may be capped there: two such terms cannot be told apart,
        # yet the rarer one is the one to keep. Count those up to the share past which a
        # term is dropped, and compare every count only up to there, so the choice is the
        # same whether a store gave exact or capped counts.
        floor = int(max(MAX_DOC_SHARE * documents, plan.pool))
        past = [s for s in stems if doc_counts.get(s, 0) > budget]
        if len(past) > 1 and floor > budget:
            doc_counts.update(self.store.memory_term_docs(plan.namespace, past, at_most=floor)[1])
        doc_counts = {s: min(n, floor + 1) for s, n in doc_counts.items()}
        return prune_terms(terms, documents, doc_counts, budget=budget, min_docs=plan.pool)

    def text_lane(self, plan: RecallPlan) -> Lane | None:
        terms = self.text_terms(plan)
        if not terms:
            return None
        ranked = self.store.memory_text_search(
            plan.namespace, text_query(terms), plan.flt, limit=plan.pool
        )
        if not ranked:
            # the words without the names found nothing: the names alone may (a query such
            # as "what does Ada like" over memories that only say "Ada: ...")
            full = query_terms(plan.text)
            if full != terms:
                ranked = self.store.memory_text_search(
                    plan.namespace, text_query(full), plan.flt, limit=plan.pool
                )
        return Lane("text", ranked, plan.settings.text_weight)

    def vector_hits(
        self, namespace: str, query: str, flt: Filter, pool: int, window: float
    ) -> tuple[list[VectorHit], float | None]:
        """Nearest memories, each scored by its best chunk (which it names), and the lowest
        similarity scored (for min-max scaling)."""
        import numpy as np

        from ..embed import EmbeddingError

        assert self.embedder is not None
        try:
            vector = self.embedder.embed_query(query)
        except EmbeddingError as exc:
            log.warning("recall without the vector lane: %s", exc)
            return [], None
        if self.store.native_vector_search:
            found = self.store.memory_vector_search(
                namespace,
                np.asarray(vector, dtype=np.float32).tobytes(),
                self.embedder.model,
                flt,
                limit=pool,
            )
            return found, (found[-1].score if found else None)
        allowed = (
            self.store.memory_filter_rowids(namespace, flt, limit=2**62) if flt.scoped else None
        )
        return self.vector_index().search_chunks(
            namespace, vector, pool, allowed=allowed, window=window
        )

    def headroom(self, plan: RecallPlan, tag_matches: Mapping[int, int]) -> float | None:
        """The most the boosts after fusion can multiply a candidate's score by, when that
        bounds which candidates can reach the top k (:func:`~engramdb.search.fusion.fuse`);
        ``None`` when a later step ranks by more than the boosted score: exact tag matches
        first, a neighbour lane adding candidates, an order boost relative to the others,
        diversity or a reranker reaching past the top k."""
        cfg, intent = plan.settings, plan.time
        if (
            tag_matches
            or cfg.neighbor_weight
            or cfg.session_decay
            or cfg.session_cap is not None
            or (self.reranker is not None and cfg.rerank_depth > 0)
            or (intent is not None and intent.order is not None and cfg.order_weight)
        ):
            return None
        most = 1.0 + cfg.recency_weight + cfg.importance_weight  # each signal is at most 1
        if len(plan.named) == 1:
            most *= 1.0 + cfg.speaker_weight
        if intent is not None and intent.window is not None and cfg.time_mode == "boost":
            most *= 1.0 + cfg.time_weight
        return most

    def boost(
        self, plan: RecallPlan, fused: dict[int, Fused]
    ) -> tuple[dict[int, Fused], dict[int, MemoryRecord]]:
        """Neighbour, speaker, recency and importance boosts; the records read for them.
        (:meth:`headroom` bounds what every boost can multiply a score by: a boost added here
        or in :meth:`time_boost` is added there too, or fusion may cut what it would lift.)"""
        cfg, ns = plan.settings, plan.namespace
        speaker = plan.named[0] if len(plan.named) == 1 else None
        if fused and (cfg.neighbor_weight or speaker):
            # one query: each candidate's user, its neighbours and their users (the users
            # alone for the speaker boost: the neighbour lookups cost most of it)
            adjacency = self.store.memory_adjacency(
                ns, list(fused), neighbors=bool(cfg.neighbor_weight)
            )
            if cfg.neighbor_weight:
                lane = neighbor_lane(
                    fused, {key: (a[1], a[2]) for key, a in adjacency.items()}, cfg.neighbor_weight
                )
                add_lane(
                    fused,
                    lane,
                    method=cfg.fusion,
                    rrf_k=cfg.rrf_k,
                    explain=plan.explain,
                    # a neighbour outside the filter must not join the results
                    join=not plan.flt.scoped,
                )
                owners = neighbor_owners(adjacency)
                fused = {key: f for key, f in fused.items() if key in owners}
            else:
                owners = {key: a[0] for key, a in adjacency.items()}
            if speaker:
                boost_speaker(fused, owners, speaker, cfg.speaker_weight)
        records: dict[int, MemoryRecord] = {}
        if cfg.recency_weight or cfg.importance_weight:
            records = self.store.memory_records(ns, list(fused))
            fused = {key: f for key, f in fused.items() if key in records}
            now = now_us()
            ages = {
                key: (now - us_from_datetime(r.occurred_at or r.created_at)) / 86_400e6
                for key, r in records.items()
            }
            apply_boosts(
                fused,
                ages_days=ages,
                importance={key: r.importance for key, r in records.items()},
                recency_weight=cfg.recency_weight,
                recency_half_life_days=cfg.recency_half_life_days,
                importance_weight=cfg.importance_weight,
            )
        return fused, records

    def diversify(
        self,
        plan: RecallPlan,
        ordered: list[Fused],
        records: dict[int, MemoryRecord],
        tag_matches: Mapping[int, int],
    ) -> list[Fused]:
        """Spread the top over sessions (``session_decay`` / ``session_cap``): the best
        ``4 * limit + 20`` candidates are re-ranked by :func:`~engramdb.search.fusion.diversify`
        with their sessions as sources (read with the records the hits need anyway); exact tag
        matches stay first. ``records`` gains the records read."""
        cfg = plan.settings
        if not cfg.session_decay and cfg.session_cap is None:
            return ordered
        head, tail = ordered[: 4 * plan.k + 20], ordered[4 * plan.k + 20 :]
        missing = [f.key for f in head if f.key not in records]
        records.update(self.store.memory_records(plan.namespace, missing))
        sources = {f.key: r.session_id for f in head if (r := records.get(f.key)) is not None}
        out: list[Fused] = []
        for _, group in groupby(head, key=lambda f: tag_matches.get(f.key, 0)):
            out += diversify(list(group), sources, decay=cfg.session_decay, cap=cfg.session_cap)
        return out + tail

    def time_boost(
        self, plan: RecallPlan, fused: dict[int, Fused], records: dict[int, MemoryRecord]
    ) -> dict[int, Fused]:
        """Scores ×(1 + ``time_weight``) inside the query's window (``time_mode="boost"``),
        and ×(1 + ``order_weight``·p) by time for "first" / "latest" questions (read with
        the candidates' times, or from ``records`` for those read already)."""
        cfg, intent = plan.settings, plan.time
        assert intent is not None
        window = intent.window if cfg.time_mode == "boost" else None
        weigh_window = window is not None and cfg.time_weight != 0
        weigh_order = intent.order is not None and cfg.order_weight != 0
        if not fused or not (weigh_window or weigh_order):
            return fused
        # the times alone: a whole record for every candidate cost more than the rest of
        # the recall (the hits read theirs afterwards)
        when = {key: r.occurred_at or r.created_at for key, r in records.items() if key in fused}
        when |= self.store.memory_times(plan.namespace, [key for key in fused if key not in when])
        fused = {key: f for key, f in fused.items() if key in when}
        if weigh_window:
            assert window is not None
            grace = cfg.time_grace_days * 86_400.0
            for key, item in fused.items():
                share = 1.0 if window.contains(when[key]) else 0.0
                if not share and grace > 0 and window.end is not None and when[key] >= window.end:
                    after = (when[key] - window.end).total_seconds()
                    share = max(0.0, 1.0 - after / grace)
                    if window.start is not None and when[key] < window.start:
                        share = 0.0
                if share:
                    item.boosts["time"] = item.score * cfg.time_weight * share
                    item.score *= 1 + cfg.time_weight * share
        if weigh_order and len(fused) > 1:
            by_time = sorted(fused, key=lambda key: (when[key], key))
            if intent.order == "desc":
                by_time.reverse()
            last = len(by_time) - 1
            for position, key in enumerate(by_time):
                item = fused[key]
                bump = item.score * cfg.order_weight * (last - position) / last
                item.boosts["order"] = bump
                item.score += bump
        return fused

    def rerank(
        self, plan: RecallPlan, ordered: Sequence[Fused], records: dict[int, MemoryRecord]
    ) -> list[Fused]:
        """The best ``rerank_depth`` candidates reordered by the reranker's scores; they keep
        the fused scores of their places, so scores still fall down the list (``explain``
        shows each one's ``rerank`` score). A reranker that fails leaves the order as it was
        (logged)."""
        from .rerank import RerankError

        assert self.reranker is not None
        depth = plan.settings.rerank_depth
        top, rest = list(ordered[:depth]), list(ordered[depth:])
        missing = [f.key for f in top if f.key not in records]
        records.update(self.store.memory_records(plan.namespace, missing))
        top = [f for f in top if f.key in records]
        if len(top) < 2:
            return [*top, *rest]
        try:
            scores = self.reranker.rerank(plan.text, [records[f.key].content for f in top])
        except RerankError as exc:
            log.warning("recall without reranking: %s", exc)
            return [*top, *rest]
        places = [f.score for f in top]
        reordered = sorted(
            zip(top, scores, strict=True), key=lambda pair: (-pair[1], -pair[0].score)
        )
        for (item, score), place in zip(reordered, places, strict=True):
            item.boosts["rerank"] = score
            item.score = place
        return [item for item, _ in reordered] + rest

    def hits(
        self,
        plan: RecallPlan,
        ordered: Sequence[Fused],
        records: dict[int, MemoryRecord] | None = None,
    ) -> list[Hit]:
        """The first ``k`` candidates as hits: those scoring at least ``plan.min_score`` that
        have a signal (a lane matched them, or a boost gave them a score); with ``min_score``
        ``None``, every candidate. A candidate deleted meanwhile is skipped. The explanation
        is built here, for the returned hits only, and only when asked."""
        k = plan.k
        if plan.min_score is not None:
            floor = plan.min_score
            ordered = [f for f in ordered if f.score >= floor and (f.matched or f.score > 0)]
        records = {} if records is None else records
        hits: list[Hit] = []
        # records for as many of the best as hits are missing (one read unless some were
        # deleted meanwhile)
        at = 0
        while len(hits) < k and at < len(ordered):
            window = ordered[at : at + k - len(hits)]
            at += len(window)
            missing = [f.key for f in window if f.key not in records]
            records.update(self.store.memory_records(plan.namespace, missing))
            hits += [
                Hit(records[f.key], f.score, self.explain(plan, f) if plan.explain else None)
                for f in window
                if f.key in records
            ]
        return hits

    @staticmethod
    def explain(plan: RecallPlan, fused: Fused) -> dict[str, Any]:
        """One hit's explanation: lanes and boosts, and the time window the query named."""
        out = fused.explain()
        if plan.time is not None:
            out["time"] = plan.time.explain() | {"applied": plan.settings.time_mode}
        return out

    def _tag_lookup(self, plan: RecallPlan, flt: Filter) -> list[Hit]:
        """Exactly the memories carrying every tag of ``flt`` (and matching the rest of it),
        newest first: no fuzzy lane can add anything."""
        rowids = self.store.memory_tag_search(plan.namespace, flt.tags[0], flt, limit=plan.k)
        fused = fuse([Lane("tag", [(r, 1.0) for r in rowids])], explain=plan.explain)
        return self.hits(plan, [fused[r] for r in rowids])


# -- helpers -------------------------------------------------------------------------------

_by_score = attrgetter("score", "key")


_LANES: tuple[int, ThreadPoolExecutor] | None = None
_LANES_LOCK = threading.Lock()


def lane_executor() -> ThreadPoolExecutor:
    """The threads that run a recall's vector lane beside its other lanes (stores without
    ``inline_reads``); a forked child gets its own (its parent's threads are not in it)."""
    global _LANES
    pid = os.getpid()
    if _LANES is None or _LANES[0] != pid:
        with _LANES_LOCK:
            if _LANES is None or _LANES[0] != pid:
                _LANES = (pid, ThreadPoolExecutor(LANE_THREADS, thread_name_prefix="engramdb-lane"))
    return _LANES[1]


def explain_chunks(fused: Mapping[int, Fused], chunks: Mapping[int, VectorHit]) -> None:
    """Add to each candidate's vector lane detail which chunk of it matched: its number and
    its ``[chunk_start, chunk_end)`` character span in the content."""
    for key, hit in chunks.items():
        item = fused.get(key)
        detail = item.lanes.get("vector") if item is not None else None
        if detail is not None:
            detail.update(chunk=hit.chunk, chunk_start=hit.start, chunk_end=hit.end)


def neighbor_owners(adjacency: Mapping[int, Adjacency]) -> dict[int, str | None]:
    """The user of every candidate and of each candidate's neighbours, from one
    :meth:`~engramdb.store.base.Store.memory_adjacency` answer."""
    owners: dict[int, str | None] = {}
    for key, (user, prev, nxt, prev_user, next_user) in adjacency.items():
        owners[key] = user
        if prev is not None:
            owners.setdefault(prev, prev_user)
        if nxt is not None:
            owners.setdefault(nxt, next_user)
    return owners


@lru_cache(maxsize=256)
def _words_of(names: tuple[str, ...]) -> tuple[list[str], ...]:
    """The words of each name: a namespace's users are split once, not at every recall."""
    return tuple(words(name) for name in names)


def name_words(names: Sequence[str]) -> set[str]:
    """Every word of the given names (lower case)."""
    return {w for split in _words_of(tuple(names)) for w in split}


def named_users(query: str, users: Sequence[str]) -> list[str]:
    """Users of the namespace the query names (by full id or first name, any case)."""
    if not users:
        return []
    said = set(words(query))
    lowered = query.lower()
    return [
        u
        for u, w in zip(users, _words_of(tuple(users)), strict=True)
        if w and (w[0] in said or " ".join(w) in lowered)
    ]


def without_names(query: str, users: Sequence[str]) -> str:
    """The query with user names (and a possessive 's) removed: in a conversation between a
    few people, their names match a large share of memories and blur the embedding."""
    names = {w[0] for u in users if (w := words(u))}
    if not names:
        return query
    pattern = r"\b(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")(?:['’]s)?\b"
    stripped = " ".join(re.sub(pattern, " ", query, flags=re.IGNORECASE).split())
    return stripped or query


__all__ = [
    "MAX_LIMIT",
    "Mode",
    "RecallPlan",
    "RecallSettings",
    "Retriever",
    "TextQuery",
    "TimeMode",
]
