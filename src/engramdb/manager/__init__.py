"""The memory manager: conversation → candidate memories → decisions → the store.

- :mod:`.transcript` renders session items as a numbered, redacted transcript and splits long
  windows by token budget;
- :mod:`.extract` asks an LLM for candidate memories (facts, preferences, events, plans)
  with provenance;
- :mod:`.decide` chooses add / update / delete / none for each candidate against similar stored
  memories, and applies decisions through :class:`MemoryOps`, recording an event each;
- :mod:`.context` renders recalled memories as a fenced data block for prompts;
- :mod:`.prompts` holds the versioned prompt files.
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
from .prompts import PROMPT_VERSION, load_prompt
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
    "Candidate",
    "Context",
    "Decision",
    "DecisionEvent",
    "Extraction",
    "MemoryOps",
    "Redactor",
    "Rejected",
    "SessionItem",
    "Similar",
    "ToolRule",
    "Transcript",
    "TripleCandidate",
    "adecide",
    "aextract",
    "apply_decisions",
    "build_context",
    "decide",
    "estimate_tokens",
    "extract",
    "identity",
    "load_prompt",
    "near_duplicate",
    "render_transcript",
    "split_windows",
]
