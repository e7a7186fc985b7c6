"""Issue 17, item 3: errors people can act on. A missing extra is one line naming the
``pip install 'engramdb[...]'`` to run; an explicit embedder that cannot load raises unless
``fallback="text"``; ``engramdb doctor`` reports the installation and the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import engramdb
from engramdb import InvalidInputError, Memory, MissingExtraError
from engramdb.cli import app

runner = CliRunner()


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Simulate uninstalled packages: Python refuses to import a name mapped to None."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _one_line(exc: BaseException, extra: str) -> None:
    text = str(exc)
    assert isinstance(exc, MissingExtraError)
    assert isinstance(exc, ImportError) and isinstance(exc, engramdb.EngramError)
    assert f"pip install 'engramdb[{extra}]'" in text
    assert "\n" not in text
    assert exc.extra == extra


def _cli_missing(modules: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh interpreter with ``modules`` uninstalled."""
    code = (
        "import sys\n"
        f"for m in {modules!r}: sys.modules[m] = None\n"
        "from engramdb.cli import main\n"
        f"sys.argv = ['engramdb', *{list(argv)!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "60", "ENGRAMDB_EMBEDDER": "none"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )


def test_issue17_extras_postgres_store_url_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, "psycopg")
    with pytest.raises(MissingExtraError) as info:
        engramdb.open_store("postgresql://u:p@127.0.0.1:1/db")
    _one_line(info.value, "postgres")


def test_issue17_extras_cli_prints_the_postgres_hint_literally_exit_1(tmp_path: Path) -> None:
    done = _cli_missing(["psycopg"], "stats", "--store", "postgresql://u:p@127.0.0.1:1/db")
    assert done.returncode == 1, done.stderr
    # one line, brackets intact (no markup eating "[postgres]"), not wrapped at 60 columns
    assert "pip install 'engramdb[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_issue17_extras_serve_names_the_server_extra(tmp_path: Path) -> None:
    done = _cli_missing(["fastapi"], "serve", "--store", str(tmp_path / "d"))
    assert done.returncode == 1, done.stderr
    assert "pip install 'engramdb[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_issue17_extras_serve_with_an_embedder_that_cannot_load_exits_1(tmp_path: Path) -> None:
    done = _cli_missing(
        ["onnxruntime"], "serve", "--store", str(tmp_path / "d"), "--embedder", "local"
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'engramdb[local]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_issue17_extras_server_package_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = "import sys\nsys.modules['fastapi'] = None\nimport engramdb.server\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("engramdb.errors.MissingExtraError")
    assert "pip install 'engramdb[server]'" in last


def test_issue17_extras_local_embedder_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _missing(monkeypatch, "onnxruntime")
    with pytest.raises(MissingExtraError) as info:
        Memory(tmp_path / "d", embedder="local")
    _one_line(info.value, "local")


def test_issue17_extras_openai_embedder_and_llm_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engramdb.embed import OpenAIEmbedder
    from engramdb.llm import resolve_llm

    _missing(monkeypatch, "openai")
    with pytest.raises(MissingExtraError) as info:
        OpenAIEmbedder("text-embedding-3-small")
    _one_line(info.value, "openai")
    with pytest.raises(MissingExtraError) as info:
        Memory(tmp_path / "d", embedder="openai:text-embedding-3-small")
    _one_line(info.value, "openai")
    with pytest.raises(MissingExtraError) as info:
        resolve_llm("openai:some-model")
    _one_line(info.value, "openai")


def test_issue17_extras_each_integration_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engramdb.integrations import openai_agents, strands
    from engramdb.integrations.mcp import require_mcp
    from engramdb.integrations.openai_agents import EngramSession
    from engramdb.integrations.strands import EngramMemoryStore

    memory = Memory(tmp_path / "d", embedder="none")
    with monkeypatch.context() as patch:
        _missing(patch, "mcp.server.fastmcp")
        with pytest.raises(MissingExtraError) as info:
            require_mcp()
        _one_line(info.value, "mcp")
    with monkeypatch.context() as patch:
        _missing(patch, "agents")
        with pytest.raises(MissingExtraError) as info:
            EngramSession("s1", tmp_path / "s")
        _one_line(info.value, "agents")
        assert str(info.value) == openai_agents.INSTALL_HINT
    with monkeypatch.context() as patch:
        _missing(patch, "strands.memory")
        with pytest.raises(MissingExtraError) as info:
            EngramMemoryStore(memory)
        _one_line(info.value, "strands")
        assert str(info.value) == strands.INSTALL_HINT
    memory.close()
    code = (
        "import sys\nsys.modules['langgraph.store.base'] = None\n"
        "try:\n    import engramdb.integrations.langgraph\n"
        "except ImportError as exc:\n    print(type(exc).__name__, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("MissingExtraError | ")
    assert "pip install 'engramdb[langgraph]'" in out


def test_issue17_extras_mcp_command_prints_hint_exit_1(tmp_path: Path) -> None:
    done = _cli_missing(["mcp.server.fastmcp"], "mcp", "--store", str(tmp_path / "d"))
    assert done.returncode == 1, done.stderr
    assert "pip install 'engramdb[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr


# --- embedders: explicit means explicit -------------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import engramdb.embed as embed

    monkeypatch.setattr(embed, "_warned", set())
    monkeypatch.delenv("ENGRAMDB_EMBEDDER", raising=False)


def test_issue17_embedder_auto_without_local_is_text_only_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_warnings: None
) -> None:
    _missing(monkeypatch, "onnxruntime")
    with pytest.warns(UserWarning, match="text-only") as caught:
        memory = Memory(tmp_path / "d", embedder="auto")
    assert memory.embedder is None
    assert any("engramdb[local]" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second Memory does not warn again
        Memory(tmp_path / "d", embedder="auto").close()
    memory.close()


def test_issue17_embedder_explicit_local_raises_unless_fallback_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_warnings: None
) -> None:
    _missing(monkeypatch, "onnxruntime")
    with pytest.raises(MissingExtraError, match=r"engramdb\[local\]"):
        Memory(tmp_path / "d", embedder="local")
    with pytest.warns(UserWarning, match="text-only"):
        memory = Memory(tmp_path / "d", embedder="local", fallback="text")
    assert memory.embedder is None
    from engramdb import AsyncMemory

    assert AsyncMemory(tmp_path / "d", embedder="local", fallback="text").sync.embedder is None
    memory.remember("Ada drinks oolong tea")
    assert [h.memory.content for h in memory.recall("oolong")] == ["Ada drinks oolong tea"]
    memory.close()


def test_issue17_embedder_explicit_openai_and_st_raise_unless_fallback_text(
    monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    from engramdb.embed import resolve_embedder

    _missing(monkeypatch, "openai", "sentence_transformers")
    with pytest.raises(MissingExtraError, match=r"engramdb\[openai\]"):
        resolve_embedder("openai:text-embedding-3-small")
    with pytest.raises(MissingExtraError, match="pip install sentence-transformers"):
        resolve_embedder("st:all-MiniLM-L6-v2")
    with pytest.warns(UserWarning):
        assert resolve_embedder("openai:m", fallback="text") is None
    with pytest.warns(UserWarning):
        assert resolve_embedder("st:m", fallback="text") is None
    with pytest.raises(InvalidInputError, match="fallback"):
        resolve_embedder("none", fallback="vector")  # type: ignore[arg-type]


def test_issue17_embedder_env_explicit_spec_raises_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_warnings: None
) -> None:
    _missing(monkeypatch, "onnxruntime")
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "local")
    with pytest.raises(MissingExtraError):
        Memory(tmp_path / "d")


