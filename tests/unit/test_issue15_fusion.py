"""Issue 15: the fusion helpers behind the neighbour lane and diversity."""

from __future__ import annotations

from engramdb.search.fusion import Fused, Lane, add_lane, diversify, fuse, neighbor_lane


def ranked(*scores: tuple[int, float]) -> list[Fused]:
    return [Fused(key, score) for key, score in scores]


def test_issue15_diversity_decay_reorders_without_changing_scores() -> None:
    ordered = ranked((1, 1.0), (2, 0.9), (3, 0.8), (4, 0.5))
    sources = {1: "a", 2: "a", 3: "a", 4: "b"}
    out = diversify(ordered, sources, decay=0.6)
    # 2 -> 0.36, 3 -> 0.32 after one pick of "a": b's 0.5 comes second
    assert [f.key for f in out] == [1, 4, 2, 3]
    assert {f.key: f.score for f in out} == {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.5}


def test_issue15_diversity_cap_defers_and_keeps_everything() -> None:
    ordered = ranked((1, 1.0), (2, 0.9), (3, 0.8), (4, 0.1), (5, 0.05))
    sources = {1: "a", 2: "a", 3: "a", 4: "b", 5: None}
    assert [f.key for f in diversify(ordered, sources, cap=1)] == [1, 4, 5, 2, 3]


def test_issue15_diversity_is_a_no_op_for_one_source_or_none() -> None:
    ordered = ranked((1, 1.0), (2, 0.9), (3, 0.8))
    one = {1: "a", 2: "a", 3: "a"}
    assert [f.key for f in diversify(ordered, one, decay=0.9, cap=1)] == [1, 2, 3]
    assert [f.key for f in diversify(ordered, {}, decay=0.9)] == [1, 2, 3]
    assert diversify(ordered, one) == ordered


def test_issue15_neighbors_lane_scores_by_the_best_neighbour() -> None:
    fused = fuse([Lane("text", [(10, 4.0), (20, 2.0)])])  # scores 1.0 and 0.5
    # 10 sits between 9 and 11; 20 between 19 and 21; 11 is also next to 12
    adjacency = {10: (9, 11), 20: (19, 21), 11: (10, 12)}
    lane = neighbor_lane(fused, adjacency, 0.4)
    assert lane.name == "neighbor" and lane.weight == 0.4
    assert dict(lane.ranked) == {9: 1.0, 11: 1.0, 19: 0.5, 21: 0.5}  # 12's neighbour 11 is no hit
    add_lane(fused, lane, join=False)  # a filtered recall: nothing joins
    assert set(fused) == {10, 20}
    add_lane(fused, lane, explain=True)
    assert fused[9].score == 0.4 and fused[19].score == 0.2
    assert fused[9].lanes["neighbor"]["contribution"] == 0.4


def test_fuse_with_headroom_keeps_what_boosts_could_lift_into_the_top_k() -> None:
    text = Lane("text", [(1, 10.0), (2, 8.0), (3, 4.0), (4, 2.0), (5, 1.0)])
    vector = Lane("vector", [(5, 0.9), (6, 0.5), (1, 0.1)], floor=0.1)
    full = fuse([text, vector])
    kept = fuse([text, vector], k=2, headroom=2.0)
    second = sorted((f.score for f in full.values()), reverse=True)[1]
    assert set(kept) == {key for key, f in full.items() if f.score >= second / 2.0}
    assert set(kept) < set(full)  # something was cut
    for key, f in kept.items():
        assert f.score == full[key].score and f.matched == full[key].matched
    # no bound, or explain (which shows every lane): everything is kept
    assert set(fuse([text, vector], k=2, headroom=None)) == set(full)
    assert set(fuse([text, vector], k=2, headroom=2.0, explain=True)) == set(full)


def test_fuse_with_headroom_never_cuts_when_the_kth_score_is_not_positive() -> None:
    # a lane scaled from a floor above some of its scores gives them negative parts
    lane = Lane("vector", [(1, 0.9), (2, 0.2), (3, 0.1), (4, 0.05)], floor=0.5)
    full = fuse([lane])
    assert sorted(f.score for f in full.values())[-2] < 0  # the 2nd best is negative
    assert set(fuse([lane], k=2, headroom=2.0)) == set(full)
