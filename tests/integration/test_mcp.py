"""The MCP server (engramdb.integrations.mcp), driven by the official SDK's own client: over
stdio (`engramdb mcp` as a subprocess) and over streamable HTTP (`/mcp` of a live
`engramdb serve`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client import streamable_http
from mcp.client.stdio import stdio_client

from engramdb.integrations.mcp import tool_result_json, tool_result_text
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer, free_port, start_live_server

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"remember", "recall", "forget", "learn", "facts", "get_context", "add_messages"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAMDB_")}
    env.update(extra)
    return env


@asynccontextmanager
async def stdio_session(*args: str, **env: str) -> Any:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "engramdb", "mcp", *args],
        env=_env(**env),
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, key: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if hasattr(streamable_http, "streamable_http_client"):  # mcp >= 1.24
        async with (
            httpx.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http.streamable_http_client(f"{url}/mcp", http_client=http) as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            yield session
        return
    async with (
        streamable_http.streamablehttp_client(f"{url}/mcp", headers=headers) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything inside it (exception groups, causes)."""
    out, todo = [], [exc]
    while todo:
        e = todo.pop()
        out.append(e)
        todo.extend(getattr(e, "exceptions", ()))
        if e.__cause__ is not None:
            todo.append(e.__cause__)
    return out


def run(
    open_session: Callable[[], AbstractAsyncContextManager[Any]],
    body: Callable[[ClientSession], Awaitable[Any]],
) -> Any:
    async def main() -> Any:
        async with open_session() as session:
            return await body(session)

    return anyio.run(main)


def local(tmp_path: Path) -> Callable[[], AbstractAsyncContextManager[Any]]:
    return lambda: stdio_session("--store", str(tmp_path / "data"), "--embedder", "hashing")