# --- engramdb doctor -----------------------------------------------------------------------


def _doctor(*argv: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["doctor", *argv, "--json"], env={"ENGRAMDB_EMBEDDER": "none"})
    return result.exit_code, json.loads(result.stdout)


def test_issue17_doctor_reports_a_sqlite_store(tmp_path: Path) -> None:
    data = tmp_path / "d"
    memory = Memory(data, embedder="none")
    memory.remember("something")
    memory.close()
    code, report = _doctor("--store", str(data))
    assert code == 0
    assert report["engramdb"] == engramdb.__version__
    assert report["python"].count(".") == 2
    assert report["store"]["backend"] == "sqlite"
    assert report["store"]["location"] == str((data / "engram.db").absolute())
    assert report["store"]["ok"] is True
    assert report["data_dir"] == str(data.absolute())
    assert report["embedder"] == {
        "spec": "auto",
        "resolves_to": None,
        "vectors": False,
        "ok": True,
        "detail": "text-only",
    }
    assert report["sqlite"]["fts5"] is True and report["sqlite"]["json"] is True
    extras = {row["extra"]: row for row in report["extras"]}
    assert {"server", "postgres", "local", "openai", "mcp"} <= set(extras)
    assert report["problems"] == []
    # the table names the same things, brackets printed literally
    result = runner.invoke(app, ["doctor", "--store", str(data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    # (a long tmp path, as under pytest-xdist, may be folded across lines at 80 columns)
    assert "[postgres]" in result.stdout and "engram.db" in result.stdout.replace("\n", "")


def test_issue17_doctor_lists_a_missing_extra_with_its_command(tmp_path: Path) -> None:
    done = _cli_missing(["mcp"], "doctor", "--store", str(tmp_path / "d"), "--json")
    assert done.returncode == 0, done.stderr
    extras = {row["extra"]: row for row in json.loads(done.stdout)["extras"]}
    assert extras["mcp"]["installed"] is False
    assert extras["mcp"]["install"] == "pip install 'engramdb[mcp]'"


def test_issue17_doctor_an_explicit_embedder_that_cannot_load_is_a_problem(tmp_path: Path) -> None:
    done = _cli_missing(
        ["onnxruntime"], "doctor", "--store", str(tmp_path / "d"), "--embedder", "local", "--json"
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["embedder"]["ok"] is False
    assert "pip install 'engramdb[local]'" in report["problems"][0]


def test_issue17_doctor_reaches_postgres(pg_server: Any) -> None:
    url = pg_server.url()
    code, report = _doctor("--store", url)
    assert code == 0, report
    store = report["store"]
    assert store["backend"] == "postgresql"
    assert store["ok"] is True and store["detail"] == "reachable"
    assert pg_server.password not in store["location"] and ":***@" in store["location"]
    assert store["server_version"] and store["pgvector"]
    assert report["data_dir"] is None


def test_issue17_doctor_unreachable_postgres_is_listed_exit_1() -> None:
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://u:topsecret@127.0.0.1:{port}/db"
    code, report = _doctor("--store", url)
    assert code == 1
    assert report["store"]["ok"] is False
    assert report["store"]["detail"].startswith("unreachable")
    assert "topsecret" not in json.dumps(report)
    assert report["problems"] and report["problems"][0].startswith("store: unreachable")
