"""Fusing retrieval lanes into one ranking, with boosts and an explanation of each score.

Two fusions: ``score`` (default) adds each lane's normalised score — BM25 divided by the best
BM25 of the query, cosine min-max scaled between the lowest and highest similarity scored —
and ``rrf`` adds ``weight / (k + rank)``. On LoCoMo score fusion beat RRF at every k by 2-5
points of recall@10, because it keeps *how much* better a hit is, not just its rank.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Fusion = Literal["score", "rrf"]


@dataclass
class Lane:
    """One ranked candidate list (best first) with its weight in the fusion.

    ``floor`` is the lowest score the lane considered (for min-max scaling); ``None`` means
    the lane's scores are already on a ratio scale (BM25, tag hits) and are divided by the max.
    """

    name: str
    ranked: Sequence[tuple[int, float]]  # (key, lane score), best first
    weight: float = 1.0
    floor: float | None = None


@dataclass(slots=True)
class Fused:
    key: int
    score: float
    lanes: dict[str, dict[str, float]] = field(default_factory=dict)
    boosts: dict[str, float] = field(default_factory=dict)
    matched: bool = False
    """Some lane matched it: a positive raw score (text terms, a tag, a positive similarity).
    A candidate neither matched nor boosted (score 0) has no signal: recall drops it."""

    def explain(self) -> dict[str, Any]:
        return {"score": self.score, "lanes": self.lanes, "boosts": self.boosts}


def lane_detail(rank: int, score: float, contribution: float) -> dict[str, float]:
    """What :meth:`Fused.explain` shows for one lane of one candidate."""
    return {"rank": rank, "score": score, "contribution": contribution}


def fuse(
    lanes: Sequence[Lane],
    *,
    method: Fusion = "score",
    rrf_k: float = 60.0,
    explain: bool = False,
    k: int = 0,
    headroom: float | None = None,
) -> dict[int, Fused]:
    """Combine lanes into one score per key (higher is better).

    Each lane's rank, score and contribution are kept for :meth:`Fused.explain` only with
    ``explain=True``: a recall without it builds no per-candidate detail.

    ``headroom`` (with ``k``): the most the boosts that follow can multiply a score by. Only
    candidates that could still reach the top ``k`` once boosted are kept — those scoring at
    least the ``k``-th best score divided by ``headroom`` (boosts only raise scores, so the
    ``k``-th best can only rise). Most of a deep candidate pool cannot, and building,
    boosting and sorting it was most of a small recall's Python."""
    if explain or headroom is None:
        out: dict[int, Fused] = {}
        for lane in lanes:
            add_lane(out, lane, method=method, rrf_k=rrf_k, explain=explain)
        return out
    scores: dict[int, float] = {}
    matched: set[int] = set()
    for lane in lanes:
        if not lane.ranked or not lane.weight:
            continue
        get = scores.get
        for (key, score), part in zip(lane.ranked, lane_parts(lane, method, rrf_k), strict=True):
            scores[key] = get(key, 0.0) + part
            if score > 0:
                matched.add(key)
    floor = -math.inf
    if 0 < k < len(scores):
        kth = heapq.nlargest(k, scores.values())[-1]
        if kth > 0:  # (boosts multiply: a negative score only falls further)
            # a hair below the bound: a candidate level with it after rounding stays
            floor = kth / headroom * (1 - 1e-9)
    return {
        key: Fused(key, score, matched=key in matched)
        for key, score in scores.items()
        if score >= floor
    }


def lane_parts(lane: Lane, method: Fusion, rrf_k: float) -> list[float]:
    """Each ranked candidate's contribution to its fused score, in the lane's order."""
    weight = lane.weight
    if method == "rrf":
        return [weight / (rrf_k + rank) for rank in range(1, len(lane.ranked) + 1)]
    top, low = lane.ranked[0][1], lane.floor
    if low is None:
        if top <= 0:
            return [0.0] * len(lane.ranked)
        return [weight * (score / top) for _, score in lane.ranked]
    if top <= low:
        return [weight * 1.0] * len(lane.ranked)
    span = top - low
    return [weight * ((score - low) / span) for _, score in lane.ranked]


