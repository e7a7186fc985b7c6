"""Issue 17 item 2: ``learn(valid_to=...)`` records a closed interval, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engramdb import InvalidInputError, Memory
from engramdb.store import Store


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory(store, embedder=None)


def test_issue17_learn_valid_to_closed_interval(mem: Memory) -> None:
    paris = mem.learn(
        "Ada", "lived_in", "Paris", valid_from="2015-01-01T00:00:00Z", valid_to="2019-06-01"
    )
    assert paris.valid_to == datetime(2019, 6, 1, tzinfo=UTC) and not paris.current
    # the same interval again: the stored fact, not a second one
    again = mem.learn(
        "Ada", "lived_in", "Paris", valid_from="2015-01-01T00:00:00Z", valid_to="2019-06-01"
    )
    assert again.id == paris.id
    # inside the interval it was true; after it, not; it is not a current fact
    assert [f.id for f in mem.facts("Ada", as_of="2017-01-01")] == [paris.id]
    assert mem.facts("Ada", as_of="2020-01-01") == []
    assert mem.facts("Ada") == []
    assert [f.id for f in mem.facts("Ada", include_history=True)] == [paris.id]
    # a current fact for the same subject stays current beside it
    rome = mem.learn("Ada", "lived_in", "Rome", valid_from="2019-06-01")
    assert [f.id for f in mem.facts("Ada")] == [rome.id]
    assert mem.stats().triples == 2


def test_issue17_learn_valid_to_rejects_bad_intervals(mem: Memory) -> None:
    with pytest.raises(InvalidInputError, match="valid_to must be after valid_from"):
        mem.learn("Ada", "likes", "tea", valid_from="2020-01-01", valid_to="2019-01-01")
    with pytest.raises(InvalidInputError, match="valid_to"):
        mem.learn("Ada", "likes", "tea", valid_to="yesterday-ish")
    with pytest.raises(InvalidInputError, match="single_valued"):
        mem.learn(
            "Ada", "likes", "tea", valid_from="2020-01-01", valid_to="2021-01-01",
            single_valued=True,
        )  # fmt: skip
    assert mem.facts("Ada", include_history=True) == []
