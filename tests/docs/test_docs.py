"""Every code block of README.md and docs/ runs (issue 17 item 1).

One pytest item per block, named ``FILE:LINE`` after its opening fence. The conventions
(languages, ``skip``, ``server``, ```` ```output ```` blocks) are in tests/docs/blocks.py and
docs/contributing.md.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import doctest
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docs.blocks import (
    PARSED,
    PYTHON,
    SHELL,
    Block,
    DocsSyntaxError,
    doc_files,
    output_matches,
    parse_blocks,
    shell_commands,
)
from tests.live_server import LiveServer
from tests.pg_server import PgServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_URL = "http://127.0.0.1:8765"  # what server blocks show; replaced by a live server's
DEFAULT_PG_URL = "postgresql://engram:secret@db.internal:5432/engram"  # postgres blocks: likewise


def _all_blocks() -> list[Block]:
    blocks: list[Block] = []
    for path in doc_files(ROOT):
        blocks += parse_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    return blocks


BLOCKS = _all_blocks()
RUNNABLE = [b for b in BLOCKS if b.runs]
LAST_OF_FILE = {b.path: b for b in RUNNABLE}


class BlockFailed(AssertionError):
    pass


@dataclass
class FileRun:
    """The state one documentation file's blocks share: a working directory, the Python
    namespace, which blocks already ran, and the first failure."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    failed: str | None = None
    api_key: str | None = None

    def close(self) -> None:
        """Close what the file's blocks opened (stores, clients), once its last block ran."""
        for value in self.namespace.values():
            if type(value).__module__.startswith("engramdb") and hasattr(value, "close"):
                with contextlib.suppress(Exception):
                    value.close()
        self.namespace.clear()


class DocsRunner:
    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.files: dict[str, FileRun] = {}
        self.request: pytest.FixtureRequest | None = None  # the current test's, for fixtures

    def file(self, path: str) -> FileRun:
        if path not in self.files:
            self.files[path] = FileRun(self.tmp.mktemp(path.replace("/", "_")))
        return self.files[path]

    def live_server(self) -> LiveServer:
        """The test run's live server (tests/conftest.py), started on first use."""
        assert self.request is not None
        server: LiveServer = self.request.getfixturevalue("live_server")
        return server

    def postgres_url(self) -> str:
        """A fresh schema of the test run's embedded PostgreSQL (tests/conftest.py)."""
        assert self.request is not None
        server: PgServer = self.request.getfixturevalue("pg_server")
        return server.new_schema()

    def run(self, block: Block) -> None:
        """Run ``block`` after every earlier runnable block of its file (each at most once)."""
        state = self.file(block.path)
        for earlier in RUNNABLE:
            if earlier.path != block.path or earlier.line >= block.line:
                continue
            if earlier.line not in state.done:
                self._run_one(state, earlier)
            if state.failed:
                raise BlockFailed(f"an earlier block failed: {state.failed}")
        self._run_one(state, block)
        if block is LAST_OF_FILE[block.path]:
            state.close()

    def _run_one(self, state: FileRun, block: Block) -> None:
        state.done.add(block.line)
        try:
            with self._environment(state, block):
                if "server" in block.flags:
                    url = self.live_server().url
                    block = dataclasses.replace(block, code=block.code.replace(DEFAULT_URL, url))
                    state.namespace.update(KEY=state.api_key, api_key=state.api_key)
                if "postgres" in block.flags:
                    code = block.code.replace(DEFAULT_PG_URL, self.postgres_url())
                    block = dataclasses.replace(block, code=code)
                if block.lang in PYTHON:
                    printed = run_python(block, state.namespace)
                elif block.lang in SHELL:
                    printed = run_shell(block, state.workdir)
                else:
                    printed = parse_data(block)
            if block.output is not None and not output_matches(block.output, printed):
                raise BlockFailed(
                    f"{block.id}: the output differs from the block at line "
                    f"{block.output_line}.\n--- shown:\n{block.output}--- printed:\n{printed}"
                )
        except BaseException:
            state.failed = block.id
            raise

    @contextlib.contextmanager
    def _environment(self, state: FileRun, block: Block) -> Iterator[None]:
        """cwd = the file's directory; no ENGRAMDB_* or model credentials from the user's
        environment (nothing touches their data dir or a hosted model); a live server's URL
        and a key for ``server`` blocks."""
        saved_env = dict(os.environ)
        saved_cwd = Path.cwd()
        try:
            for name in list(os.environ):
                if name.startswith(("ENGRAMDB_", "OPENAI_")):
                    del os.environ[name]
            os.environ["ENGRAMDB_DATA_DIR"] = str(state.workdir / ".engramdb")
            os.environ["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # never a hosted model
            os.environ["OPENAI_API_KEY"] = "docs-test-offline"
            if "server" in block.flags:
                server = self.live_server()
                if state.api_key is None:
                    state.api_key = server.register(f"docs {block.path}")
                os.environ["KEY"] = state.api_key
            os.chdir(state.workdir)
            yield
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)

    def close(self) -> None:
        for state in self.files.values():
            state.close()


