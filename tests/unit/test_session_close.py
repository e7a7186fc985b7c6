"""A session closes the store it opened, and only that one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engramdb import AsyncSession, Session, StoreError
from engramdb.store import open_store


def test_session_close_closes_the_store_it_opened(tmp_path: Path) -> None:
    with Session("chat", tmp_path) as session:
        session.add_items([{"role": "user", "content": "hi"}])
    with pytest.raises(StoreError, match="closed"):
        session.get_items()
    # what it wrote is on disk for the next opener
    with Session("chat", tmp_path) as again:
        assert again.get_items() == [{"role": "user", "content": "hi"}]


def test_session_close_leaves_a_store_passed_in_open(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with Session("chat", store) as session:
        session.add_items([{"role": "user", "content": "hi"}])
    assert store.session_get("default", "chat", None) == [{"role": "user", "content": "hi"}]
    store.close()


def test_async_session_close_and_context_manager(tmp_path: Path) -> None:
    async def run() -> AsyncSession:
        async with AsyncSession("chat", tmp_path) as session:
            await session.add_items([{"role": "user", "content": "hi"}])
            assert await session.get_items() == [{"role": "user", "content": "hi"}]
        return session

    session = asyncio.run(run())
    with pytest.raises(StoreError, match="closed"):
        session.store.session_get("default", "chat", None)
