"""Issue 10, the library's side of bad input (items 3, 13, 14, 18), on every backend: over a
size limit is :class:`PayloadTooLargeError`, nothing nested deeper than 64 levels or holding
a lone surrogate is stored, an item too deep to read is never popped, any non-negative
``get_items`` limit works, and session settings and non-JSON items behave as the Agents SDK's
own sessions do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engramdb import (
    AsyncSession,
    CorruptRecordError,
    InvalidInputError,
    Memory,
    NotJSONError,
    PayloadTooLargeError,
    Session,
)
from engramdb.memory import MAX_METADATA_BYTES
from engramdb.store import Store
from engramdb.validation import MAX_JSON_DEPTH


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture
def memory(store: Store) -> Memory:
    return Memory(store, embedder=None)


# -- item 3 -----------------------------------------------------------------------------------


def test_item_03_over_a_size_limit_is_payload_too_large(store: Store) -> None:
    memory = Memory(store, embedder=None, max_content_chars=10)
    with pytest.raises(PayloadTooLargeError, match="10"):
        memory.remember("x" * 11)
    with pytest.raises(PayloadTooLargeError, match="entry 1"):
        memory.remember_many([{"content": "ok"}, {"content": "y" * 11}])
    with pytest.raises(PayloadTooLargeError, match=f"{MAX_METADATA_BYTES:,}"):
        memory.remember("ok", metadata={"blob": "z" * MAX_METADATA_BYTES})
    assert issubclass(PayloadTooLargeError, InvalidInputError)
    assert memory.stats().memories == 0


# -- item 13 ----------------------------------------------------------------------------------


def test_item_13_nothing_deeper_than_64_levels_is_stored(store: Store, memory: Memory) -> None:
    session = Session("deep", store)
    session.add_items([nested(MAX_JSON_DEPTH)])
    with pytest.raises(InvalidInputError, match=str(MAX_JSON_DEPTH)):
        session.add_items([{"ok": 1}, nested(MAX_JSON_DEPTH + 1)])
    with pytest.raises(InvalidInputError, match=str(MAX_JSON_DEPTH)):
        asyncio.run(AsyncSession("deep", store).add_items([nested(300)]))
    with pytest.raises(InvalidInputError):  # thousands deep: refused, no RecursionError
        session.add_items([nested(5000)])
    assert session.get_items() == [nested(MAX_JSON_DEPTH)]
    with pytest.raises(InvalidInputError, match=str(MAX_JSON_DEPTH)):
        memory.remember("deep", metadata={"m": nested(MAX_JSON_DEPTH)})
    memory.remember("fine", metadata={"m": nested(MAX_JSON_DEPTH - 1)})
    assert memory.stats().memories == 1


def test_item_13_an_item_too_deep_to_read_is_reported_and_never_popped(store: Store) -> None:
    session = Session("legacy", store)
    session.add_items([{"n": 1}])
    deep = '{"a":' * 300 + "1" + "}" * 300  # as an older engramdb could have stored it
    store.session_add("default", "legacy", [deep])
    with pytest.raises(CorruptRecordError, match="left in place"):
        session.get_items()
    for _ in range(2):
        with pytest.raises(CorruptRecordError):
            session.pop_item()
    info = session.info()
    assert info is not None and info.item_count == 2  # the pops deleted nothing
    assert session.get_items(limit=0) == []


def test_item_13_huge_numbers_surrogates_and_cursors_are_invalid_input(memory: Memory) -> None:
    for importance in (10**400, -(10**400), float("inf"), float("nan")):
        with pytest.raises(InvalidInputError, match="importance"):
            memory.remember("x", importance=importance)
    with pytest.raises(InvalidInputError, match="confidence"):
        memory.learn("a", "b", "c", confidence=10**400)
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.recall("\ud800")
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.learn("a", "b", "c", source="\ud800")
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.learn("a", "b", "x" * 600 + "\ud800")
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.recall("x", filters={"metadata": {"k": "\udfff"}})
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.recall("x", filters={"metadata": {"\ud800": 1}})
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.remember("x", user_id="\ud800")
    for cursor in ("c" + "f" * 40, "cffffffffffffffffff", "c-1"):
        with pytest.raises(InvalidInputError, match="cursor"):
            memory.list(cursor=cursor)
    assert memory.stats().memories == 0


def test_item_13_a_metadata_filter_key_may_hold_any_character(memory: Memory) -> None:
    meta = {'say "hi"': "yes", "x.y": 2, "p[0]": True, "$.k": "v"}
    memory.remember("odd keys", metadata=meta)
    memory.remember("other", metadata={"say": "yes"})
    for key, value in meta.items():
        page = memory.list({"metadata": {key: value}})
        assert [m.content for m in page.items] == ["odd keys"], key
        hits = memory.recall("odd", filters={"metadata": {key: value}})
        assert [h.memory.content for h in hits] == ["odd keys"], key


# -- item 14 ----------------------------------------------------------------------------------


def test_item_14_a_query_over_the_limit_is_payload_too_large(store: Store) -> None:
    memory = Memory(store, embedder=None, max_query_chars=20)
    memory.remember("alpha")
    with pytest.raises(PayloadTooLargeError, match="20"):
        memory.recall("alpha " * 4)
    assert [h.memory.content for h in memory.recall("alpha")] == ["alpha"]
    assert Memory(store, embedder=None).max_query_chars == 4096


# -- item 18 ----------------------------------------------------------------------------------


def test_item_18_any_non_negative_limit_is_accepted(store: Store) -> None:
    session = Session("limits", store)
    session.add_items([{"n": n} for n in range(3)])
    for limit in (2**31 - 1, 2**62, 2**63, 10**30):
        assert session.get_items(limit) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert asyncio.run(AsyncSession("limits", store).get_items(2**31 - 1)) == session.get_items()
    with pytest.raises(InvalidInputError):
        session.get_items(-1)


def test_item_18_session_settings_default_and_refuse_unknown_keys(store: Store) -> None:
    session = Session("settings", store)
    assert session.session_settings is not None and session.session_settings.limit is None
    assert AsyncSession("settings", store).session_settings.limit is None
    limited = Session("settings", store, session_settings={"limit": 2})
    assert limited.session_settings.limit == 2
    with pytest.raises(TypeError, match="Unknown session settings: colour"):
        Session("settings", store, session_settings={"limit": 2, "colour": "red"})
    with pytest.raises(TypeError):
        AsyncSession("settings", store, session_settings={"bogus": 1})


def test_item_18_a_non_json_item_raises_type_error(store: Store) -> None:
    session = Session("types", store)
    for bad in ({"a": {1, 2}}, {"a": object()}, {1, 2}):
        with pytest.raises(TypeError):
            session.add_items([bad])  # type: ignore[list-item]
        with pytest.raises(NotJSONError):  # also an InvalidInputError: the 400 on a server
            asyncio.run(AsyncSession("types", store).add_items([bad]))  # type: ignore[list-item]
    assert session.get_items() == []


def test_item_15_big_integers_in_metadata_round_trip_exactly(memory: Memory) -> None:
    """Schema-valid JSON numbers are stored as given (schemathesis found a 400 for integers
    beyond 64 bits)."""
    meta = {"big": 2**70, "neg": -(2**80), "nested": [{"n": 10**30}], "small": 5}
    record = memory.remember("numbers", metadata=meta)
    assert memory.get(record.id).metadata == meta
    assert type(memory.get(record.id).metadata["big"]) is int
    updated = memory.update(record.id, metadata={**meta, "big": 2**71})
    assert memory.get(updated.id).metadata["big"] == 2**71
    assert memory.history(record.id)[0].metadata == meta
    assert [m.metadata for m in memory.list({"metadata": {"small": 5}}).items] == [
        {**meta, "big": 2**71}
    ]