def add_lane(
    out: dict[int, Fused],
    lane: Lane,
    *,
    method: Fusion = "score",
    rrf_k: float = 60.0,
    explain: bool = False,
    join: bool = True,
) -> None:
    """Add one lane's contributions to ``out`` (see :func:`fuse`). With ``join=False`` a key
    not already in ``out`` is skipped instead of joining."""
    if not lane.ranked or not lane.weight:
        return
    name = lane.name
    parts = lane_parts(lane, method, rrf_k)
    for rank, ((key, score), part) in enumerate(zip(lane.ranked, parts, strict=True), start=1):
        fused = out.get(key)
        if fused is None:
            if not join:
                continue
            fused = out[key] = Fused(key, 0.0)
        fused.score += part
        if score > 0:
            fused.matched = True
        if explain:
            fused.lanes[name] = lane_detail(rank, score, part)


def neighbor_lane(
    fused: Mapping[int, Fused],
    adjacency: Mapping[int, tuple[int | None, int | None]],
    weight: float,
) -> Lane:
    """The neighbour lane: each memory next to a candidate in its session, scored by its best
    neighbour's fused score (the scores of the other lanes), best first.

    A question's evidence often spans adjacent turns, so a memory next to a strong hit is
    worth a look; as a lane of its own (normalised like the others and weighted by
    ``weight``) its share of the score is measured rather than added on top. Candidates
    and memories that no other lane found both take part (the latter join the results)."""
    before = {key: f.score for key, f in fused.items()}
    best: dict[int, float] = {}
    for key, (prev, nxt) in adjacency.items():
        if key not in before:
            continue
        for other in (prev, nxt):
            if other is not None and other != key:
                best[other] = max(best.get(other, 0.0), before[key])
    ranked = sorted(((k, s) for k, s in best.items() if s > 0), key=lambda kv: (-kv[1], -kv[0]))
    return Lane("neighbor", ranked, weight)


def diversify(
    ordered: Sequence[Fused],
    sources: Mapping[int, str | None],
    *,
    decay: float = 0.0,
    cap: int | None = None,
) -> list[Fused]:
    """Re-rank so that one source (a session) does not fill the top: greedily pick the best
    candidate whose score, multiplied by ``(1 - decay) ** n`` for the ``n`` memories of its
    source picked already, is highest; a source with ``cap`` picks takes no more until every
    other candidate is placed (those follow in their original order). Candidates with no
    source (``None``) are never penalised. Scores stay as they were; only the order changes.
    With one source only, or ``decay=0`` and no cap, the order is unchanged."""
    if (not decay and cap is None) or len(ordered) < 2:
        return list(ordered)
    factor = 1.0 - decay
    picked: dict[str, int] = {}
    heap = [(-f.score, i, 0) for i, f in enumerate(ordered)]
    heapq.heapify(heap)
    out: list[Fused] = []
    deferred: list[int] = []
    while heap:
        _neg, i, seen = heapq.heappop(heap)
        source = sources.get(ordered[i].key)
        if source is None:
            out.append(ordered[i])
            continue
        n = picked.get(source, 0)
        if cap is not None and n >= cap:
            deferred.append(i)
            continue
        if n != seen:  # its source was picked since it was queued: re-queue at its new score
            heapq.heappush(heap, (-ordered[i].score * factor**n, i, n))
            continue
        out.append(ordered[i])
        picked[source] = n + 1
    out += [ordered[i] for i in sorted(deferred)]
    return out


def boost_speaker(
    fused: Mapping[int, Fused], users: Mapping[int, str | None], speaker: str, weight: float
) -> None:
    """Multiply the scores of memories by ``speaker`` (the one user the query names)."""
    for key, item in fused.items():
        if users.get(key) == speaker:
            item.boosts["speaker"] = item.score * weight
            item.score *= 1 + weight


def apply_boosts(
    fused: Mapping[int, Fused],
    *,
    ages_days: Mapping[int, float],
    importance: Mapping[int, float],
    recency_weight: float,
    recency_half_life_days: float,
    importance_weight: float,
) -> None:
    """Multiply scores by ``1 + w * signal`` for recency (half-life decay) and importance."""
    for key, item in fused.items():
        factor = 1.0
        if recency_weight:
            age = max(0.0, ages_days.get(key, 0.0))
            decay = math.exp(-math.log(2) * age / recency_half_life_days)
            item.boosts["recency"] = recency_weight * decay
            factor += recency_weight * decay
        if importance_weight:
            item.boosts["importance"] = importance_weight * importance.get(key, 0.5)
            factor += importance_weight * importance.get(key, 0.5)
        item.score *= factor
