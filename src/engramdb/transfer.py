"""The export file format (``engramdb export`` / ``engramdb import``): versioned JSON Lines.

The first line is a header, ``{"type": "engramdb-export", "version": 1, ...}``; every other
line is one record with a ``"type"``: ``namespace`` (starts a namespace's section), ``memory``
(with its version history and invalidation), ``triple``, ``event`` (a recorded decision about
a memory), ``session`` followed by its ``session_item`` records in order, and a final ``end``
record with the count of each type (a file without it was cut short). docs/export-format.md
describes every field.

Both directions stream: the store is read in pages and the file line by line, so neither is
ever held in memory. Import is idempotent: ids are kept, a memory or fact already present is
skipped, and a session is written only where the database holds a prefix of the file's items
(nothing, or an earlier import cut short); a session whose items differ is a conflict. The
same file imported twice leaves the same database.

Files written by engramdb before this format (one memory dict per line, no header) still
import: every line is then a memory.

Data flows one way: :class:`~engramdb.memory.Memory` (the facade) calls this module, which
validates through the facade's own rules and reads and writes through the store's paged
export and exact import methods (the same ones ``engramdb migrate`` copies with).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import orjson

from .errors import ConflictError, EngramError, InvalidInputError
from .filters import normalize_tags, parse_datetime
from .store.base import ImportedMemory, NewMemory, NewMemoryEvent, TripleRow
from .store.rows import event_key, event_rows
from .types import (
    MemoryVersion,
    Triple,
    datetime_from_us,
    format_datetime,
    now_us,
    us_from_datetime,
)
from .validation import check_id

if TYPE_CHECKING:
    from .memory import Memory

FORMAT = "engramdb-export"
VERSION = 1
PAGE = 500
EMBED_BATCH = 64
"""Memories embedded together on import (shortest first within a write batch): a batch a
model runs well, small enough that progress moves steadily."""
Progress = Callable[[str, int, "int | None"], None]
"""``progress(step, done, total)``, as :func:`engramdb.consolidate.consolidate` reports:
``step`` names the phase ("checking": bytes of the file read; "importing", "exporting":
records), ``total`` is ``None`` when unknown."""
COUNTED = ("memory", "triple", "session", "session_item")
"""The record types an export's progress counts (what the namespace's stats count)."""
KINDS = ("memories", "history", "triples", "events", "sessions", "session_items")
"""What an import counts (``history``: prior versions of memories)."""

_RECORD_KIND = {
    "memory": "memories",
    "triple": "triples",
    "event": "events",
    "session": "sessions",
    "session_item": "session_items",
}
_MEMORY_FIELDS = frozenset(
    {
        "type",
        "id",
        "content",
        "user_id",
        "agent_id",
        "session_id",
        "tags",
        "metadata",
        "importance",
        "occurred_at",
        "created_at",
        "updated_at",
        "version",
        "embedding_model",
        "embedding",
        "embedding_chunks",
        "history",
        "invalidated_at",
        "invalidated_reason",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "type",
        "memory_id",
        "at",
        "action",
        "reason",
        "model",
        "prompt_version",
        "session_id",
        "item_seqs",
        "details",
    }
)
_HISTORY_FIELDS = frozenset({"version", "content", "tags", "metadata", "importance", "replaced_at"})
_TRIPLE_FIELDS = frozenset(
    {
        "type",
        "id",
        "subject",
        "predicate",
        "object",
        "confidence",
        "source",
        "valid_from",
        "valid_to",
        "created_at",
        "memory_id",
    }
)
_SESSION_FIELDS = frozenset({"type", "session_id", "created_at", "updated_at"})
_ITEM_FIELDS = frozenset({"type", "data", "created_at"})


@dataclass
class ImportReport:
    """What an import wrote (``created``) and found already there (``skipped``), per kind."""

    namespaces: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    legacy: bool = False
    """The file was in the format before version 1 (memories only)."""
    records: int = 0
    """Records read (memories, facts, events, sessions, session items): what a progress bar
    of the writing pass counts to."""


# -- export --------------------------------------------------------------------------------


def _time(us: int | None) -> str | None:
    return format_datetime(datetime_from_us(us)) if us is not None else None


def export_records(
    mem: Memory, namespaces: Sequence[str], *, with_vectors: bool = False
) -> Iterator[dict[str, Any]]:
    """Every record of ``namespaces``, header first and ``end`` last, read page by page."""
    from . import __version__

    store = mem.store
    counts = dict.fromkeys(("namespace", *_RECORD_KIND), 0)
    yield {
        "type": FORMAT,
        "version": VERSION,
        "engramdb": __version__,
        "namespaces": list(namespaces),
        "with_vectors": with_vectors,
    }
    for ns in namespaces:
        counts["namespace"] += 1
        yield {"type": "namespace", "namespace": ns}
        after = 0
        while page := store.memory_export_full(
            ns, after=after, limit=PAGE, with_vectors=with_vectors
        ):
            for m in page:
                r = m.record
                # the record's one shape (MemoryRecord.to_dict), minus the namespace: the
                # namespace record above gives it
                out: dict[str, Any] = {"type": "memory", **r.to_dict()}
                del out["namespace"]
                out["embedding_model"] = m.embedding_model
                if with_vectors:
                    out["embedding"] = (
                        base64.b64encode(m.embedding).decode() if m.embedding is not None else None
                    )
                    if m.embedding_spans:  # a long memory, embedded in chunks
                        out["embedding_chunks"] = [list(span) for span in m.embedding_spans]
                out["history"] = [
                    {k: v for k, v in version.to_dict().items() if k != "memory_id"}
                    for version in m.history
                ]
                counts["memory"] += 1
                yield out
            after = page[-1].rowid
        after = 0
        while triples := store.triple_export(ns, after=after, limit=PAGE):
            for row in triples:
                t = row.triple
                counts["triple"] += 1
                triple = {"type": "triple", **t.to_dict(), "memory_id": row.memory_id}
                del triple["namespace"]
                yield triple
            after = triples[-1].rowid
        after = 0
        while events := store.memory_event_export(ns, after=after, limit=PAGE):
            for e in events:
                counts["event"] += 1
                event = {"type": "event", **e.to_dict()}
                del event["id"]  # store-assigned: the importing store numbers its own
                yield event
            after = events[-1].id
        last: str | None = None
        while sessions := store.session_export(ns, after=last, limit=PAGE):
            for info in sessions:
                counts["session"] += 1
                yield {
                    "type": "session",
                    "session_id": info.session_id,
                    "created_at": format_datetime(info.created_at),
                    "updated_at": format_datetime(info.updated_at),
                }
                seq = -1
                while items := store.session_export_items(
                    ns, info.session_id, after=seq, limit=PAGE
                ):
                    for item in items:
                        counts["session_item"] += 1
                        yield {
                            "type": "session_item",
                            "data": item.data,
                            "created_at": _time(item.created_at),
                        }
                    seq = items[-1].seq
            last = sessions[-1].session_id
    yield {"type": "end", "counts": counts}


def write_export(
    records: Iterable[Mapping[str, Any]],
    out: IO[bytes],
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write records as JSON lines to a binary stream; returns the count per record type."""
    counts: dict[str, int] = {}
    for record in records:
        out.write(orjson.dumps(record) + b"\n")
        kind = str(record["type"])
        counts[kind] = counts.get(kind, 0) + 1
        if progress is not None:
            progress(kind)
    return counts


