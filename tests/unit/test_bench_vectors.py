"""`bench vectors` compares the two indexes' answers up to the order of equal similarities."""

from __future__ import annotations

from bench.vectors import same_results


def test_same_results_allows_equal_similarities_in_either_order() -> None:
    a = ([(7, 0.9), (3, 0.5), (9, 0.5), (4, 0.2)], -0.1)
    b = ([(7, 0.9), (9, 0.5), (3, 0.5), (4, 0.2)], -0.1)
    assert same_results(a, b)
    # at the last similarity the cut at k may keep different memories among equals
    assert same_results(([(7, 0.9), (3, 0.5)], 0.0), ([(7, 0.9), (9, 0.5)], 0.0))


def test_same_results_tells_different_answers_apart() -> None:
    a = ([(7, 0.9), (3, 0.5), (4, 0.2)], -0.1)
    assert not same_results(a, ([(3, 0.9), (7, 0.5), (4, 0.2)], -0.1))  # other memories
    assert not same_results(a, ([(7, 0.9), (3, 0.5), (4, 0.25)], -0.1))  # another similarity
    assert not same_results(a, ([(7, 0.9), (3, 0.5), (4, 0.2)], -0.2))  # another floor
    assert not same_results(a, ([(7, 0.9), (3, 0.5)], -0.1))  # fewer
    assert not same_results(a, ([(7, 0.9), (5, 0.5), (4, 0.2)], -0.1))  # one swapped
