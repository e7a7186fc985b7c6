"""OpenAI Agents SDK integration: an engramdb-backed ``agents.memory.Session``.

>>> from agents import Agent, Runner                                  # doctest: +SKIP
>>> from engramdb.integrations.openai_agents import EngramSession      # doctest: +SKIP
>>> session = EngramSession("user-42", "./data")                        # doctest: +SKIP
>>> await Runner.run(agent, "Hello", session=session)                   # doctest: +SKIP

Items are stored exactly as the SDK hands them over and come back unchanged: no backend
fields are added. ``session_settings`` is the SDK's ``SessionSettings`` (or a dict of its
fields); ``get_items(limit)`` with an explicit limit wins over ``session_settings.limit``.
For two concurrent runs on one session, hold :meth:`EngramSession.run_lease` around each run:
the SDK itself does not serialise them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..sessions import AsyncSession
from ..store import Store
from ..types import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from agents.memory import SessionSettings


class EngramSession(AsyncSession):
    """An ``agents.memory.Session`` stored in engramdb (SQLite by default, any Store)."""

    session_settings: SessionSettings

    def __init__(
        self,
        session_id: str,
        store: Store | str | Path | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        from agents.memory import SessionSettings

        # the SDK's coercion: a dict with an unknown key raises its TypeError
        super().__init__(
            session_id,
            store,
            namespace=namespace,
            session_settings=session_settings
            if session_settings is not None
            else SessionSettings(),
        )


__all__ = ["EngramSession"]