# -- stdio, embedded store --------------------------------------------------------------------
def test_issue12_mcp_stdio_lists_tools_with_schemas_and_annotations(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> Any:
        return (await s.list_tools()).tools

    tools = {t.name: t for t in run(local(tmp_path), body)}
    assert set(tools) == TOOLS
    remember = tools["remember"]
    assert remember.inputSchema["required"] == ["content"]
    props = remember.inputSchema["properties"]
    assert set(props) == {"content", "user_id", "tags", "metadata", "importance"}
    assert "ctx" not in props
    assert props["content"]["description"]
    importance = props["importance"]["anyOf"][0]
    assert (importance["minimum"], importance["maximum"]) == (0.0, 1.0)
    assert tools["recall"].inputSchema["properties"]["limit"]["maximum"] == 100
    assert set(tools["add_messages"].inputSchema["required"]) == {"messages", "session_id"}
    for name in ("recall", "facts", "get_context"):
        assert tools[name].annotations.readOnlyHint is True, name
        assert tools[name].annotations.destructiveHint is False, name
    assert tools["forget"].annotations.destructiveHint is True
    assert tools["forget"].annotations.readOnlyHint is False
    assert tools["remember"].annotations.readOnlyHint is False
    assert tools["remember"].annotations.destructiveHint is False
    assert all(t.description and len(t.description) > 40 for t in tools.values())


def test_issue12_mcp_stdio_calls_each_tool(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        out: dict[str, Any] = {}
        call = s.call_tool
        out["remember"] = await call(
            "remember",
            {"content": "Alice prefers window seats", "user_id": "alice", "tags": ["travel"]},
        )
        await call("remember", {"content": "Bob likes tea", "user_id": "bob"})
        out["recall"] = await call("recall", {"query": "window seats", "user_id": "alice"})
        out["recall_bob"] = await call("recall", {"query": "window seats", "user_id": "bob"})
        out["learn"] = await call(
            "learn", {"subject": "alice", "predicate": "lives_in", "object": "Lisbon"}
        )
        out["facts"] = await call("facts", {"subject": "alice"})
        out["context"] = await call("get_context", {"query": "seats", "user_id": "alice"})
        out["dry"] = await call("forget", {"user_id": "alice"})
        out["after_dry"] = await call("recall", {"query": "window seats", "user_id": "alice"})
        out["forget"] = await call("forget", {"user_id": "alice", "dry_run": False})
        out["after"] = await call("recall", {"query": "window seats", "user_id": "alice"})
        return out

    out = run(local(tmp_path), body)
    assert not any(r.isError for r in out.values()), {
        k: tool_result_text(v) for k, v in out.items()
    }
    stored = tool_result_json(out["remember"])
    assert stored["id"].startswith("mem") and stored["tags"] == ["travel"]
    hits = tool_result_json(out["recall"])["hits"]
    assert [h["id"] for h in hits] == [stored["id"]]
    assert hits[0]["content"] == "Alice prefers window seats"
    assert hits[0]["score"] > 0 and hits[0]["created_at"]
    bob_hits = tool_result_json(out["recall_bob"])["hits"]
    assert [h["content"] for h in bob_hits if h["user_id"] != "bob"] == []
    assert stored["id"] not in [h["id"] for h in bob_hits]
    fact = tool_result_json(out["learn"])
    assert (fact["subject"], fact["object"], fact["current"]) == ("alice", "Lisbon", True)
    assert [f["id"] for f in tool_result_json(out["facts"])["facts"]] == [fact["id"]]
    assert "Alice prefers window seats" in tool_result_text(out["context"])
    dry = tool_result_json(out["dry"])
    assert dry == {"dry_run": True, "ids": [stored["id"]], "count": 1}
    assert len(tool_result_json(out["after_dry"])["hits"]) == 1  # a dry run deletes nothing
    assert tool_result_json(out["forget"])["dry_run"] is False
    assert tool_result_json(out["after"])["hits"] == []


def test_issue12_mcp_stdio_bad_arguments_are_tool_errors(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        call = s.call_tool
        return {
            "missing": await call("remember", {}),
            "type": await call("recall", {"query": "x", "limit": "many"}),
            "range": await call("remember", {"content": "x", "importance": 7}),
            "unknown_id": await call("forget", {"memory_id": "mem_nope"}),
            "no_scope": await call("forget", {}),
            "bad_date": await call("facts", {"as_of": "not a date"}),
            "no_llm": await call(
                "add_messages", {"messages": [{"role": "user", "content": "hi"}], "session_id": "s"}
            ),
            "still_ok": await call("remember", {"content": "server still up"}),
        }

    out = run(local(tmp_path), body)
    for name in ("missing", "type", "range", "unknown_id", "no_scope", "bad_date", "no_llm"):
        assert out[name].isError, name
    assert "content" in tool_result_text(out["missing"])
    assert "not_found" in tool_result_text(out["unknown_id"])
    assert "mem_nope" in tool_result_text(out["unknown_id"])
    assert "scope" in tool_result_text(out["no_scope"])
    assert "as_of" in tool_result_text(out["bad_date"])
    assert "LLM" in tool_result_text(out["no_llm"])
    assert not out["still_ok"].isError


def test_issue12_mcp_stdio_resources_say_not_produced_yet(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> Any:
        templates = (await s.list_resource_templates()).resourceTemplates
        read = await s.read_resource("memory://alice/MEMORY.md")  # type: ignore[arg-type]
        return templates, read

    templates, read = run(local(tmp_path), body)
    assert {t.uriTemplate for t in templates} == {
        "memory://{scope}/memory_summary.md",
        "memory://{scope}/MEMORY.md",
    }
    text = read.contents[0].text
    assert "Not produced yet" in text and "alice" in text


def test_issue12_mcp_stdio_remote_server_down_is_a_tool_error() -> None:
    port = free_port()  # nothing listens there

    async def body(s: ClientSession) -> Any:
        return await s.call_tool("recall", {"query": "anything"})

    result = run(
        lambda: stdio_session("--url", f"http://127.0.0.1:{port}", "--api-key", "egm_x"), body
    )
    assert result.isError
    assert "cannot connect to the engramdb server" in tool_result_text(result)


def test_issue12_mcp_stdio_add_messages_extracts_with_a_model(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.answer(
        {
            "memories": [
                {
                    "type": "fact",
                    "content": "Carol is allergic to peanuts",
                    "about": "user",
                    "occurred_at": None,
                    "source_seqs": [0],
                    "importance": 0.9,
                }
            ],
            "triples": [],
        }
    )

    async def body(s: ClientSession) -> Any:
        added = await s.call_tool(
            "add_messages",
            {
                "messages": [{"role": "user", "content": "I'm allergic to peanuts"}],
                "session_id": "chat-1",
                "user_id": "carol",
            },
        )
        found = await s.call_tool("recall", {"query": "peanuts", "user_id": "carol"})
        return added, found

    open_session = lambda: stdio_session(  # noqa: E731
        "--store",
        str(tmp_path / "data"),
        "--embedder",
        "hashing",
        "--llm",
        "openai:fake-model",
        ENGRAMDB_LLM_BASE_URL=fake_openai.base_url,
        ENGRAMDB_LLM_API_KEY="test",
    )
    added, found = run(open_session, body)
    assert not added.isError, tool_result_text(added)
    report = tool_result_json(added)
    assert [a["action"] for a in report["applied"]] == ["add"]
    hits = tool_result_json(found)["hits"]
    assert [h["content"] for h in hits] == ["Carol is allergic to peanuts"]


# -- streamable HTTP in `engramdb serve` ------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    where = tmp_path_factory.mktemp("mcp-server")
    live = start_live_server(str(where / "data"), log_path=where / "server.log")
    yield live
    live.stop()


def test_issue12_mcp_http_tools_scoped_to_the_key_namespace(server: LiveServer) -> None:
    key_a, key_b = server.register("a"), server.register("b")

    async def as_a(s: ClientSession) -> Any:
        tools = (await s.list_tools()).tools
        stored = await s.call_tool("remember", {"content": "the launch code is 1234"})
        learned = await s.call_tool("learn", {"subject": "x", "predicate": "is", "object": "y"})
        found = await s.call_tool("recall", {"query": "launch code"})
        return tools, stored, learned, found

    async def as_b(s: ClientSession) -> Any:
        found = await s.call_tool("recall", {"query": "launch code"})
        facts = await s.call_tool("facts", {})
        stored_id = tool_result_json(stored)["id"]
        forget = await s.call_tool("forget", {"memory_id": stored_id})
        return found, facts, forget

    tools, stored, learned, found_a = run(lambda: http_session(server.url, key_a), as_a)
    assert {t.name for t in tools} == TOOLS
    assert not stored.isError and not learned.isError, tool_result_text(stored)
    assert [h["content"] for h in tool_result_json(found_a)["hits"]] == ["the launch code is 1234"]
    found_b, facts_b, forget_b = run(lambda: http_session(server.url, key_b), as_b)
    assert tool_result_json(found_b)["hits"] == []
    assert tool_result_json(facts_b)["facts"] == []
    assert forget_b.isError and "not_found" in tool_result_text(forget_b)
    # still there for A
    again = run(
        lambda: http_session(server.url, key_a),
        lambda s: s.call_tool("recall", {"query": "launch code"}),
    )
    assert len(tool_result_json(again)["hits"]) == 1
    # the memory is the same one the REST API sees in A's namespace
    r = httpx.get(f"{server.url}/v1/memories", headers={"X-API-Key": key_a})
    assert "the launch code is 1234" in [m["content"] for m in r.json()["memories"]]


def test_issue12_mcp_http_needs_a_valid_namespace_key(server: LiveServer) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    none = httpx.post(f"{server.url}/mcp", json=init, headers=headers)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    wrong = httpx.post(f"{server.url}/mcp", json=init, headers={**headers, "X-API-Key": "egm_no"})
    assert wrong.status_code == 401
    admin = httpx.post(
        f"{server.url}/mcp", json=init, headers={**headers, "X-API-Key": server.admin_key}
    )
    assert admin.status_code == 403
    key = server.register("ok")
    ok = httpx.post(
        f"{server.url}/mcp", json=init, headers={**headers, "Authorization": f"Bearer {key}"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "engramdb"
    # not part of the REST API's OpenAPI schema
    assert "/mcp" not in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_issue12_mcp_http_revoked_key_is_refused(server: LiveServer) -> None:
    key = server.register("soon-revoked")
    key_id = httpx.get(f"{server.url}/v1/keys", headers={"X-API-Key": key}).json()["keys"][0]["id"]

    async def body(s: ClientSession) -> Any:
        ok = await s.call_tool("remember", {"content": "before revocation"})
        assert not ok.isError, tool_result_text(ok)
        r = httpx.delete(f"{server.url}/v1/keys/{key_id}", headers={"X-API-Key": server.admin_key})
        assert r.status_code == 200, r.text
        return await s.call_tool("recall", {"query": "revocation"})

    # the next request of the open session is refused with HTTP 401 (the SDK's client
    # reports it), and so is a new session
    with pytest.raises(BaseException) as refused:
        run(lambda: http_session(server.url, key), body)
    assert any("401" in str(e) for e in _chain(refused.value)), refused.value
    with pytest.raises(BaseException) as refused_again:
        run(lambda: http_session(server.url, key), lambda s: s.list_tools())
    assert any("401" in str(e) for e in _chain(refused_again.value))
    r = httpx.post(
        f"{server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_issue12_mcp_stdio_remote_revoked_key_is_a_tool_error(server: LiveServer) -> None:
    key = server.register("remote")
    key_id = httpx.get(f"{server.url}/v1/keys", headers={"X-API-Key": key}).json()["keys"][0]["id"]

    async def body(s: ClientSession) -> Any:
        ok = await s.call_tool(
            "remember", {"content": "Dana takes the 8:15 train", "tags": ["commute"]}
        )
        found = await s.call_tool("recall", {"query": "train", "tags": ["commute"]})
        block = await s.call_tool("get_context", {"query": "train"})
        httpx.delete(f"{server.url}/v1/keys/{key_id}", headers={"X-API-Key": server.admin_key})
        after = await s.call_tool("recall", {"query": "train"})
        return ok, found, block, after

    ok, found, block, after = run(
        lambda: stdio_session("--url", server.url, "--api-key", key, ENGRAMDB_STORE="/nonexistent"),
        body,
    )
    assert not ok.isError, tool_result_text(ok)
    assert [h["content"] for h in tool_result_json(found)["hits"]] == ["Dana takes the 8:15 train"]
    assert tool_result_json(ok)["tags"] == ["commute"]
    assert "Dana takes the 8:15 train" in tool_result_text(block)
    assert after.isError
    assert "revoked" in tool_result_text(after)


# -- config snippets and the example -----------------------------------------------------------
def _blocks(markdown: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", markdown, re.S)


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(heading)
    rest = markdown[start + len(heading) :]
    level = heading.split(" ")[0]
    nxt = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def _launches_engramdb_mcp(command: str, args: list[str]) -> None:
    assert Path(command).name == "engramdb" or command.endswith("engramdb"), command
    assert args[0] == "mcp", args


def test_issue12_mcp_config_snippets_parse_and_launch_engramdb_mcp() -> None:
    doc = (ROOT / "docs/integrations/mcp.md").read_text()
    claude = json.loads(_blocks(_section(doc, "## Claude Desktop"), "json")[0])
    cursor = json.loads(_blocks(_section(doc, "## Cursor"), "json")[0])
    codex = tomllib.loads(_blocks(_section(doc, "## Codex"), "toml")[0])
    for server in (claude["mcpServers"]["engramdb"], cursor["mcpServers"]["engramdb"]):
        _launches_engramdb_mcp(server["command"], server["args"])
        assert "--store" in server["args"]
    codex_server = codex["mcp_servers"]["engramdb"]
    _launches_engramdb_mcp(codex_server["command"], codex_server["args"])
    assert "ENGRAMDB_STORE" in codex_server["env"]
    # the README's MCP subsection carries a snippet that parses the same way
    readme = _section((ROOT / "README.md").read_text(), "### MCP")
    snippet = json.loads(_blocks(readme, "json")[0])
    _launches_engramdb_mcp(
        snippet["mcpServers"]["engramdb"]["command"], snippet["mcpServers"]["engramdb"]["args"]
    )


def test_issue12_mcp_example_client_session_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/mcp_client.py"), str(tmp_path / "data")],
        cwd=ROOT,
        env=_env(ENGRAMDB_EMBEDDER="hashing"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "recalled: Alice prefers window seats" in done.stdout


def test_issue12_mcp_http_quota_is_a_tool_error(tmp_path: Path) -> None:
    live = start_live_server(str(tmp_path / "data"), max_memories=1)
    try:
        key = live.register("small")

        async def body(s: ClientSession) -> Any:
            first = await s.call_tool("remember", {"content": "one memory fits"})
            second = await s.call_tool("remember", {"content": "a second one does not"})
            found = await s.call_tool("recall", {"query": "memory"})
            return first, second, found

        first, second, found = run(lambda: http_session(live.url, key), body)
    finally:
        live.stop()
    assert not first.isError, tool_result_text(first)
    assert second.isError
    assert "quota_exceeded" in tool_result_text(second)
    assert [h["content"] for h in tool_result_json(found)["hits"]] == ["one memory fits"]


def test_issue12_mcp_missing_extra_is_a_one_line_error() -> None:
    code = (
        "import sys; sys.modules['mcp'] = None; sys.argv = ['engramdb', 'mcp']; "
        "from engramdb.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "pip install 'engramdb[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_issue13_mcp_resources_serve_the_scope_memory_md_and_summary(tmp_path: Path) -> None:
    from urllib.parse import quote

    from engramdb import Memory, Session, open_store
    from engramdb.consolidate import consolidate
    from engramdb.llm.fake import ScriptedLLM

    scope = "/home/dev/app"
    memory_md = "# Project memory\n\n- run `make test` before committing"
    trace = "## Task\nFix the build.\n\n## Outcome\nFixed.\n\n## Learnings\n- run `make test`"
    mem = Memory(open_store(tmp_path / "data"), embedder="hashing")
    Session("s1", mem.store).add_items([{"role": "user", "content": "the build fails"}])
    llm = ScriptedLLM(
        [{"trace_memory": trace, "summary": "fixed the build"}, {"memory_md": memory_md}]
    )
    result = consolidate(mem, llm, scope=scope, root=tmp_path / "m", idle_seconds=0)
    assert result.memory_md is not None and result.memory_md.status == "consolidated"
    mem.close()
    encoded = quote(scope, safe="")

    async def body(s: ClientSession) -> Any:
        md = await s.read_resource(f"memory://{encoded}/MEMORY.md")  # type: ignore[arg-type]
        summary = await s.read_resource(f"memory://{encoded}/memory_summary.md")  # type: ignore[arg-type]
        other = await s.read_resource("memory://elsewhere/MEMORY.md")  # type: ignore[arg-type]
        block = await s.call_tool("get_context", {"query": "build", "scope": scope})
        return md, summary, other, block

    md, summary, other, block = run(local(tmp_path), body)
    assert md.contents[0].text == memory_md
    assert "fixed the build" in summary.contents[0].text and "s1" in summary.contents[0].text
    assert "Not produced yet" in other.contents[0].text
    text = tool_result_text(block)
    assert not block.isError and "MEMORY.md" in text and "make test" in text
