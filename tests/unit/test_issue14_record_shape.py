"""Issue 14 "one record shape" and issue 17 item 4 (timestamps, limit, occurred_at): the
records of ``types.py`` are the one shape every layer writes and reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInputError
from engramdb.transfer import export_records
from engramdb.types import (
    ApiKey,
    EntryError,
    Hit,
    MemoryEvent,
    MemoryRecord,
    MemoryVersion,
    Remembered,
    SessionInfo,
    Triple,
    format_datetime,
    parse_datetime,
)
from engramdb.validation import MAX_LIMIT, check_limit

T0 = datetime(2026, 5, 1, 14, 30, 0, 123456, tzinfo=UTC)
T1 = datetime(2026, 5, 2, 0, 0, 0, tzinfo=UTC)

MEMORY = MemoryRecord(
    id="mem_1",
    namespace="ns",
    content="Ada prefers tea",
    user_id="ada",
    agent_id=None,
    session_id="s1",
    tags=("prefs", "drinks"),
    metadata={"big": 2**70, "nested": {"a": [1, 2.5, None, True]}},
    importance=0.75,
    occurred_at=T1,
    created_at=T0,
    updated_at=T0 + timedelta(seconds=1),
    version=3,
    content_hash=__import__("hashlib").sha256(b"Ada prefers tea").hexdigest(),
    invalidated_at=T0 + timedelta(days=1),
    invalidated_reason="moved on",
)
RECORDS = [
    MEMORY,
    Triple("fact_1", "ns", "Ada", "drinks", "tea", 0.9, "chat", T0, T1, T0),
    Triple("fact_2", "ns", "Ada", "lives in", "London", 1.0, None, T0, None, T0),
    MemoryEvent(7, "ns", "mem_1", T0, "update", "newer", "m", "v1", "s1", (1, 2), {"k": 1}),
    MemoryVersion("mem_1", 1, "old text", ("prefs",), {}, 0.5, T1),
    SessionInfo("ns", "s1", T0, T1, 4),
    ApiKey("key_1", "ns", "name", None, "egm_ab", {"max_memories": None}, T0, T1, "key_0"),
    Hit(MEMORY, 0.42, {"lanes": {"text": {"rank": 1.0}}}),
    Remembered(MEMORY, "merged", ("drinks",)),
    EntryError(2, "invalid_input", "content must not be empty or whitespace"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_issue14_record_shape_round_trip(record: object) -> None:
    """record → to_dict → JSON text → from_dict gives the same record, for every record type
    that crosses the API."""
    kind = type(record)
    text = json.dumps(record.to_dict())  # type: ignore[attr-defined]
    back = kind.from_dict(json.loads(text))  # type: ignore[attr-defined]
    if isinstance(record, (MemoryEvent, Triple)):
        back = kind.from_dict(json.loads(text), namespace=record.namespace)  # type: ignore[attr-defined]
    assert back == record


def test_issue17_api_timestamps_one_formatter() -> None:
    """Every timestamp a record emits is RFC 3339 in UTC with ``Z`` (never ``+00:00``), from
    any time zone; the parser reads them back exactly."""
    paris = timezone(timedelta(hours=2))
    assert format_datetime(datetime(2026, 5, 1, 16, 30, tzinfo=paris)) == "2026-05-01T14:30:00Z"
    assert format_datetime(T0) == "2026-05-01T14:30:00.123456Z"
    assert format_datetime(datetime(2026, 5, 1, 14, 30)) == "2026-05-01T14:30:00Z"  # naive: UTC
    for record in RECORDS:
        text = json.dumps(record.to_dict())  # type: ignore[attr-defined]
        assert "+00:00" not in text, text
    assert MEMORY.to_dict()["created_at"] == "2026-05-01T14:30:00.123456Z"
    assert parse_datetime("t", format_datetime(T0)) == T0


def test_issue17_api_occurred_at_accepts_datetimes_and_strings(tmp_path: Path) -> None:
    """``occurred_at`` takes an aware or naive (= UTC) datetime, a date, or an ISO 8601 string
    (``Z``, an offset or none); a bad value's message shows an accepted example."""
    with Memory(tmp_path / "data", embedder=None) as mem:
        given = [
            datetime(2026, 5, 1, 14, 30, tzinfo=UTC),
            datetime(2026, 5, 1, 14, 30),
            "2026-05-01T14:30:00Z",
            "2026-05-01T16:30:00+02:00",
            "2026-05-01T14:30:00",
        ]
        for n, value in enumerate(given):
            stored = mem.remember(f"event {n}", occurred_at=value)
            assert stored.occurred_at == datetime(2026, 5, 1, 14, 30, tzinfo=UTC)
            assert stored.to_dict()["occurred_at"] == "2026-05-01T14:30:00Z"
        assert mem.remember("a day", occurred_at=date(2026, 5, 1)).occurred_at == datetime(
            2026, 5, 1, tzinfo=UTC
        )
        for bad in ("yesterday", "01/05/2026", 1714574400, ""):
            with pytest.raises(InvalidInputError) as err:
                mem.remember("bad time", occurred_at=bad)  # type: ignore[arg-type]
            assert "occurred_at" in str(err.value) and "'2026-05-01T14:30:00Z'" in str(err.value)
        with pytest.raises(InvalidInputError, match=r"valid_from.*2026-05-01T14:30:00Z"):
            mem.learn("Ada", "drinks", "tea", valid_from="soon")