# -- import --------------------------------------------------------------------------------


def read_lines(
    source: Path | IO[bytes], *, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` of each non-blank line of a file (a path, or a binary
    file object read from where it stands), read as a stream: one line in memory at a time,
    never the whole file. ``progress`` gets the bytes consumed. A line that is not JSON raises
    naming the line."""
    if isinstance(source, Path):
        with source.open("rb") as f:
            yield from _parsed(f, source.name, progress)
    else:
        yield from _parsed(source, str(getattr(source, "name", "") or "input"), progress)


def _parsed(
    f: IO[bytes], name: str, progress: Callable[[int], None] | None
) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(iter(f.readline, b""), 1):
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        try:
            yield n, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            try:  # orjson refuses integers beyond 64 bits; the json module does not
                yield n, json.loads(line)
            except ValueError:
                raise InvalidInputError(f"{name}:{n} is not valid JSON: {exc.msg}") from None


class _Importer:
    """Reads records in order, validates each and, if ``write``, stores them in batches."""

    def __init__(
        self,
        mem: Memory,
        *,
        namespace: str | None,
        all_namespaces: bool,
        batch_size: int,
        write: bool,
        where: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError("batch_size must be a positive integer")
        self.mem = mem
        self.store = mem.store
        self.namespace = namespace
        self.all_namespaces = all_namespaces
        self.batch_size = batch_size
        self.write = write
        self.where = where
        self.progress = progress
        self.report = ImportReport()
        self.ns: str | None = None
        self.memories: list[tuple[int, ImportedMemory]] = []
        self.triples: list[TripleRow] = []
        self.events: list[NewMemoryEvent] = []
        self.session: _SessionImport | None = None
        self.seen: dict[str, int] = dict.fromkeys(("namespace", *_RECORD_KIND), 0)
        self.ended = False

    def done(self, records: int) -> None:
        """``records`` more are stored (or found already there)."""
        if self.progress is not None and records:
            self.progress(records)

    def at(self, n: int) -> str:
        return f"{self.where}:{n}" if self.where else f"line {n}"

    # -- driving ---------------------------------------------------------------------------
    def run(self, lines: Iterable[tuple[int, Any]]) -> ImportReport:
        it = iter(lines)
        first = next(it, None)
        if first is None:
            return self.report
        n, header = first
        if not isinstance(header, dict):
            raise InvalidInputError(f"{self.at(n)}: a record must be a JSON object")
        if "type" not in header:  # the format before version 1: one memory per line
            self.report.legacy = True
            self._enter(n, self.namespace)
            for n, record in itertools.chain([first], it):
                self._legacy_memory(n, record)
            self._flush()
            return self.report
        if header.get("type") != FORMAT:
            raise InvalidInputError(
                f"{self.at(n)}: not an engramdb export (the first record should have "
                f'"type": "{FORMAT}")'
            )
        version = header.get("version")
        if version != VERSION:
            raise InvalidInputError(
                f"{self.at(n)}: export format version {version!r} is not supported; this "
                f"engramdb reads version {VERSION} (upgrade engramdb to import this file)"
            )
        last = n
        for n, record in it:
            last = n
            if self.ended:
                raise InvalidInputError(f"{self.at(n)}: a record after the end record")
            self._record(n, record)
        if not self.ended:
            self._flush()
            raise InvalidInputError(
                f"{self.at(last)}: the file ends without its end record (it was cut short); "
                "what came before was imported, and importing the whole file again completes it"
            )
        return self.report

    def _record(self, n: int, record: Any) -> None:
        if not isinstance(record, dict):
            raise InvalidInputError(f"{self.at(n)}: a record must be a JSON object")
        kind = record.get("type")
        if kind != "session_item":
            self._end_session()
        if kind == "namespace":
            self._flush()
            self.seen["namespace"] += 1
            name = record.get("namespace")
            if self.all_namespaces:
                self._enter(n, name)
            elif self.seen["namespace"] > 1:
                raise InvalidInputError(
                    f"{self.at(n)}: this file holds more than one namespace; import it with "
                    "all_namespaces=True (CLI: --all-namespaces) to restore each into its own"
                )
            else:
                self._enter(n, self.namespace)
            return
        if kind == "end":
            self._flush()
            self._check_end(n, record)
            self.ended = True
            return
        if kind not in _RECORD_KIND:
            raise InvalidInputError(f"{self.at(n)}: unknown record type {kind!r}")
        if self.ns is None:
            raise InvalidInputError(f"{self.at(n)}: a {kind} record before any namespace record")
        self.seen[kind] += 1
        self.report.records += 1
        if kind == "memory":
            if self.triples or self.events:
                self._flush()
            self.memories.append((n, self._memory(n, record)))
            if len(self.memories) >= self.batch_size:
                self._flush()
        elif kind == "triple":
            if self.memories or self.events:
                self._flush()
            self.triples.append(self._triple(n, record))
            if len(self.triples) >= self.batch_size:
                self._flush()
        elif kind == "event":
            if self.memories or self.triples:
                self._flush()  # an event is recorded only for a memory already stored
            self.events.append(self._event(n, record))
            if len(self.events) >= self.batch_size:
                self._flush()
        elif kind == "session":
            self._flush()
            self._start_session(n, record)
        else:
            if self.session is None:
                raise InvalidInputError(f"{self.at(n)}: a session_item outside a session")
            self.session.item(n, record)

    def _enter(self, n: int, name: object) -> None:
        try:
            if name is not None and not isinstance(name, str):
                raise InvalidInputError("namespace must be a string")
            self.ns = self.mem._ns(name)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        if self.ns not in self.report.namespaces:
            self.report.namespaces.append(self.ns)

    def _check_end(self, n: int, record: dict[str, Any]) -> None:
        counts = record.get("counts")
        if not isinstance(counts, dict):
            raise InvalidInputError(f"{self.at(n)}: the end record needs counts")
        for kind, seen in self.seen.items():
            if counts.get(kind, 0) != seen:
                raise InvalidInputError(
                    f"{self.at(n)}: the end record counts {counts.get(kind, 0)} {kind} "
                    f"record(s) but the file holds {seen}"
                )

    # -- writing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        self._end_session()
        if self.memories:
            batch, self.memories = self.memories, []
            if self.write:
                assert self.ns is not None
                items, embedded = self._embedded([i for _, i in batch])
                try:
                    created = self.store.memory_import(self.ns, items)
                except ConflictError as exc:
                    raise ConflictError(f"{self.at(batch[0][0])}-{batch[-1][0]}: {exc}") from None
                for item, new in zip(items, created, strict=True):
                    key = "created" if new else "skipped"
                    getattr(self.report, key)["memories"] += 1
                    getattr(self.report, key)["history"] += len(item.history)
                self.done(len(items) - embedded)  # the embedded ones counted as embedded
        if self.triples:
            batch_t, self.triples = self.triples, []
            if self.write:
                assert self.ns is not None
                for new in self.store.triple_import(self.ns, batch_t):
                    (self.report.created if new else self.report.skipped)["triples"] += 1
                self.done(len(batch_t))
        if self.events:
            batch_e, self.events = self.events, []
            if self.write:
                assert self.ns is not None
                fresh = self._new_events(self.ns, batch_e)
                added = self.store.memory_event_add(self.ns, fresh) if fresh else 0
                self.report.created["events"] += added
                self.report.skipped["events"] += len(batch_e) - added
                self.done(len(batch_e))

    def _new_events(self, ns: str, events: list[NewMemoryEvent]) -> list[NewMemoryEvent]:
        """The events not recorded yet (importing a file twice records each event once)."""
        have: dict[str, set[tuple[Any, ...]]] = {}
        out = []
        for e in events:
            if e.memory_id not in have:
                have[e.memory_id] = {
                    event_key(x) for x in self.store.memory_events(ns, e.memory_id)
                }
            key = event_key(e)
            if key not in have[e.memory_id]:  # (the same event twice in a file: both kept)
                out.append(e)
        return out

    def _embedded(self, items: list[ImportedMemory]) -> tuple[list[ImportedMemory], int]:
        """Embed, with the importing memory's embedder, what the file brought no vector for;
        returns the items and how many were embedded. The texts go to the model
        ``EMBED_BATCH`` at a time, shortest first (texts of a length pad little), and progress
        moves with each batch; the items keep their file order."""
        todo = [n for n, i in enumerate(items) if i.memory.embedding is None]
        if not todo or self.mem.embedder is None:
            return items, 0
        todo.sort(key=lambda n: len(items[n].memory.content))
        out = list(items)
        for start in range(0, len(todo), EMBED_BATCH):
            chunk = todo[start : start + EMBED_BATCH]
            drafts = self.mem._with_embeddings([items[n].memory for n in chunk])
            for n, draft in zip(chunk, drafts, strict=True):
                out[n] = replace(items[n], memory=draft)
            self.done(len(chunk))
        return out, len(todo)

    # -- sessions --------------------------------------------------------------------------
    def _start_session(self, n: int, record: dict[str, Any]) -> None:
        try:
            _no_unknown(record, _SESSION_FIELDS)
            session_id = check_id("session_id", record.get("session_id"))
            created = _us("created_at", record.get("created_at"))
            updated = _us("updated_at", record.get("updated_at"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        assert self.ns is not None
        self.session = _SessionImport(self, n, self.ns, session_id, created, updated)

    def _end_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.finish()

    # -- record validation -----------------------------------------------------------------
    def _memory(self, n: int, record: dict[str, Any]) -> ImportedMemory:
        try:
            _no_unknown(record, _MEMORY_FIELDS)
            if record.get("id") is None:
                raise InvalidInputError("id is missing")
            if record.get("created_at") is None:
                raise InvalidInputError("created_at is missing")
            draft = self.mem._draft(
                0, {k: v for k, v in record.items() if k in self.mem._ENTRY_FIELDS}
            )
            version = record.get("version", 1)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise InvalidInputError("version must be a positive integer")
            updated = record.get("updated_at")
            updated_us = _us("updated_at", updated) if updated is not None else draft.created_at
            history = self._history(draft.id, version, record.get("history", []))
            draft = self._vector(
                draft,
                record.get("embedding"),
                record.get("embedding_model"),
                record.get("embedding_chunks"),
            )
            invalidated = record.get("invalidated_at")
            invalidated_us = _us("invalidated_at", invalidated) if invalidated is not None else None
            reason = record.get("invalidated_reason")
            if reason is not None and not isinstance(reason, str):
                raise InvalidInputError("invalidated_reason must be a string")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        assert updated_us is not None
        return ImportedMemory(draft, updated_us, version, history, invalidated_us, reason)

    def _legacy_memory(self, n: int, record: Any) -> None:
        if not isinstance(record, dict):
            raise InvalidInputError(f"{self.at(n)}: a record must be a JSON object")
        try:
            draft = self.mem._draft(0, record)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        if draft.created_at is None:
            from dataclasses import replace

            draft = replace(draft, created_at=now_us())
        assert draft.created_at is not None
        self.seen["memory"] += 1
        self.report.records += 1
        self.memories.append((n, ImportedMemory(draft, draft.created_at, 1)))
        if len(self.memories) >= self.batch_size:
            self._flush()

    def _history(self, memory_id: str, version: int, value: object) -> tuple[MemoryVersion, ...]:
        from .memory import _importance, _metadata

        if not isinstance(value, list):
            raise InvalidInputError("history must be a list")
        out: list[MemoryVersion] = []
        for h in value:
            if not isinstance(h, dict):
                raise InvalidInputError("each history entry must be an object")
            _no_unknown(h, _HISTORY_FIELDS, "history entry")
            v = h.get("version")
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v < version:
                raise InvalidInputError(
                    f"a history entry's version must be an integer from 1 to {version - 1}"
                )
            content = h.get("content")
            if not isinstance(content, str) or not content:
                raise InvalidInputError("a history entry's content must be a non-empty string")
            out.append(
                MemoryVersion(
                    memory_id,
                    v,
                    self.mem._content(content),
                    normalize_tags(h.get("tags") or ()),
                    _metadata(h.get("metadata")),
                    _importance(h.get("importance", 0.5)),
                    parse_datetime("replaced_at", h.get("replaced_at")),
                )
            )
        return tuple(out)

    @staticmethod
    def _vector(draft: NewMemory, encoded: object, model: object, chunks: object) -> NewMemory:
        if model is not None and not isinstance(model, str):
            raise InvalidInputError("embedding_model must be a string")
        if encoded is None:
            if chunks is not None:
                raise InvalidInputError("embedding_chunks needs an embedding")
            return draft
        if not isinstance(encoded, str) or not model:
            raise InvalidInputError("embedding must be base64 text, with its embedding_model")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError("embedding is not valid base64") from None
        values = np.frombuffer(raw, dtype="<f4") if len(raw) % 4 == 0 else None
        if values is None or not len(values) or not np.isfinite(values).all():
            raise InvalidInputError("embedding must be finite float32 values (little-endian)")
        spans = _chunk_spans(chunks, len(draft.content), len(values))
        from dataclasses import replace

        return replace(draft, embedding=raw, embedding_model=model, embedding_spans=spans)

    def _event(self, n: int, record: dict[str, Any]) -> NewMemoryEvent:
        try:
            _no_unknown(record, _EVENT_FIELDS)
            at = _us("at", record.get("at"))
            texts: dict[str, str | None] = {}
            for name in ("reason", "model", "prompt_version", "session_id"):
                value = record.get(name)
                if value is not None and not isinstance(value, str):
                    raise InvalidInputError(f"{name} must be a string")
                texts[name] = value
            seqs = record.get("item_seqs") or []
            if not isinstance(seqs, list):
                raise InvalidInputError("item_seqs must be a list of integers")
            details = record.get("details") or {}
            if not isinstance(details, dict):
                raise InvalidInputError("details must be an object")
            action = record.get("action")
            if not isinstance(action, str):
                raise InvalidInputError("action must be a string")
            event = NewMemoryEvent(
                memory_id=check_id("memory_id", record.get("memory_id")),
                action=action,
                item_seqs=tuple(seqs),
                details=details,
                at=at,
                **texts,
            )
            event_rows(self.ns or "", [event], at)  # the store's own checks, before writing
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        return event

    def _triple(self, n: int, record: dict[str, Any]) -> TripleRow:
        from .memory import _triple_part

        try:
            _no_unknown(record, _TRIPLE_FIELDS)
            confidence = record.get("confidence", 1.0)
            if (
                isinstance(confidence, bool)
                or not isinstance(confidence, (int, float))
                or not 0.0 <= confidence <= 1.0
            ):
                raise InvalidInputError("confidence must be a number from 0 to 1")
            source = record.get("source")
            if source is not None and not isinstance(source, str):
                raise InvalidInputError("source must be a string")
            memory_id = record.get("memory_id")
            if memory_id is not None:
                check_id("memory_id", memory_id)
            valid_to = record.get("valid_to")
            triple = Triple(
                id=check_id("id", record.get("id")),
                namespace=self.ns or "",
                subject=_triple_part("subject", record.get("subject")),
                predicate=_triple_part("predicate", record.get("predicate")),
                object=_triple_part("object", record.get("object")),
                confidence=float(confidence),
                source=source,
                valid_from=parse_datetime("valid_from", record.get("valid_from")),
                valid_to=parse_datetime("valid_to", valid_to) if valid_to is not None else None,
                created_at=parse_datetime("created_at", record.get("created_at")),
            )
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.at(n)}: {exc}") from None
        return TripleRow(0, triple, memory_id)


class _SessionImport:
    """One session's items as they stream in: compared with what the database holds, and
    appended past that (a session already holding the same items is left alone)."""

    def __init__(
        self, owner: _Importer, n: int, ns: str, session_id: str, created: int, updated: int
    ) -> None:
        self.owner, self.line, self.ns, self.session_id = owner, n, ns, session_id
        self.created, self.updated = created, updated
        self.position = 0
        self.pending: list[tuple[str, int]] = []
        self.appended = 0
        self.have: list[str] = []  # a page of the stored items, from position have_from
        self.have_from = 0
        self.have_after = -1  # seq cursor of the stored items read so far
        self.have_done = not owner.write
        info = owner.store.session_info(ns, session_id) if owner.write else None
        self.existed = info is not None

    def _stored(self, position: int) -> str | None:
        """The stored item at ``position`` (``None`` past the end)."""
        while not self.have_done and position >= self.have_from + len(self.have):
            self.have_from += len(self.have)
            rows = self.owner.store.session_export_items(
                self.ns, self.session_id, after=self.have_after, limit=PAGE
            )
            self.have = [r.data for r in rows]
            if rows:
                self.have_after = rows[-1].seq
            else:
                self.have_done = True
        if position < self.have_from + len(self.have):
            return self.have[position - self.have_from]
        return None

    def item(self, n: int, record: dict[str, Any]) -> None:
        owner = self.owner
        try:
            _no_unknown(record, _ITEM_FIELDS, "session_item")
            data = record.get("data")
            if not isinstance(data, str):
                raise InvalidInputError("data must be a string (the item's JSON text)")
            from .validation import _check_utf8, decode_item

            _check_utf8("data", data)
            try:
                decode_item(data, record_id=n, where="")
            except EngramError:
                raise InvalidInputError("data must be the JSON text of an object") from None
            at = _us("created_at", record.get("created_at"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{owner.at(n)}: {exc}") from None
        stored = self._stored(self.position) if not self.pending else None
        self.position += 1
        if stored is not None:
            if stored != data:
                raise ConflictError(
                    f"{owner.at(n)}: session {self.session_id!r} already holds different items "
                    "in this database; clear or delete that session to import it"
                )
            owner.report.skipped["session_items"] += 1
            owner.done(1)
            return
        self.pending.append((data, at))
        if len(self.pending) >= owner.batch_size:
            self._write()

    def _write(self) -> None:
        owner = self.owner
        if owner.write:
            owner.store.session_import(
                self.ns,
                self.session_id,
                self.pending,
                created_at=self.created,
                updated_at=self.updated,
            )
        owner.report.created["session_items"] += len(self.pending)
        owner.done(len(self.pending))
        self.appended += len(self.pending)
        self.pending = []
        self.have_done = True  # everything from here on is appended

    def finish(self) -> None:
        if self.pending or (not self.existed and not self.appended):
            self._write()
        if self.existed:
            self.owner.report.skipped["sessions"] += 1
        else:
            self.owner.report.created["sessions"] += 1
        self.owner.done(1)


def _chunk_spans(chunks: object, length: int, values: int) -> tuple[tuple[int, int], ...]:
    """Validated ``embedding_chunks``: ``[start, end]`` character spans within the content,
    one per vector of the embedding (``None``: one vector, the whole content)."""
    if chunks is None:
        return ()
    if not isinstance(chunks, list) or len(chunks) < 2:
        raise InvalidInputError("embedding_chunks must be a list of two or more [start, end] spans")
    spans = []
    for span in chunks:
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            or not 0 <= span[0] < span[1] <= length
        ):
            raise InvalidInputError(
                f"embedding_chunks: {span!r} is not a [start, end] span within the content"
            )
        spans.append((span[0], span[1]))
    if values % len(spans):
        raise InvalidInputError(
            f"embedding holds {values} values, which do not split into {len(spans)} chunks"
        )
    return tuple(spans)


def _no_unknown(record: Mapping[str, Any], known: frozenset[str], what: str = "") -> None:
    unknown = sorted(set(record) - known)
    if unknown:
        kind = what or str(record.get("type", "record"))
        raise InvalidInputError(f"unknown field(s) in a {kind}: {', '.join(map(repr, unknown))}")


def _us(name: str, value: object) -> int:
    if value is None:
        raise InvalidInputError(f"{name} is missing")
    return us_from_datetime(parse_datetime(name, value))


def import_records(
    mem: Memory,
    lines: Iterable[tuple[int, Any]],
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    batch_size: int = PAGE,
    write: bool = True,
    where: str = "",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``(line number, record)`` pairs, consumed as they come (at most ``batch_size``
    records held at once); ``write=False`` only validates. ``progress(n)``: ``n`` more records
    stored or found already there."""
    importer = _Importer(
        mem,
        namespace=namespace,
        all_namespaces=all_namespaces,
        batch_size=batch_size,
        write=write,
        where=where,
        progress=progress,
    )
    return importer.run(lines)
