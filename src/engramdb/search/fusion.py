"""Reciprocal rank fusion of retrieval lanes, with optional boosts and an explanation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RRF_K = 60.0


@dataclass
class Lane:
    """One ranked candidate list (best first) with its weight in the fusion."""

    name: str
    ranked: Sequence[tuple[int, float]]  # (key, lane score), best first
    weight: float = 1.0


@dataclass
class Fused:
    key: int
    score: float
    lanes: dict[str, dict[str, float]] = field(default_factory=dict)
    boosts: dict[str, float] = field(default_factory=dict)

    def explain(self) -> dict[str, Any]:
        return {"score": self.score, "lanes": self.lanes, "boosts": self.boosts}


def fuse(lanes: Sequence[Lane], *, k: float = RRF_K) -> dict[int, Fused]:
    """Σ weight / (k + rank) over the lanes each key appears in (rank starts at 1)."""
    out: dict[int, Fused] = {}
    for lane in lanes:
        for rank, (key, score) in enumerate(lane.ranked, start=1):
            fused = out.get(key)
            if fused is None:
                fused = out[key] = Fused(key, 0.0)
            contribution = lane.weight / (k + rank)
            fused.score += contribution
            fused.lanes[lane.name] = {"rank": rank, "score": score, "contribution": contribution}
    return out


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
            decay = math.exp(
                -math.log(2) * max(0.0, ages_days.get(key, 0.0)) / recency_half_life_days
            )
            item.boosts["recency"] = recency_weight * decay
            factor += recency_weight * decay
        if importance_weight:
            item.boosts["importance"] = importance_weight * importance.get(key, 0.5)
            factor += importance_weight * importance.get(key, 0.5)
        item.score *= factor
