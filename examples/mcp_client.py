"""An MCP client session with engramdb's MCP server: the official `mcp` SDK's client launches
`engramdb mcp` over stdio (as Claude Desktop, Cursor or Codex would), lists the tools,
remembers something and recalls it.

    pip install 'engramdb[mcp]'
    python examples/mcp_client.py [DATA_DIR]
"""

from __future__ import annotations

import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from engramdb.integrations.mcp import tool_result_json


async def main(data_dir: str) -> None:
    server = StdioServerParameters(
        command=sys.executable,  # or "engramdb" where it is on the PATH
        args=["-m", "engramdb", "mcp", "--store", data_dir],
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))

        await session.call_tool(
            "remember", {"content": "Alice prefers window seats", "user_id": "alice"}
        )
        result = await session.call_tool("recall", {"query": "seat", "user_id": "alice"})
        for hit in tool_result_json(result)["hits"]:
            print(f"recalled: {hit['content']} (score {hit['score']:.2f})")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else ".engramdb")
