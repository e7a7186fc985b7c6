"""Language models for the memory manager: the :class:`LLM` protocol and its providers."""

from .base import LLM, Completion, Message, Usage
from .fake import ScriptedLLM

__all__ = ["LLM", "Completion", "Message", "ScriptedLLM", "Usage"]