def test_issue17_api_limit_means_the_same_everywhere(tmp_path: Path) -> None:
    """``limit`` is an integer from 1 to 10,000 for recall, list, facts and history (history
    also takes ``None``: every version); 0, negatives, bools, floats and strings raise
    :class:`InvalidInputError` with one message; sessions' ``get_items`` follows the Agents
    SDK (``None`` all, ``0`` nothing, negatives raise)."""
    with Memory(tmp_path / "data", embedder=None) as mem:
        record = mem.remember("Ada prefers tea")
        for n in range(3):
            mem.update(record.id, content=f"Ada prefers tea, version {n + 2}")
        calls = {
            "recall": lambda limit: mem.recall("tea", limit=limit),
            "list": lambda limit: mem.list(limit=limit),
            "facts": lambda limit: mem.facts(limit=limit),
            "history": lambda limit: mem.history(record.id, limit=limit),
        }
        for name, call in calls.items():
            for bad in (0, -1, MAX_LIMIT + 1, True, 2.5, "5"):
                with pytest.raises(InvalidInputError) as err:
                    call(bad)
                message = str(err.value)
                assert message.startswith("limit must be an integer from 1 to 10,000"), (
                    name,
                    message,
                )
            call(1)
            call(MAX_LIMIT)
        for name in ("recall", "list", "facts"):
            with pytest.raises(InvalidInputError, match="limit must be an integer from 1"):
                calls[name](None)
        assert len(mem.history(record.id)) == 3 == len(mem.history(record.id, limit=None))
        assert [v.version for v in mem.history(record.id, limit=2)] == [2, 3]
        session = mem_session(tmp_path)
        session.add_items([{"n": 1}, {"n": 2}])
        assert session.get_items(limit=0) == [] and len(session.get_items(limit=None)) == 2
        with pytest.raises(InvalidInputError, match=r"limit must be an integer >= 0, or None"):
            session.get_items(limit=-1)
    assert check_limit(None, allow_none=True) is None


def mem_session(tmp_path: Path):  # type: ignore[no-untyped-def]
    from engramdb import Session

    return Session("s", store=str(tmp_path / "data"))


def test_issue14_record_shape_export_line_is_to_dict(tmp_path: Path) -> None:
    """An exported memory line is the record's ``to_dict()`` (minus the namespace, which its
    ``namespace`` record gives), with the export's own fields beside it."""
    with Memory(tmp_path / "data", embedder=None) as mem:
        record = mem.remember("Ada prefers tea", user_id="ada", occurred_at="2026-05-01")
        mem.invalidate(record.id, reason="changed her mind")
        fact = mem.learn("Ada", "drinks", "tea")
        lines = list(export_records(mem, ["default"]))
        stored = mem.get(record.id)
        line = next(x for x in lines if x["type"] == "memory" and x["id"] == record.id)
        expected = {k: v for k, v in stored.to_dict().items() if k != "namespace"}
        assert {k: v for k, v in line.items() if k in expected} == expected
        assert set(line) - set(expected) == {"type", "embedding_model", "history"}
        triple = next(x for x in lines if x["type"] == "triple")
        assert {k: v for k, v in triple.items() if k not in ("type", "memory_id")} == {
            k: v for k, v in fact.to_dict().items() if k != "namespace"
        }
        assert "+00:00" not in json.dumps(lines)


