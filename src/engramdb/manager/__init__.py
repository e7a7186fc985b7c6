"""The memory manager: conversation → candidate memories → decisions → the store.

- :mod:`.transcript` renders session items as a numbered, redacted transcript and splits long
  windows by token budget;
- :mod:`.extract` asks an LLM for candidate memories (facts, preferences, events, plans)
  with provenance;
- :mod:`.decide` chooses add / update / delete / none for each candidate against similar stored
  memories, and applies decisions through :class:`MemoryOps`, recording an event each;
- :mod:`.context` renders recalled memories as a fenced data block for prompts;
- :mod:`.prompts` holds the versioned prompt files;
- :mod:`.pipeline` runs extraction + decisions over the ``Memory`` facade and the store's
  high-water marks (``Memory.add_messages`` and ``Memory.extract`` use it);
- :mod:`.runtime` runs it in the background: triggers, windows, retries, flush;
- :mod:`.service` is :class:`MemoryManager`, the runtime wired to a ``Memory``.
"""

from .context import Context, build_context
from .decide import (
    Action,
    Applied,
    Decision,
    DecisionEvent,
    MemoryOps,
    Similar,
    adecide,
    apply_decisions,
    decide,
    near_duplicate,
)
from .extract import Candidate, Extraction, Rejected, TripleCandidate, aextract, extract
from .pipeline import ExtractionReport, FacadeOps, Pipeline, StoreWindowSource, extract_session
from .prompts import PROMPT_VERSION, load_prompt
from .runtime import Backoff, ManagerStats, Triggers, WindowResult
from .service import MemoryManager
from .transcript import (
    Redactor,
    SessionItem,
    ToolRule,
    Transcript,
    estimate_tokens,
    identity,
    render_transcript,
    split_windows,
)

__all__ = [
    "PROMPT_VERSION",
    "Action",
    "Applied",
    "Backoff",
    "Candidate",
    "Context",
    "Decision",
    "DecisionEvent",
    "Extraction",
    "ExtractionReport",
    "FacadeOps",
    "ManagerStats",
    "MemoryManager",
    "MemoryOps",
    "Pipeline",
    "Redactor",
    "Rejected",
    "SessionItem",
    "Similar",
    "StoreWindowSource",
    "ToolRule",
    "Transcript",
    "Triggers",
    "TripleCandidate",
    "WindowResult",
    "adecide",
    "aextract",
    "apply_decisions",
    "build_context",
    "decide",
    "estimate_tokens",
    "extract",
    "extract_session",
    "identity",
    "load_prompt",
    "near_duplicate",
    "render_transcript",
    "split_windows",
]
