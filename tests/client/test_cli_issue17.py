"""Issue 17: the command line mirrors the library, embedded (a data directory) and against a
live server (``--url`` + ``--api-key``) with the same commands; user text printed literally,
exit codes 0/1/2, whole ids, ``--json`` everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engramdb import Client, Session, open_store
from engramdb.cli import app
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
MARKUP = "[bold]x[/bold] [/foo] needs engramdb[postgres]"


@dataclass
class Target:
    """Where the commands run: ``args`` select it (a data directory, or a server and key)."""

    kind: str
    args: list[str]
    url: str | None = None
    key: str | None = None
    data: Path | None = None

    def run(self, *argv: str, input: str | None = None) -> Result:
        # the target options go right after the command words (before any argument)
        return runner.invoke(
            app, [*argv, *self.args], input=input, env={"ENGRAMDB_EMBEDDER": "none"}
        )

    def ok(self, *argv: str, input: str | None = None) -> Result:
        result = self.run(*argv, input=input)
        assert result.exit_code == 0, (argv, result.output)
        return result

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok(*argv, "--json").stdout)

    def add_items(self, session_id: str, items: list[dict[str, Any]]) -> None:
        if self.url is not None:
            assert self.key is not None
            with Client(self.url, self.key) as client:
                client.add_items(session_id, items)
        else:
            assert self.data is not None
            store = open_store(self.data)
            Session(session_id, store).add_items(items)
            store.close()


@pytest.fixture(params=["embedded", "server"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "embedded":
        data = tmp_path / "data"
        open_store(data).close()
        yield Target("embedded", ["-d", str(data)], data=data)
    else:
        server: LiveServer = request.getfixturevalue("live_server")
        key = server.register("cli-issue17")
        yield Target("server", ["--url", server.url, "--api-key", key], url=server.url, key=key)


def test_issue17_cli_memory_commands(target: Target) -> None:
    """remember, get, recall, list (paged), update, history, forget: same commands, both
    targets, every --json parseable."""
    ada = target.json("remember", "Ada prefers green tea", "-u", "ada", "-t", "prefs")
    bob = target.json("remember", "Bob drinks black coffee", "-u", "bob")
    assert target.json("get", ada["id"])["content"] == "Ada prefers green tea"

    hits = target.json("recall", "green tea", "-k", "5")
    assert [h["id"] for h in hits] == [ada["id"]] and hits[0]["score"] > 0
    table = target.ok("recall", "green tea").stdout
    assert ada["id"] in table and "text#1" in table  # the why column

    first = target.json("list", "-k", "1")
    assert [m["id"] for m in first["items"]] == [ada["id"]] and first["next_cursor"]
    second = target.json("list", "-k", "1", "--cursor", first["next_cursor"])
    assert [m["id"] for m in second["items"]] == [bob["id"]]
    assert [m["id"] for m in target.json("list", "-u", "bob")["items"]] == [bob["id"]]

    updated = target.json("update", ada["id"], "--content", "Ada prefers jasmine tea")
    assert updated["version"] == 2
    history = target.json("history", ada["id"])
    assert [v["content"] for v in history["versions"]] == ["Ada prefers green tea"]

    # a scoped forget shows the count and asks; answering no removes nothing
    result = target.run("forget", "-u", "bob", input="n\n")
    assert result.exit_code == 1 and "would remove 1 memories" in result.stdout
    assert target.json("get", bob["id"])["id"] == bob["id"]
    assert target.run("forget", "-u", "bob", "--json").exit_code == 2  # cannot ask
    assert target.json("forget", "-u", "bob", "--dry-run") == {
        "dry_run": True,
        "count": 1,
        "ids": [bob["id"]],
    }
    assert "removed 1 memories" in target.ok("forget", "-u", "bob", "--yes").stdout
    assert target.run("get", bob["id"]).exit_code == 1
    assert "removed 1" in target.ok("forget", ada["id"]).stdout
    assert target.json("list")["items"] == []


def test_issue17_cli_knowledge_and_stats(target: Target) -> None:
    fact = target.json("learn", "Ada", "lives_in", "Paris", "--valid-from", "2020-01-01")
    assert fact["valid_from"].startswith("2020-01-01")
    target.ok("learn", "Ada", "lives_in", "Rome", "--single")
    found = target.json("facts", "-s", "Ada", "--as-of", "2021-06-01")
    assert [f["object"] for f in found] == ["Paris"]
    assert [f["object"] for f in target.json("facts", "-s", "Ada")] == ["Rome"]
    assert fact["id"] in target.ok("facts", "-s", "Ada", "--history").stdout
    stats = target.json("stats")
    assert stats["memories"] == 1 and stats["triples"] == 2
    assert "memories" in target.ok("stats").stdout
    assert target.json("forget-fact", "-s", "Ada", "--yes")["count"] == 2


def test_issue17_cli_sessions(target: Target) -> None:
    target.add_items(
        "chat-1", [{"role": "user", "content": "hi"}, {"role": "user", "content": "b"}]
    )
    assert [s["session_id"] for s in target.json("sessions", "list")] == ["chat-1"]
    assert target.json("sessions", "show", "chat-1")[0]["content"] == "hi"
    assert target.json("sessions", "pop", "chat-1") == {"role": "user", "content": "b"}
    assert len(target.json("sessions", "show", "chat-1")) == 1
    cleared = target.json("sessions", "clear", "chat-1", "--yes")
    assert cleared == {"session_id": "chat-1", "cleared": 1}
    for command in (("show",), ("pop",), ("clear", "--yes")):
        result = target.run("sessions", command[0], "nope", *command[1:])
        assert result.exit_code == 1, (command, result.output)
        assert "no session 'nope'" in result.output


def test_issue17_cli_markup_printed_literally(target: Target) -> None:
    memory = target.json("remember", MARKUP, "-t", "[postgres]")
    for argv in (("recall", "bold foo"), ("list",), ("get", memory["id"])):
        out = target.ok(*argv).stdout
        assert all(part in out for part in MARKUP.split()), (argv, out)
    target.add_items("[/foo]", [{"role": "user", "content": MARKUP}])
    assert MARKUP in target.ok("sessions", "show", "[/foo]").stdout
    assert "cleared 1 items from '[/foo]'" in target.ok("sessions", "clear", "[/foo]", "-y").stdout
    result = target.run("sessions", "clear", "[bold]x[/bold]", "-y")
    assert result.exit_code == 1 and "'[bold]x[/bold]'" in result.output
    # an error message quoting user text, with brackets as in an install hint
    result = target.run("get", "mem_[postgres][/foo]")
    assert result.exit_code == 1 and "mem_[postgres][/foo]" in result.output


def test_issue17_cli_namespaces_and_keys(target: Target, tmp_path: Path) -> None:
    target.ok("remember", "something")
    names = target.json("namespaces")
    if target.kind == "embedded":
        assert names == ["default"]
        result = runner.invoke(app, ["keys", "list"], env={"ENGRAMDB_URL": None})
        assert result.exit_code == 2 and "server feature" in result.output
        return
    assert len(names) == 1  # a namespace key sees its own namespace
    made = target.json("keys", "create", "second")
    assert made["key"]["namespace"] == names[0] and made["api_key"]
    listed = target.json("keys", "list")
    assert made["key"]["id"] in {k["id"] for k in listed}
    assert target.json("keys", "revoke", made["key"]["id"])["revoked_at"] is not None
    assert target.url is not None
    admin = ["--url", target.url, "--api-key", "admin-test-key-0123456789abcdef", "--json"]
    everything = json.loads(runner.invoke(app, ["namespaces", *admin]).stdout)
    assert names[0] in everything and len(everything) > 1


def test_issue17_cli_exit_codes_and_local_only_commands(tmp_path: Path) -> None:
    url = ["--url", "http://127.0.0.1:9"]
    for argv in (
        ["reembed", *url],
        ["migrate", "--from", "a", "--to", "b", *url],
    ):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2 and "local store" in result.output, argv
    result = runner.invoke(app, ["recall", "tea", *url], env={"ENGRAMDB_API_KEY": ""})
    assert result.exit_code == 2 and "--api-key" in result.output
    assert runner.invoke(app, ["recall"]).exit_code == 2  # a missing argument: usage
    data = ["-d", str(tmp_path / "data")]
    runner.invoke(app, ["remember", "x", *data, "--embedder", "none"])
    assert runner.invoke(app, ["get", "mem_0123", *data]).exit_code == 1
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*\n", result.stdout)


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engramdb", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
    )


def test_issue17_cli_ids_whole_at_80_columns(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = {"COLUMNS": "80", "ENGRAMDB_EMBEDDER": "none"}
    long = "Ada prefers green tea, " * 12
    out = _cli("remember", long, "-d", data, "--json", "-t", "a-rather-long-tag", env=env)
    memory_id = json.loads(out.stdout)["id"]
    for argv in (("recall", "green tea"), ("list",), ("facts",), ("get", memory_id)):
        lines = _cli(*argv, "-d", data, env=env).stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), argv
        if argv[0] != "facts":
            assert any(memory_id in line for line in lines), argv


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "engramdb":
            continue
        assert len(words) > 1, line
        if words[1].startswith("-"):  # --version, --install-completion: options, not commands
            continue
        name = [words[1]]
        if words[1] in ("sessions", "keys", "memory-md", "traces") and len(words) > 2:
            name.append(words[2])
        commands.append(name)
    return commands


def test_issue17_cli_readme_commands_exist() -> None:
    commands = _readme_commands()
    names = {" ".join(c) for c in commands}
    for needed in (
        "remember", "recall", "get", "list", "update", "history", "forget", "learn", "facts",
        "sessions list", "sessions show", "sessions pop", "sessions clear", "namespaces",
        "keys list", "keys create", "keys revoke", "export", "import", "stats",
    ):  # fmt: skip
        assert needed in names, needed
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
    docs = (ROOT / "docs" / "cli.md").read_text()
    for name in names:
        assert f"engramdb {name}" in docs, name


def test_issue17_cli_extract_on_both_targets(target: Target) -> None:
    """extract --no-infer (no model needed) stores each message as said, locally or on the
    server, with the same report."""
    target.add_items("chat-9", [{"role": "user", "content": "I moved to Lisbon [last year]"}])
    report = target.json("extract", "--session", "chat-9", "--no-infer")
    decisions = [d for w in report["windows"] for d in w["decisions"]]
    assert [d["action"] for d in decisions] == ["add"]
    memory_id = decisions[0]["memory_id"]
    assert target.json("get", memory_id)["content"].endswith("I moved to Lisbon [last year]")
    target.add_items("chat-9", [{"role": "user", "content": "and I like [/jazz]"}])
    table = target.ok("extract", "--session", "chat-9", "--no-infer", "--dry-run").stdout
    assert "[/jazz]" in table and "dry run: nothing written" in table


def test_issue17_cli_learn_valid_to(target: Target) -> None:
    """learn --valid-from/--valid-to: a closed interval, the same on both targets (library,
    server route and client)."""
    fact = target.json(
        "learn",
        "Ada",
        "lived_in",
        "Paris",
        "--valid-from",
        "2015-01-01",
        "--valid-to",
        "2019-06-01",
    )
    assert fact["valid_from"].startswith("2015-01-01") and fact["valid_to"].startswith("2019-06-01")
    assert [f["id"] for f in target.json("facts", "-s", "Ada", "--as-of", "2017-01-01")] == [
        fact["id"]
    ]
    assert target.json("facts", "-s", "Ada", "--as-of", "2020-01-01") == []
    assert target.json("facts", "-s", "Ada") == []
    result = target.run(
        "learn", "Ada", "likes", "tea", "--valid-from", "2020-01-01", "--valid-to", "2019-01-01"
    )
    assert result.exit_code == 1 and "valid_to must be after valid_from" in result.output


def _script(*argv: str, env: dict[str, str]) -> str:
    """The installed ``engramdb`` console script (what a shell's completion calls)."""
    script = Path(sys.executable).parent / "engramdb"
    return subprocess.run(
        [str(script), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
    ).stdout


def test_issue17_cli_shell_completion() -> None:
    """`--show-completion bash` prints a bash script wired to the command line, and that wiring
    completes command names (what docs/cli.md's Shell completion section promises)."""
    script = _script("--show-completion", "bash", env={})
    assert "complete -o default -F" in script and "_ENGRAMDB_COMPLETE=complete_bash" in script
    words = {"COMP_WORDS": "engramdb sessions ", "COMP_CWORD": "2"}
    done = _script(env={"_ENGRAMDB_COMPLETE": "complete_bash", **words}).split()
    assert done == ["list", "show", "pop", "clear"]
    words = {"COMP_WORDS": "engramdb rec", "COMP_CWORD": "1"}
    assert _script(env={"_ENGRAMDB_COMPLETE": "complete_bash", **words}).split() == ["recall"]
    docs = (ROOT / "docs" / "cli.md").read_text().split("## Shell completion", 1)[1]
    assert "--install-completion" in docs and "--show-completion bash" in docs


def test_issue17_cli_consolidation_commands(target: Target) -> None:
    """consolidate, traces, memory-md and memory-summary: the same commands on a local store
    and against a server (--url), through the one adapter; the server has no model, so runs
    are dry and reads answer what exists."""
    scope = "/home/dev/[app]"
    target.add_items("app:1", [{"role": "user", "content": "tests run with [bold]uv[/bold]"}])
    assert (
        "consolidation on, sessions starting with 'app:'"
        in target.ok("memory-md", "enable", "-s", scope, "--session-prefix", "app:").stdout
    )
    status = target.json("consolidate", "--status")
    assert [(s["scope"], s["enabled"]) for s in status["scopes"]] == [(scope, True)]
    table = target.ok("consolidate", "--status").stdout
    assert "[app]" in table and "…" not in table  # literally, never cut
    # no --scope: every enabled scope
    dry = target.json("consolidate", "--dry-run", "--idle-seconds", "0")
    assert dry["scope"] == scope and list(dry["planned"]) == ["app:1"] and dry["dry_run"]
    out = target.ok("consolidate", "-s", scope, "--dry-run", "--idle-seconds", "0").stdout
    assert "would summarize 1 session(s) (app:1)" in out and "nothing written" in out
    assert target.json("traces", "list", "-s", scope) == []
    result = target.run("traces", "show", "app:1", "-s", scope)
    assert result.exit_code == 1 and "has no trace" in result.output
    assert "no such trace" in target.ok("traces", "delete", "app:1", "-s", scope).stdout
    result = target.run("memory-md", "show", "-s", scope)
    assert result.exit_code == 1 and "has no MEMORY.md yet" in result.output
    assert target.json("memory-md", "history", "-s", scope) == []
    assert "No memory traces yet" in target.ok("memory-summary", "-s", scope).stdout
    assert "had no MEMORY.md" in target.ok("memory-md", "reset", "-s", scope, "-y").stdout
    assert "consolidation off" in target.ok("memory-md", "disable", "-s", scope).stdout
    assert [s["enabled"] for s in target.json("consolidate", "--status")["scopes"]] == [False]
    path = target.run("memory-md", "path", "-s", scope)
    if target.kind == "server":  # the server's files are on the server
        assert path.exit_code == 2 and "local store" in path.output
        result = target.run("consolidate", "-s", scope, "--once", "--max-sessions", "1")
        assert result.exit_code == 2 and "server's model and caps" in result.output
        result = target.run("consolidate", "-s", scope, "--once")
        assert result.exit_code == 1 and "no model" in result.output
    else:
        assert path.exit_code == 0 and path.stdout.strip().endswith("MEMORY.md")


def _loaded_after(*commands: list[str]) -> list[str]:
    """Run commands in one fresh process; the heavy modules they imported."""
    code = (
        "import sys\nfrom engramdb.cli import app\n"
        f"for argv in {list(commands)!r}:\n"
        "    try:\n        app(argv)\n    except SystemExit as e:\n        assert not e.code\n"
        "print(' '.join(m for m in ('onnxruntime', 'engramdb.embed.local', 'fastapi', 'openai')"
        " if m in sys.modules), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAMDB_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []


def test_issue17_cli_recall_loads_no_model_it_does_not_use(tmp_path: Path) -> None:
    """`engramdb recall` loads the embedding model only when the recall uses it: not for
    --mode text, not for the default embedder on a text-only database (loading the model
    takes longer than the recall)."""
    pytest.importorskip("onnxruntime")
    text_only, vectors = str(tmp_path / "text"), str(tmp_path / "vectors")
    runner.invoke(app, ["remember", "Ada prefers tea", "-d", text_only, "--embedder", "none"])
    runner.invoke(app, ["remember", "Ada prefers tea", "-d", vectors, "--embedder", "hashing"])
    loaded = _loaded_after(
        ["recall", "tea", "-d", text_only],  # auto, and nothing to search by vector
        ["recall", "tea", "-d", text_only, "--json"],
        ["recall", "tea", "-d", vectors, "--mode", "text"],
    )
    assert loaded == []


def test_issue17_cli_recall_loads_the_model_for_one_query(tmp_path: Path) -> None:
    """A CLI recall embeds one query: the local model is loaded without graph optimizations
    (several times faster to load), with the same vectors, so the CLI finds what the library
    finds."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from engramdb import Memory
    from engramdb.cli import _one_query_embedder
    from engramdb.embed.local import LocalEmbedder

    fast = _one_query_embedder("local")
    assert isinstance(fast, LocalEmbedder) and fast.model == LocalEmbedder().model
    assert fast._session is not LocalEmbedder()._session  # its own, unoptimized, copy
    texts = ["Ada prefers green tea", "Bob drinks black coffee every morning"]
    assert np.allclose(
        fast.embed_documents(texts), LocalEmbedder().embed_documents(texts), atol=1e-4
    )
    assert _one_query_embedder("hashing") == "hashing"
    data = tmp_path / "data"
    mem = Memory(data, embedder="local")
    for text in (*texts, "Carol cycles to work"):
        mem.remember(text)
    expected = [h.memory.id for h in mem.recall("what does Ada drink", mode="vector")]
    mem.close()
    result = runner.invoke(
        app, ["recall", "what does Ada drink", "-d", str(data), "--mode", "vector", "--json"],
        env={"ENGRAMDB_EMBEDDER": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [h["id"] for h in json.loads(result.stdout)] == expected
