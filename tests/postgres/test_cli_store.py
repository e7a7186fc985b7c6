"""The command line against PostgreSQL: every command takes a store URL."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engramdb.cli import _without_password, app
from tests.pg_server import PgServer

runner = CliRunner()


def test_commands_accept_a_postgresql_url(pg_server: PgServer) -> None:
    url = pg_server.new_schema()
    common = ["--store", url, "--embedder", "hashing"]
    result = runner.invoke(app, ["remember", "Ada likes green tea", *common, "-u", "ada", "--json"])
    assert result.exit_code == 0, result.output
    memory_id = json.loads(result.output)["id"]
    result = runner.invoke(app, ["recall", "green tea", *common, "--json", "-k", "1"])
    assert [r["id"] for r in json.loads(result.output)] == [memory_id]
    result = runner.invoke(app, ["stats", "--store", url, "--json"])
    assert json.loads(result.output)["memories"] == 1
    assert url.split("@")[0].split(":")[-1] not in result.output  # no password printed


def test_store_urls_are_printed_without_their_password() -> None:
    assert _without_password("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert _without_password("postgresql://db/x") == "postgresql://db/x"
    assert _without_password("./data") == "./data"
