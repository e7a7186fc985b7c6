"""The manager's prompts: versioned Markdown files shipped inside the package.

A prompt file is ``<name>_v<N>.md``. :data:`PROMPT_VERSION` names the set in use; it is
recorded on every extraction and decision, so a stored memory says which prompts produced it.
Changing a prompt's wording means adding a new file and bumping the version, never editing a
released file.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

PROMPT_VERSION = "v1"
"""The prompt set in use (``extract_v1.md``, ``decide_v1.md``)."""


@cache
def load_prompt(name: str, version: str = PROMPT_VERSION) -> str:
    """The text of prompt ``name`` (``"extract"`` or ``"decide"``) at ``version``."""
    resource = files(__name__).joinpath(f"{name}_{version}.md")
    return resource.read_text(encoding="utf-8").strip()


__all__ = ["PROMPT_VERSION", "load_prompt"]
