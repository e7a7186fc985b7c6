"""The manager over the Memory facade: session items → extraction → decisions → memories.

:class:`Pipeline` is the one piece that turns a window of session items into memories:
:func:`~engramdb.manager.extract.extract`, then :func:`~engramdb.manager.decide.decide`
against the most similar memories in the same scope, then
:func:`~engramdb.manager.decide.apply_decisions` through :class:`FacadeOps` (the ``Memory``
facade, so quotas, dedup, version history and invalidation behave as everywhere else; every
decision is recorded as a memory event). :func:`extract_session` runs it over everything a
session holds past its high-water mark, under the session's extraction lease, advancing the
mark window by window: what ``Memory.add_messages`` and ``engramdb extract`` call.
:class:`StoreWindowSource` gives the background runtime (:mod:`.runtime`) the same marks,
items and leases.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, LeaseHeldError, NotFoundError
from ..llm import LLM, Usage
from ..redact import redact
from ..sessions import Session
from ..store.base import NewMemoryEvent
from ..types import MemoryRecord, Quota, us_from_datetime
from .decide import Applied, Decision, DecisionEvent, apply_decisions, decide
from .extract import Candidate, Extraction, extract
from .runtime import WindowItem, WindowResult
from .transcript import ToolRule, render_item

if TYPE_CHECKING:
    from ..memory import Memory

LEASE_PREFIX = "extract:"
"""Extraction leases are named ``extract:<session id>`` (the runtime and one-shot runs share
them, so two of them never process one session at a time)."""

DEFAULT_WINDOW_ITEMS = 50
DEFAULT_WINDOW_TOKENS = 6000
MAX_VERBATIM_CHARS = 1000
"""A message stored verbatim (no model) is cut to this many characters."""


class FacadeOps:
    """:class:`~engramdb.manager.decide.MemoryOps` over a ``Memory`` and one namespace.

    A ``delete`` decision is applied when its event arrives (``invalidate`` only checks that
    the memory exists), so the invalidation and its record, with model, prompt version and
    source items, commit together. A memory the manager adds again after it was invalidated is
    restored (the same text in the same scope is the same memory)."""

    def __init__(
        self,
        memory: Memory,
        namespace: str,
        *,
        quota: Quota | None = None,
        extraction_model: str | None = None,
    ) -> None:
        self.memory = memory
        self.namespace = namespace
        self.quota = quota
        self.extraction_model = extraction_model
        """The model that extracted the candidates: an event decided by a rule (nothing
        similar stored, an exact duplicate) names it, with ``details.decided_by = "rule"``."""
        self._pending_invalidations: dict[str, str] = {}

    def remember(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float = 0.5,
        occurred_at: datetime | str | None = None,
    ) -> MemoryRecord:
        record = self.memory.remember(
            content,
            namespace=self.namespace,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            metadata=metadata,
            importance=importance,
            occurred_at=occurred_at,
            quota=self.quota,
        )
        if record.invalidated:
            record = self.memory.restore(
                record.id, reason="extracted again", namespace=self.namespace
            )
        return record

    def update(self, memory_id: str, *, content: str | None = None) -> MemoryRecord:
        return self.memory.update(memory_id, content=content, namespace=self.namespace)

    def invalidate(self, memory_id: str, *, reason: str) -> object:
        record = self.memory.get(memory_id, namespace=self.namespace)  # NotFoundError if gone
        self._pending_invalidations[memory_id] = reason
        return record

    def record_event(self, event: DecisionEvent) -> None:
        if event.memory_id is None:
            return  # a "none" with nothing stored to attach it to
        stored = NewMemoryEvent(
            memory_id=event.memory_id,
            action=event.action,
            reason=event.reason or None,
            model=event.model or self.extraction_model,
            prompt_version=event.prompt_version,
            session_id=event.session_id,
            item_seqs=tuple(event.seqs),
            details={
                k: v
                for k, v in (
                    ("content", event.content),
                    ("previous", event.previous_content),
                    ("decided_by", "rule" if event.model is None else None),
                )
                if v is not None
            },
            at=us_from_datetime(event.at),
        )
        if event.action == "delete" and event.memory_id in self._pending_invalidations:
            reason = self._pending_invalidations.pop(event.memory_id)
            # forgotten meanwhile: nothing left to invalidate or explain
            with contextlib.suppress(NotFoundError):
                self.memory.invalidate(
                    event.memory_id, reason=reason, event=stored, namespace=self.namespace
                )
            return
        self.memory.record_events([stored], namespace=self.namespace)


@dataclass
class WindowOutcome:
    """What one window gave: the extraction, the decisions and (unless a dry run) what was
    applied."""

    extraction: Extraction
    decisions: list[Decision]
    applied: list[Applied] = field(default_factory=list)

    def result(self) -> WindowResult:
        counts = dict.fromkeys(("add", "update", "delete", "none"), 0)
        for done in self.applied:
            counts[done.event.action] += 1
        return WindowResult(
            added=counts["add"],
            updated=counts["update"],
            deleted=counts["delete"],
            none=counts["none"],
            tokens=self.extraction.usage.total_tokens,
        )


class Pipeline:
    """Extraction + decisions + application for one namespace and scope (a
    :class:`~engramdb.manager.runtime.WindowProcessor`)."""

    def __init__(
        self,
        memory: Memory,
        llm: LLM | None,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        tools: ToolRule = "summarize",
        max_window_tokens: int = DEFAULT_WINDOW_TOKENS,
        similar_limit: int = 5,
        quota: Quota | None = None,
    ) -> None:
        self.memory = memory
        self.llm = llm
        self.namespace = memory._ns(namespace)
        self.user_id = user_id
        self.agent_id = agent_id
        self.tools: ToolRule = tools
        self.max_window_tokens = max_window_tokens
        self.similar_limit = similar_limit
        self.quota = quota

    def similar(self, candidate: Candidate) -> list[MemoryRecord]:
        """The stored memories most like ``candidate`` in its scope (user and agent)."""
        scope = {
            key: value
            for key, value in (("user_id", candidate.user_id), ("agent_id", candidate.agent_id))
            if value is not None
        }
        hits = self.memory.recall(
            candidate.content,
            filters=scope or None,
            limit=self.similar_limit,
            namespace=self.namespace,
        )
        return [hit.memory for hit in hits]

    def run(
        self, session_id: str, items: Sequence[WindowItem], *, dry_run: bool = False
    ) -> WindowOutcome:
        """Extract from ``items`` and decide; apply unless ``dry_run``."""
        if self.llm is None:
            extraction = verbatim_candidates(
                items, session_id=session_id, user_id=self.user_id, agent_id=self.agent_id
            )
        else:
            extraction = extract(
                self.llm,
                items,
                session_id=session_id,
                user_id=self.user_id,
                agent_id=self.agent_id,
                tools=self.tools,
                max_window_tokens=self.max_window_tokens,
            )
        decisions = decide(self.llm, extraction.candidates, self.similar)
        outcome = WindowOutcome(extraction, decisions)
        if not dry_run:
            ops = FacadeOps(
                self.memory, self.namespace, quota=self.quota, extraction_model=extraction.model
            )
            outcome.applied = apply_decisions(ops, decisions, session_id=session_id)
            for triple in extraction.triples:
                self.memory.learn(
                    triple.subject,
                    triple.predicate,
                    triple.object,
                    source=f"session:{session_id}",
                    namespace=self.namespace,
                    quota=self.quota,
                )
        return outcome

    def process(self, session_id: str, items: Sequence[WindowItem]) -> WindowResult:
        return self.run(session_id, items).result()


def verbatim_candidates(
    items: Iterable[WindowItem],
    *,
    session_id: str,
    user_id: str | None,
    agent_id: str | None,
) -> Extraction:
    """Without a model (``infer=False``, or no LLM configured): each message with text becomes
    a candidate as it was said (``speaker: text``); the decision step then stores it once."""
    window = list(items)
    candidates: list[Candidate] = []
    for seq, _, item in window:
        role = item.get("role")
        said = render_item(item, tools="drop") if role in ("user", "assistant") else None
        if not said:
            continue
        candidates.append(
            Candidate(
                type="event",
                content=redact(said)[:MAX_VERBATIM_CHARS],
                about="user" if role == "user" else "agent",
                occurred_at=None,
                source_seqs=(seq,),
                importance=0.5,
                session_id=session_id,
                user_id=user_id,
                agent_id=agent_id,
            )
        )
    return Extraction(
        session_id=session_id,
        seqs=tuple(seq for seq, _, _ in window),
        candidates=tuple(candidates),
        triples=(),
        model=None,
        usage=Usage(),
    )


class StoreWindowSource:
    """The runtime's :class:`~engramdb.manager.runtime.WindowSource` over a store namespace:
    marks and leases in the store, items from the session."""

    def __init__(self, memory: Memory, namespace: str | None = None) -> None:
        self.store = memory.store
        self.namespace = memory._ns(namespace)

    def mark(self, session_id: str) -> int:
        return self.store.extraction_mark(self.namespace, session_id)

    def items_after(self, session_id: str, seq: int, limit: int) -> list[WindowItem]:
        session = Session(session_id, self.store, namespace=self.namespace)
        return list(session.items_after(seq, limit))

    def advance(self, session_id: str, from_seq: int, to_seq: int) -> bool:
        return self.store.extraction_advance(self.namespace, session_id, from_seq, to_seq)

    def claim(self, session_id: str, owner: str, ttl: float) -> bool:
        return self.store.lease_acquire(self.namespace, LEASE_PREFIX + session_id, owner, ttl)

    def release(self, session_id: str, owner: str) -> None:
        self.store.lease_release(self.namespace, LEASE_PREFIX + session_id, owner)


@dataclass
class ExtractionReport:
    """What :func:`extract_session` did: each window's outcome, in order."""

    session_id: str
    windows: list[WindowOutcome] = field(default_factory=list)
    dry_run: bool = False

    @property
    def decisions(self) -> list[Decision]:
        return [d for w in self.windows for d in w.decisions]

    @property
    def applied(self) -> list[Applied]:
        return [a for w in self.windows for a in w.applied]

    @property
    def tokens(self) -> int:
        return sum(w.extraction.usage.total_tokens for w in self.windows)