def run_python(block: Block, namespace: dict[str, Any]) -> str:
    """Execute a Python block (top-level ``await`` allowed) in ``namespace``; returns what it
    printed. Tracebacks name the markdown file and line."""
    if block.code.lstrip().startswith(">>> "):
        return run_doctest(block, namespace)
    source = "\n" * block.line + block.code  # line numbers of the markdown file
    code = compile(source, block.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            if code.co_flags & inspect.CO_COROUTINE:
                result = eval(code, namespace)
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
            else:
                exec(code, namespace)
    except Exception as exc:
        raise BlockFailed(
            f"{block.id} raised {type(exc).__name__}: {exc}\n"
            f"printed:\n{out.getvalue()}\n{traceback.format_exc()}"
        ) from exc
    return out.getvalue()


def run_doctest(block: Block, namespace: dict[str, Any]) -> str:
    """A ``>>>`` session: each example's output is compared as ``doctest`` does."""
    test = doctest.DocTestParser().get_doctest(
        block.code, namespace, block.id, block.path, block.line
    )
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.write, clear_globs=False)
    if runner.failures:
        raise BlockFailed(f"{block.id}: a >>> example differs:\n{out.getvalue()}")
    return ""


def run_shell(block: Block, workdir: Path) -> str:
    """Run a shell block's commands in order; returns what they printed.

    ``engramdb ...`` runs in this process through Typer's ``CliRunner`` (the same app as the
    console script, without paying the interpreter's start-up for every line). Variable
    assignments set the environment; one holding a command substitution, ``ID=$(...)``, runs
    its command through ``bash -euo pipefail`` with the project's ``.venv/bin`` first on
    ``PATH``. Shell syntax beyond that (``&&``, redirections) is not supported: write one
    command per line."""
    from typer.testing import CliRunner

    from engramdb.cli import app

    printed: list[str] = []
    for command in shell_commands(block):
        assignment = re.match(r"^(?:export\s+)?([A-Za-z_]\w*)=(.*)$", command, re.DOTALL)
        if assignment and "$(" in assignment[2]:
            name = assignment[1]
            env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f'{command}\nprintf %s "${name}"'],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                raise BlockFailed(
                    f"{block.id}: `{command}` exited {proc.returncode}\n{proc.stderr}"
                )
            os.environ[name] = proc.stdout
            continue
        words = [os.path.expandvars(w) for w in shlex.split(command, comments=True)]
        if assignment:
            for word in words[1:] if words[0] == "export" else words:
                name, _, value = word.partition("=")
                os.environ[name] = value
            continue
        result = CliRunner().invoke(app, words[1:], env={"COLUMNS": "100"})
        if result.exit_code != 0:
            raise BlockFailed(
                f"{block.id}: `{command}` exit code {result.exit_code}\n"
                f"--- stdout:\n{result.stdout}--- stderr:\n{result.stderr}"
                + (f"--- exception:\n{result.exception!r}" if result.exception else "")
            )
        printed.append(result.stdout)
    return "".join(printed)


def parse_data(block: Block) -> str:
    assert block.lang in PARSED
    try:
        if block.lang == "json":
            json.loads(block.code)
        else:
            tomllib.loads(block.code)
    except ValueError as exc:
        raise BlockFailed(f"{block.id}: not valid {block.lang}: {exc}") from exc
    return ""


@pytest.fixture(scope="session")
def docs_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsRunner]:
    runner = DocsRunner(tmp_path_factory)
    yield runner
    runner.close()


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_issue17_docs_block_runs(
    block: Block, docs_runner: DocsRunner, request: pytest.FixtureRequest
) -> None:
    docs_runner.request = request
    docs_runner.run(block)


# --- the extractor and the runner can fail -------------------------------------------------

