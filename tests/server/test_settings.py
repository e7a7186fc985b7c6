"""Server settings: options over environment over config file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import InvalidInputError
from engramdb.cli import app
from engramdb.server.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGRAMDB_PORT", "ENGRAMDB_STORE", "ENGRAMDB_ADMIN_KEYS", "ENGRAMDB_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.store, s.host, s.port, s.workers, s.registration) == (
        ".engramdb",
        "127.0.0.1",
        8765,
        1,
        "open",
    )
    assert s.quotas.max_memories is None


def test_precedence_file_env_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "engramdb.toml"
    config.write_text(
        'store = "/from/file"\nport = 9000\nworkers = 3\nrecalls_per_day = 50\n'
        'admin_keys = ["file-admin-key-0123456789"]\n'
    )
    monkeypatch.setenv("ENGRAMDB_PORT", "9100")
    monkeypatch.setenv("ENGRAMDB_ADMIN_KEYS", "env-admin-key-0123456789, second-admin-key-0123")
    s = load_settings(config, workers=None, store="/from/option")
    assert s.store == "/from/option"  # option beats everything
    assert s.port == 9100  # environment beats the file
    assert s.workers == 3 and s.recalls_per_day == 50  # the file beats defaults
    assert s.admin_keys == ["env-admin-key-0123456789", "second-admin-key-0123"]
    monkeypatch.setenv("ENGRAMDB_CONFIG", str(config))
    assert load_settings().workers == 3  # the config file can come from the environment


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ("port = 70000", {}, "port"),
        ("colour = 1", {}, "colour"),
        ("port = [", {}, "not valid TOML"),
        ("", {"ENGRAMDB_WORKERS": "many"}, "workers"),
        ("", {"ENGRAMDB_REGISTRATION": "sometimes"}, "registration"),
        ("admin_keys = ['short']", {}, "16 characters"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], match: str
) -> None:
    config = tmp_path / "engramdb.toml"
    config.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInputError, match=match):
        load_settings(config)


def test_serve_fails_fast_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = CliRunner().invoke(app, ["serve", "--config", str(missing)])
    assert result.exit_code == 1
    assert "cannot read config file" in result.output
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    result = CliRunner().invoke(app, ["serve", "--store", str(blocked / "data")])
    assert result.exit_code == 1 and "error" in result.output


def test_issue15_weights_recall_and_index_settings_reach_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from engramdb.server.app import create_app

    config = tmp_path / "engramdb.toml"
    config.write_text(
        f'store = "{tmp_path / "data"}"\nembedder = "none"\nindex_neighbors = false\n'
        "[recall]\nneighbor_weight = 0.5\nsession_cap = 3\n"
    )
    monkeypatch.setenv("ENGRAMDB_INDEX_METADATA", "label, project")
    s = load_settings(config)
    assert s.index_metadata == ["label", "project"]
    assert (s.recall_settings.neighbor_weight, s.recall_settings.session_cap) == (0.5, 3)
    with TestClient(create_app(settings=s)) as client:
        memory = client.app.state.services.memory  # type: ignore[attr-defined]
        assert memory.settings.neighbor_weight == 0.5 and memory.settings.session_cap == 3
        assert memory.index_metadata == ("label", "project")
        assert memory.store.index_neighbors is False
    monkeypatch.setenv("ENGRAMDB_RECALL", '{"rrf_k": 20, "fusion": "rrf"}')
    assert load_settings().recall_settings.rrf_k == 20
    for bad, message in (
        ('{"neighbour_weight": 1}', "unknown recall setting 'neighbour_weight'"),
        ('{"session_decay": 3}', "session_decay must be between 0 and 1"),
    ):
        monkeypatch.setenv("ENGRAMDB_RECALL", bad)
        with pytest.raises(InvalidInputError, match=message):
            load_settings()
