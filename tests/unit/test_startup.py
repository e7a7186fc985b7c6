"""Issue 14, startup: importing engramdb (and its command line) loads no heavy module; the
memory facade, the server and the integrations load when first used. Behaviour, not timing:
which modules a fresh interpreter has loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["numpy", "fastapi", "openai", "agents", "mcp", "strands", "langgraph"]


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has in sys.modules after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    found: list[str] = json.loads(out.splitlines()[-1])
    return found


def test_issue14_startup_import_engramdb_loads_no_heavy_module() -> None:
    assert loaded_after("import engramdb") == []
    # sessions and the store are the light path an agent uses first
    assert loaded_after("from engramdb import Session, AsyncSession, open_store") == []


def test_issue14_startup_the_command_line_module_loads_no_heavy_module() -> None:
    assert loaded_after("import engramdb.cli") == []


def test_issue14_startup_memory_still_loads_on_first_use() -> None:
    # the lazy names resolve to the real classes (and only then pull in numpy)
    code = (
        "import engramdb\n"
        "from engramdb.memory import Memory as M\n"
        "assert engramdb.Memory is M and engramdb.RecallSettings.__name__ == 'RecallSettings'"
    )
    assert loaded_after(code) == ["numpy"]
