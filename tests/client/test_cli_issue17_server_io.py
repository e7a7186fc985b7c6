"""Issue 17 item 2: ``engramdb export`` / ``import`` with ``--url`` (and the clients'
``export`` / ``export_file`` / ``import_file``) against the live server."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from engramdb import AsyncClient, Client, Memory, open_store
from engramdb.cli import app
from engramdb.errors import ConflictError, InvalidInputError
from tests.live_server import LiveServer

runner = CliRunner()
ENV = {"ENGRAMDB_EMBEDDER": "none"}


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _content(records: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    kept = [r for r in records if r["type"] not in ("engramdb-export", "namespace", "end")]
    return [(r["type"], r.get("id") or r.get("session_id") or r.get("data"), r.get("history"))
            for r in kept]  # fmt: skip


def test_issue17_server_export_import_cli_with_url(tmp_path: Path, live_server: LiveServer) -> None:
    local = tmp_path / "local"
    mem = Memory(open_store(local), embedder="none")
    first = mem.remember("Ada drinks green tea", user_id="ada")
    mem.update(first.id, content="Ada drinks oolong tea")
    mem.remember("Bob waters the garden", user_id="bob")
    mem.learn("ada", "likes", "oolong tea")
    mem.store.close()
    exported = tmp_path / "local.jsonl"
    result = runner.invoke(app, ["export", str(exported), "-d", str(local)], env=ENV)
    assert result.exit_code == 0, result.output

    key = live_server.register("cli-io")
    remote = ["--url", live_server.url, "--api-key", key]
    result = runner.invoke(app, ["import", str(exported), *remote], env=ENV)
    assert result.exit_code == 0, result.output
    assert "imported 3 memories" in result.output  # 2 + the fact's
    again = runner.invoke(app, ["import", str(exported), *remote], env=ENV)
    assert again.exit_code == 0 and "imported 0 memories" in again.output

    back = tmp_path / "back.jsonl"
    result = runner.invoke(app, ["export", str(back), *remote], env=ENV)
    assert result.exit_code == 0, result.output
    assert _content(_records(back)) == _content(_records(exported))
    stdout = runner.invoke(app, ["export", *remote], env=ENV)
    assert stdout.exit_code == 0
    assert [json.loads(line)["type"] for line in stdout.stdout.splitlines()][-1] == "end"

    # a bad line: exit 1 naming it, nothing stored on the server
    other = live_server.register("cli-io-bad")
    lines = exported.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:2], "{oops", *lines[2:]]) + "\n")
    result = runner.invoke(
        app, ["import", str(bad), "--url", live_server.url, "--api-key", other], env=ENV
    )
    assert result.exit_code == 1 and ":3 is not valid JSON" in result.output
    with Client(live_server.url, other) as client:
        assert client.stats()["memories"] == 0

    # usage: the key chooses the namespace
    for argv in (["export", "--all-namespaces"], ["import", str(exported), "--all-namespaces"]):
        assert runner.invoke(app, [*argv, *remote], env=ENV).exit_code == 2
    assert runner.invoke(app, ["import", str(exported), *remote, "-n", "x"]).exit_code == 2


def test_issue17_server_export_import_clients(tmp_path: Path, live_server: LiveServer) -> None:
    source, target = live_server.register("io-src"), live_server.register("io-dst")
    steps: list[tuple[str, int, int | None]] = []
    with Client(live_server.url, source) as client:
        client.remember("Ada drinks oolong tea", user_id="ada")
        client.learn("ada", "likes", "tea")
        records = list(client.export(with_vectors=True))
        assert records[0]["type"] == "engramdb-export"
        assert all("embedding" in r for r in records if r["type"] == "memory")
        served = tmp_path / "served.jsonl"
        counts = client.export_file(served, progress=lambda *a: steps.append(a))
    assert counts["memory"] == 2 and steps[-1] == ("exporting", 3, 3)  # 2 memories + 1 fact

    local = Memory(open_store(tmp_path / "local"), embedder="none")
    local.remember("Bob waters the garden", user_id="bob")
    local.learn("bob", "has", "a garden")
    path = tmp_path / "local.jsonl"
    local.export_file(path)
    local.store.close()

    async def run() -> tuple[Any, list[dict[str, Any]]]:
        async with AsyncClient(live_server.url, target) as aclient:
            report = await aclient.import_file(path)
            out = io.BytesIO()
            await aclient.export_file(out)
            bad = io.BytesIO(b'{"type": "engramdb-export", "version": 99}\n')
            try:
                await aclient.import_file(bad)
            except InvalidInputError as exc:
                assert "version 99" in str(exc)
            else:  # pragma: no cover - the assertion below reports it
                raise AssertionError("a bad file was accepted")
            # ids are kept: another namespace's ids are a conflict, and nothing is stored
            try:
                await aclient.import_file(served)
            except ConflictError:
                pass
            else:  # pragma: no cover
                raise AssertionError("another namespace's ids were imported")
            return report, [json.loads(line) for line in out.getvalue().splitlines()]

    report, exported = asyncio.run(run())
    assert report.created["memories"] == 2 and report.created["triples"] == 1
    assert _content(exported) == _content(_records(path))
    with Client(live_server.url, target) as client:
        assert client.stats()["memories"] == 2
        sent: list[tuple[str, int, int | None]] = []
        again = client.import_file(path, progress=lambda *a: sent.append(a))
    assert again.skipped["memories"] == 2 and sent[-1][1] == path.stat().st_size