def extract_session(
    pipeline: Pipeline,
    session_id: str,
    *,
    dry_run: bool = False,
    window_items: int = DEFAULT_WINDOW_ITEMS,
    wait: float = 30.0,
    lease_ttl: float = 300.0,
) -> ExtractionReport:
    """Process every item of a session past its high-water mark, window by window, under the
    session's extraction lease (a background manager on the same session waits its turn).

    The mark advances after each applied window (compare-and-set), so a failure keeps the
    items for a retry and nothing is extracted twice. ``dry_run`` decides without applying and
    leaves the mark. Raises :class:`~engramdb.errors.LeaseHeldError` if the lease stays held
    for ``wait`` seconds, and the model's errors as they come (what was applied stays)."""
    if isinstance(window_items, bool) or not isinstance(window_items, int) or window_items < 1:
        raise InvalidInputError("window_items must be an integer >= 1")
    source = StoreWindowSource(pipeline.memory, pipeline.namespace)
    owner = f"extract-{uuid.uuid4().hex}"
    deadline = time.monotonic() + wait
    while not source.claim(session_id, owner, lease_ttl):
        if time.monotonic() >= deadline:
            raise LeaseHeldError(
                f"session {session_id!r} is being extracted by another process; try again"
            )
        time.sleep(0.05)
    report = ExtractionReport(session_id, dry_run=dry_run)
    try:
        mark = source.mark(session_id)
        while True:
            items = source.items_after(session_id, mark, window_items)
            if not items:
                return report
            report.windows.append(pipeline.run(session_id, items, dry_run=dry_run))
            last = items[-1][0]
            if not dry_run and not source.advance(session_id, mark, last):
                return report  # another process moved the mark: it owns what follows
            mark = last
            source.claim(session_id, owner, lease_ttl)  # renew between windows
    finally:
        source.release(session_id, owner)


__all__ = [
    "ExtractionReport",
    "FacadeOps",
    "Pipeline",
    "StoreWindowSource",
    "WindowOutcome",
    "extract_session",
    "verbatim_candidates",
]
