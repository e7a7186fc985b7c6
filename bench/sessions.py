"""Sessions: engramdb against the OpenAI Agents SDK's SQLiteSession, same machine, same run.

Both are used through their async Agents SDK interface, each on its own database file in a
temporary directory (SQLiteSession with its defaults; engramdb with its defaults).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents import SQLiteSession

from bench.common import console, machine, today, write_results
from engramdb.integrations.openai_agents import EngramSession

ITEM = {"role": "user", "content": "What is the weather like in Paris today? " * 3}
BATCH = [dict(ITEM, n=n) for n in range(100)]


async def ops_per_s(op: Callable[[], Awaitable[Any]], seconds: float, min_runs: int = 30) -> float:
    loop = asyncio.get_running_loop()
    runs, start = 0, loop.time()
    while runs < min_runs or loop.time() - start < seconds:
        await op()
        runs += 1
    return runs / (loop.time() - start)


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

    async def pop_and_refill() -> None:
        # pop, then put one back so the session stays at 10k items for every pop
        await big.pop_item()
        await big.add_items([ITEM])

    pop_rate = await ops_per_s(pop_and_refill, seconds)
    add_rate = results["add_items (1 item)"]
    # time(pop) = time(pop + add) - time(add)
    results["pop_item on 10k"] = 1 / max(1e-9, 1 / pop_rate - 1 / add_rate)
    return results


async def run(seconds: float = 2.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ours = await measure(lambda sid: EngramSession(sid, Path(tmp) / "engram"), seconds)
        theirs = await measure(lambda sid: SQLiteSession(sid, Path(tmp) / "sdk.db"), seconds)
    rows = [
        {
            "op": op,
            "engramdb_ops_per_s": round(ours[op], 1),
            "sqlitesession_ops_per_s": round(theirs[op], 1),
            "ratio": round(ours[op] / theirs[op], 2),
        }
        for op in ours
    ]
    return {"rows": rows, "date": today(), "machine": machine()}


def main(seconds: float = 2.0) -> None:
    console.print("[bold]sessions[/]: engramdb vs agents.SQLiteSession")
    payload = asyncio.run(run(seconds))
    write_results(
        "sessions",
        payload,
        ["op", "engramdb ops/s", "SQLiteSession ops/s", "ratio"],
        [
            [
                r["op"],
                f"{r['engramdb_ops_per_s']:,.0f}",
                f"{r['sqlitesession_ops_per_s']:,.0f}",
                f"{r['ratio']:.2f}×",
            ]
            for r in payload["rows"]
        ],
        "Sessions: engramdb vs OpenAI Agents SDK SQLiteSession",
        notes="Both through the async Agents SDK Session interface, each on its own file, "
        "defaults on both sides. pop_item is measured as (pop + add one) minus add one so the "
        "session stays at 10,000 items. "
        "Reproduce: `make bench` or `.venv/bin/python -m bench sessions`.",
    )


if __name__ == "__main__":
    main()
