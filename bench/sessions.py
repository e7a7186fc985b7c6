"""Sessions: engramdb against the OpenAI Agents SDK's SQLiteSession, same machine, same run.

Both are used through their async Agents SDK interface, each on its own database file in a
temporary directory (SQLiteSession with its defaults; engramdb with its defaults). A third
row per operation is the limit: the same operation as plain ``sqlite3`` statements, called
directly (no thread hop, no checks), on a table like engramdb's ``session_items`` (WAL,
``synchronous=NORMAL``), items encoded and decoded with orjson.

Goals (issue 14): every operation at least 1x SQLiteSession; ``pop_item`` and
``get_items(limit=50)`` at least 5x.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from agents import SQLiteSession

from bench.common import console, machine, today, write_results
from engramdb.integrations.openai_agents import EngramSession

ITEM = {"role": "user", "content": "What is the weather like in Paris today? " * 3}
BATCH = [dict(ITEM, n=n) for n in range(100)]
GOALS = {"pop_item on 10k": 5.0, "get_items(limit=50) of 10k": 5.0}
"""Minimum ratio to SQLiteSession per operation; 1x for the others."""


class RawSession:
    """The operations as plain sqlite3 statements on one connection: the ceiling."""

    def __init__(self, session_id: str, path: Path) -> None:
        self.session_id = session_id
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS session_items (namespace TEXT NOT NULL, session_id TEXT "
            "NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL, "
            "PRIMARY KEY (namespace, session_id, seq)) WITHOUT ROWID"
        )

    async def add_items(self, items: list[dict[str, Any]]) -> None:
        conn, sid = self.conn, self.session_id
        conn.execute("BEGIN IMMEDIATE")
        (seq,) = conn.execute(
            "SELECT coalesce(max(seq), -1) + 1 FROM session_items WHERE namespace = 'default' "
            "AND session_id = ?",
            (sid,),
        ).fetchone()
        conn.executemany(
            "INSERT INTO session_items VALUES ('default', ?, ?, ?, 0)",
            [(sid, seq + n, orjson.dumps(item).decode()) for n, item in enumerate(items)],
        )
        conn.execute("COMMIT")

    async def get_items(self, limit: int | None = None) -> list[Any]:
        query = "SELECT data FROM session_items WHERE namespace = 'default' AND session_id = ? "
        if limit is None:
            rows = self.conn.execute(query + "ORDER BY seq", (self.session_id,)).fetchall()
        else:
            rows = self.conn.execute(
                query + "ORDER BY seq DESC LIMIT ?", (self.session_id, limit)
            ).fetchall()
            rows.reverse()
        return [orjson.loads(data) for (data,) in rows]

    async def pop_item(self) -> Any:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "DELETE FROM session_items WHERE namespace = 'default' AND session_id = ?1 AND seq = "
            "(SELECT max(seq) FROM session_items WHERE namespace = 'default' AND session_id = ?1)"
            " RETURNING data",
            (self.session_id,),
        ).fetchone()
        conn.execute("COMMIT")
        return None if row is None else orjson.loads(row[0])


async def ops_per_s(op: Callable[[], Awaitable[Any]], seconds: float, min_runs: int = 30) -> float:
    loop = asyncio.get_running_loop()
    runs, start = 0, loop.time()
    while runs < min_runs or loop.time() - start < seconds:
        await op()
        runs += 1
    return runs / (loop.time() - start)


async def pops_per_s(session: Any, seconds: float, chunk: int = 500, min_runs: int = 30) -> float:
    """Pops timed directly, in rounds: add ``chunk`` items (not timed), then pop them (timed),
    so every pop meets a session of 10,000 to 10,000 + ``chunk`` items."""
    loop = asyncio.get_running_loop()
    runs, spent = 0, 0.0
    while runs < min_runs or spent < seconds:
        await session.add_items([dict(ITEM, n=n) for n in range(chunk)])
        start, popped = loop.time(), 0
        while popped < chunk and (
            runs + popped < min_runs or spent + loop.time() - start < seconds
        ):
            await session.pop_item()
            popped += 1
        spent += loop.time() - start
        runs += popped
        while popped < chunk:  # put the session back at 10,000 items
            await session.pop_item()
            popped += 1
    return runs / spent


async def fill(session: Any, n: int) -> None:
    for start in range(0, n, 500):
        await session.add_items([dict(ITEM, n=i) for i in range(start, min(n, start + 500))])


async def measure(make: Callable[[str], Any], seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}
    s = make("add-one")
    results["add_items (1 item)"] = await ops_per_s(lambda: s.add_items([ITEM]), seconds)
    s = make("add-batch")
    results["add_items (batch of 100)"] = await ops_per_s(lambda: s.add_items(BATCH), seconds)
    big = make("big")
    await fill(big, 10_000)
    results["get_items(limit=50) of 10k"] = await ops_per_s(
        lambda: big.get_items(limit=50), seconds
    )
    thousand = make("thousand")
    await fill(thousand, 1_000)
    results["get_items() of 1,000"] = await ops_per_s(thousand.get_items, seconds)

    results["pop_item on 10k"] = await pops_per_s(big, seconds)
    return results


async def run(seconds: float = 2.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ours = await measure(lambda sid: EngramSession(sid, Path(tmp) / "engram"), seconds)
        theirs = await measure(lambda sid: SQLiteSession(sid, Path(tmp) / "sdk.db"), seconds)
        raw = await measure(lambda sid: RawSession(sid, Path(tmp) / "raw.db"), seconds)
    rows = []
    for op in ours:
        ratio = ours[op] / theirs[op]
        goal = GOALS.get(op, 1.0)
        rows.append(
            {
                "op": op,
                "engramdb_ops_per_s": round(ours[op], 1),
                "sqlitesession_ops_per_s": round(theirs[op], 1),
                "raw_sqlite3_ops_per_s": round(raw[op], 1),
                "ratio": round(ratio, 2),
                "goal": goal,
                "goal_met": ratio >= goal,
                "share_of_raw": round(ours[op] / raw[op], 2),
            }
        )
    return {"rows": rows, "date": today(), "machine": machine()}


def main(seconds: float = 2.0) -> None:
    console.print("[bold]sessions[/]: engramdb vs agents.SQLiteSession vs raw sqlite3")
    payload = asyncio.run(run(seconds))
    write_results(
        "sessions",
        payload,
        [
            "op",
            "engramdb ops/s",
            "SQLiteSession ops/s",
            "raw sqlite3 ops/s",
            "ratio (goal)",
            "engramdb / raw",
        ],
        [
            [
                r["op"],
                f"{r['engramdb_ops_per_s']:,.0f}",
                f"{r['sqlitesession_ops_per_s']:,.0f}",
                f"{r['raw_sqlite3_ops_per_s']:,.0f}",
                f"{r['ratio']:.2f}× (≥ {r['goal']:g}×{'' if r['goal_met'] else ', missed'})",
                f"{r['share_of_raw']:.2f}",
            ]
            for r in payload["rows"]
        ],
        "Sessions: engramdb vs OpenAI Agents SDK SQLiteSession, and raw sqlite3",
        notes="engramdb and SQLiteSession through the async Agents SDK Session interface, each "
        "on its own file, defaults on both sides. raw sqlite3: the same operation as plain "
        "sqlite3 statements called directly (no thread hop, no input checks) on a table like "
        "engramdb's session_items (WAL, synchronous=NORMAL), orjson for the JSON: the limit "
        "engramdb could approach. ratio = engramdb / SQLiteSession. pop_item is "
        "timed directly in rounds of 500 (500 items added untimed, then popped), so each pop "
        "meets a session of 10,000 to 10,500 items. "
        "Reproduce: `make bench` or `.venv/bin/python -m bench sessions`.",
    )


if __name__ == "__main__":
    main()
