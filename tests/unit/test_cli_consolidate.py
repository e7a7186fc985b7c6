"""Issue 13 part 4: the consolidation commands (``engramdb consolidate``, ``traces``,
``memory-md``, ``memory-summary``) against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import Session, cli, open_store
from engramdb.cli import app
from tests.fake_openai import FakeOpenAI

runner = CliRunner()
SCOPE = "/home/dev/app"
TRACE = "## Task\nFix the build.\n\n## Outcome\nFixed.\n\n## Learnings\n- run `make test`\n"
MD = "# Project memory\n\n## Build\n- run `make test` before committing"


@pytest.fixture
def data(tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with one finished session; the model is the fake server."""
    path = tmp_path / "data"
    store = open_store(path)
    Session("s1", store).add_items([{"role": "user", "content": "the build fails"}])
    store.close()
    for name in ("ENGRAMDB_LLM", "ENGRAMDB_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "x")
    monkeypatch.setenv("ENGRAMDB_MEMORY_ROOT", str(tmp_path / "memories"))
    monkeypatch.setattr(cli.console, "_width", 400)
    return path


def cli_run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_issue13_cli_consolidate_once_status_and_files(
    data: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    d = ["-d", str(data)]
    code, out = cli_run("consolidate", "--scope", SCOPE, "--dry-run", "--idle-seconds", "0", *d)
    assert code == 0, out
    assert "would summarize 1 session(s) (s1)" in out and "nothing sent" in out
    assert fake_openai.completions == []

    fake_openai.answer({"trace_memory": TRACE, "summary": "fixed the build"}, usage=(100, 20))
    fake_openai.answer({"memory_md": MD, "skills": []}, usage=(150, 30))
    code, out = cli_run(
        "consolidate", "--scope", SCOPE, "--once", "--idle-seconds", "0",
        "--llm", "openai:fake-model", *d,
    )  # fmt: skip
    assert code == 0, out
    assert "1 session(s) to summarize" in out and "input tokens" in out  # the estimate first
    assert "1 trace(s) written" in out and "MEMORY.md consolidated (v1)" in out
    assert "2 call(s), 250 input + 50 output tokens" in out
    files = sorted(str(p.relative_to(tmp_path / "memories")).split("/", 1)[1]
                   for p in (tmp_path / "memories").rglob("*.md"))  # fmt: skip
    assert files == ["MEMORY.md", "memory_summary.md", "trace_summaries/s1_fixed-the-build.md"]

    code, out = cli_run("consolidate", "--status", "--json", *d)
    assert code == 0, out
    status = json.loads(out)
    [scope] = status["scopes"]
    assert scope["scope"] == SCOPE and scope["traces"] == 1 and scope["memory_md_version"] == 1
    assert scope["spent_today"] == {
        "sessions": 1,
        "llm_calls": 2,
        "input_tokens": 250,
        "output_tokens": 50,
    }
    code, out = cli_run("consolidate", "--status", *d)
    assert code == 0 and SCOPE in out and "v1, 4 lines" in out, out

    code, out = cli_run("memory-md", "show", "--scope", SCOPE, *d)
    assert code == 0 and out.strip() == MD, out
    code, out = cli_run("memory-md", "history", "--scope", SCOPE, "--json", *d)
    assert code == 0 and [v["version"] for v in json.loads(out)] == [1], out
    code, out = cli_run("memory-md", "diff", "--scope", SCOPE, *d)
    assert code == 0 and "+- run `make test` before committing" in out, out
    code, out = cli_run("memory-md", "path", "--scope", SCOPE, *d)
    assert code == 0 and Path(out.strip()).read_text().startswith(MD), out
    code, out = cli_run("memory-summary", "--scope", SCOPE, *d)
    assert code == 0 and "fixed the build" in out and "s1" in out, out
    code, out = cli_run("traces", "list", "--scope", SCOPE, *d)
    assert code == 0 and "s1" in out and "fixed the build" in out, out
    code, out = cli_run("traces", "show", "s1", "--scope", SCOPE, *d)
    assert code == 0 and out.strip() == TRACE.strip(), out

    code, out = cli_run("traces", "delete", "s1", "--scope", SCOPE, *d)
    assert code == 0 and "deleted the trace of 's1'" in out, out
    code, out = cli_run("traces", "show", "s1", "--scope", SCOPE, *d)
    assert code == 1 and "no trace" in out
    code, out = cli_run("memory-md", "reset", "--scope", SCOPE, "--yes", *d)
    assert code == 0 and f"reset {SCOPE!r}" in out, out
    code, out = cli_run("memory-md", "show", "--scope", SCOPE, *d)
    assert code == 1 and "no MEMORY.md yet" in out
    assert not list((tmp_path / "memories").rglob("MEMORY.md"))


def test_issue13_cli_opt_out_and_configured_scopes(data: Path, fake_openai: FakeOpenAI) -> None:
    d = ["-d", str(data)]
    code, out = cli_run("consolidate", "--once", "--llm", "openai:fake-model", *d)
    assert code == 1 and "no scope" in out
    code, out = cli_run("memory-md", "enable", "--scope", SCOPE, "--session-prefix", "s", *d)
    assert code == 0 and "consolidation on" in out and "'s'" in out, out
    code, out = cli_run("memory-md", "disable", "--scope", SCOPE, *d)
    assert code == 0 and "consolidation off" in out, out
    code, out = cli_run(
        "consolidate", "--scope", SCOPE, "--once", "--idle-seconds", "0",
        "--llm", "openai:fake-model", *d,
    )  # fmt: skip
    assert code == 0 and "stopped: scope is opted out" in out, out
    assert fake_openai.completions == []


def test_issue13_cli_caps_and_errors(data: Path, fake_openai: FakeOpenAI) -> None:
    d = ["-d", str(data)]
    code, out = cli_run(
        "consolidate", "--scope", SCOPE, "--once", "--idle-seconds", "0",
        "--max-llm-calls", "0", "--llm", "openai:fake-model", *d,
    )  # fmt: skip
    assert code == 0 and "stopped: the run cap max_llm_calls=0" in out, out
    assert fake_openai.completions == []
    code, out = cli_run("consolidate", "--scope", SCOPE, "--once", *d)
    assert code == 1 and "no model" in out
    code, out = cli_run("memory-md", "show", "--scope", "a\nb", *d)
    assert code == 1 and "scope must be" in out