def test_issue17_api_min_score_no_zero_signal_hits(tmp_path: Path) -> None:
    """Recall never returns a candidate no lane matched and no boost scored (score 0) unless
    ``min_score=None``; a memory a lane did match stays even when its scaled score is 0 (the
    least similar of a min-max scaled vector lane); ``min_score`` bounds the score."""
    with Memory(tmp_path / "data", embedder="hashing") as mem:
        mem.remember_many(
            [
                {"content": "keep this zebra fact"},
                {"content": "forget this zebra secret"},
                {"content": "Bob repairs bicycles"},
            ]
        )
        everything = mem.recall("zebra", mode="vector", min_score=None)
        assert len(everything) == 3 and everything[-1].score == 0.0
        assert everything[-1].memory.content == "Bob repairs bicycles"
        default = mem.recall("zebra", mode="vector")
        assert sorted(h.memory.content for h in default) == [
            "forget this zebra secret",
            "keep this zebra fact",
        ]  # both say "zebra": matched, even the one whose scaled score is the floor
        hybrid = mem.recall("zebra")
        assert {h.memory.content for h in hybrid} == {h.memory.content for h in default}
        top = default[0].score
        assert [h.score for h in mem.recall("zebra", mode="vector", min_score=top)] == [top]
        for bad in ("0.5", float("nan"), float("inf"), True):
            with pytest.raises(InvalidInputError, match="min_score"):
                mem.recall("zebra", min_score=bad)  # type: ignore[arg-type]


def test_issue17_api_batch_errors_skip_in_the_library(tmp_path: Path) -> None:
    """``remember_many(errors="raise")`` (the default) keeps a batch all or nothing;
    ``errors="skip"`` stores the good entries and puts an :class:`EntryError` (index, code,
    message) in place of each bad one."""
    from engramdb.errors import PayloadTooLargeError

    with Memory(tmp_path / "data", embedder=None) as mem:
        entries = [
            {"content": "Ada prefers tea"},
            {"content": "   "},
            {"content": "x" * (mem.max_content_chars + 1)},
            {"content": "Bob drinks coffee", "colour": "red"},
            {"content": "Cy likes juice", "occurred_at": "soon"},
            {"content": "Dee reads"},
        ]
        with pytest.raises(InvalidInputError, match="entry 1"):
            mem.remember_many(entries)
        with pytest.raises(PayloadTooLargeError):
            mem.remember_many([entries[0], entries[2]])
        assert mem.list().items == []
        out = mem.remember_many(entries, errors="skip")
        assert [type(x).__name__ for x in out] == [
            "MemoryRecord",
            "EntryError",
            "EntryError",
            "EntryError",
            "EntryError",
            "MemoryRecord",
        ]
        errors = [x for x in out if isinstance(x, EntryError)]
        assert [(e.index, e.code) for e in errors] == [
            (1, "invalid_input"),
            (2, "payload_too_large"),
            (3, "invalid_input"),
            (4, "invalid_input"),
        ]
        assert "colour" in errors[2].message and "2026-05-01T14:30:00Z" in errors[3].message
        assert sorted(m.content for m in mem.list().items) == ["Ada prefers tea", "Dee reads"]
        results = mem.remember_results(entries[:2], errors="skip")
        assert isinstance(results[0], Remembered) and results[0].status == "existing"
        assert isinstance(results[1], EntryError) and results[1].index == 1
        with pytest.raises(InvalidInputError, match="errors must be 'raise' or 'skip'"):
            mem.remember_many(entries, errors="ignore")  # type: ignore[call-overload]