TINY = """\
# Tiny

```python
x = 2
print(x * 21)
```

```output
42
```

<!-- docs: skip -->
```bash
pip install engramdb
```

````text
```python
not run: inside a text block
```
````

```python
raise RuntimeError("broken on purpose")
```
"""


def test_issue17_docs_extractor_finds_blocks_lines_and_output() -> None:
    blocks = parse_blocks(TINY, "tiny.md")
    assert [(b.line, b.lang, b.runs) for b in blocks] == [
        (3, "python", True),
        (8, "output", False),
        (13, "bash", False),
        (17, "text", False),
        (23, "python", True),
    ]
    assert blocks[2].flags == {"skip"}
    assert blocks[0].output == "42\n"
    assert blocks[0].id == "tiny.md:3"
    assert "not run" in blocks[3].code


def test_issue17_docs_every_file_has_checked_blocks() -> None:
    files = {b.path for b in RUNNABLE}
    assert "README.md" in files
    assert len(RUNNABLE) >= 30
    assert sum(1 for b in RUNNABLE if b.output is not None) >= 3
    # skips stay few: installation, docker, external services
    skipped = [b for b in BLOCKS if "skip" in b.flags]
    assert len(skipped) <= len(RUNNABLE) // 3, [b.id for b in skipped]


def test_issue17_docs_broken_block_is_reported_with_its_line(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    blocks = parse_blocks(TINY, "tiny.md")
    namespace: dict[str, Any] = {}
    assert run_python(blocks[0], namespace) == "42\n"
    assert output_matches(blocks[0].output or "", "42\n")
    assert not output_matches("43\n", "42\n")
    with pytest.raises(BlockFailed, match=r"tiny.md:23 raised RuntimeError") as info:
        run_python(blocks[4], namespace)
    assert 'File "tiny.md", line 24' in str(info.value)


def test_issue17_docs_wrong_output_and_failing_command_fail() -> None:
    runner = DocsRunner.__new__(DocsRunner)
    runner.files = {}
    runner.request = None
    wrong = parse_blocks("```python\nprint(1)\n```\n\n```output\n2\n```\n", "w.md")[0]
    state = FileRun(Path.cwd())
    with pytest.raises(BlockFailed, match="output differs"):
        runner._run_one(state, wrong)
    bad = parse_blocks("```bash\nengramdb no-such-command\n```\n", "b.md")[0]
    with pytest.raises(BlockFailed, match="exit code 2"):
        run_shell(bad, Path.cwd())
    foreign = parse_blocks("```bash\nengramdb --version\nrm -rf /tmp/x\n```\n", "f.md")[0]
    with pytest.raises(DocsSyntaxError, match=r"f.md:3: 'rm' is not an engramdb command"):
        shell_commands(foreign)


def test_issue17_docs_output_ellipsis_and_bad_fences() -> None:
    assert output_matches("id: ...\nok\n", "id: 0192abc\nok   \n\n")
    assert output_matches("first\n...\nlast\n", "first\nmiddle\nmore\nlast\n")
    assert not output_matches("first\nlast\n", "first\nmiddle\nlast\n")
    with pytest.raises(DocsSyntaxError, match="never closed"):
        parse_blocks("```python\nx = 1\n", "u.md")
    with pytest.raises(DocsSyntaxError, match="unknown flag"):
        parse_blocks("<!-- docs: skp -->\n```python\nx = 1\n```\n", "k.md")
    with pytest.raises(DocsSyntaxError, match="write `<!-- docs: skip"):
        parse_blocks("<!-- docs: skip: no model -->\n```python\nx = 1\n```\n", "r.md")
    [reasoned] = parse_blocks("<!-- docs: skip (needs a model) -->\n```python\nx\n```\n", "s.md")
    assert reasoned.flags == {"skip"} and not reasoned.runs
    with pytest.raises(DocsSyntaxError, match="must follow its code block directly"):
        parse_blocks("```python\nx\n```\ntext between\n```output\n1\n```\n", "o.md")


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_issue17_docs_every_page_is_in_the_mkdocs_nav() -> None:
    """Every docs page is reachable from the site's navigation, and the nav names no missing
    page (``mkdocs build --strict`` in ``make docs`` checks links and anchors too)."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["theme"]["name"] == "material" and config["strict"] is True
    nav = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages
    for page in ("index.md", "sessions.md", "recall.md", "knowledge.md", "manager.md",
                 "consolidation.md", "server.md", "postgres.md", "security.md", "errors.md",
                 "cli.md", "container.md", "export-format.md"):  # fmt: skip
        assert page in nav, page
