"""`tokenshare rules test` and `rules check` over events stored the way the store writes them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.cli.main import main
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.wire import encode
from tokenshare.sinks.query import QueryResult
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.backtest import backtest
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import load_day_sums

#: Monday of 2026-W06.
MONDAY = datetime(2026, 2, 2, 12, tzinfo=UTC)
RULES = """
[[crossover]]
name = "China vs US"
dimensions = ["origin_bloc"]
top_k = 0
pairs = [{ dimension = "origin_bloc", a = "China", b = "US" }]

[[jumps]]
name = "every wobble"
dimension = "origin_bloc"
points = 0.5
"""


def stream() -> list[dict[str, Any]]:
    """Four weeks: US ahead for two, then China (deepseek) ahead for two."""
    out = []
    for week, china in enumerate([2, 3, 8, 9]):
        for i in range(10):
            model = "deepseek/deepseek-chat" if i < china else "anthropic/claude-4.5-sonnet"
            ts = MONDAY + timedelta(weeks=week, hours=12 * i)
            out.append(
                event(
                    100 * week + i,
                    model=model,
                    ts=ts.isoformat().replace("+00:00", "Z"),
                    prompt_tokens=1000,
                    completion_tokens=100,
                    reasoning_tokens=0,
                    cached_tokens=0,
                )
            )
    return out


@pytest.fixture
def stored(ch_client: Client, migrated: str) -> str:
    messages = [SourceMessage("events", 0, 1, encode(stream()))]
    RawEventWriter(ch_client, migrated).write(
        Enricher(Catalog.load(), 1 << 20).process(messages).rows
    )
    return migrated


@pytest.fixture
def cli(ch_client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The commands, with run_query answered by this process's engine."""

    def run_query(settings: Any, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        result = ch_client.query(sql, parameters=parameters or {})
        return QueryResult(list(result.column_names), [], [list(r) for r in result.result_rows])

    monkeypatch.setattr("tokenshare.sinks.query.run_query", run_query)
    yield CliRunner()


def test_rules_test_prints_what_the_engine_would_fire(
    cli: CliRunner, ch_client: Client, stored: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    env = {"TOKENSHARE_CLICKHOUSE_DATABASE": stored, "COLUMNS": "200"}
    result = cli.invoke(main, ["rules", "test", "--rules", str(path)], env=env)
    assert result.exit_code == 0, result.output
    expected = backtest(
        load_rules(path), load_day_sums(lambda sql: ch_client.query(sql).result_rows, stored)
    )
    crossing = [a for a in expected.alerts if a.rule == "crossover"]
    assert [a.window.label for a in crossing] == ["2026-W08"]
    # Table cells wrap at the console's width: read the words, not the layout.
    words = " ".join(result.output.replace("│", " ").split())
    assert "China overtook US" in words and "2026-W08" in words
    for rule in expected.rules:
        assert rule.name in words
    assert "noisy: every wobble" in words  # fires in every week but the first
    # Counting from a later day leaves the crossover out.
    later = cli.invoke(
        main, ["rules", "test", "--rules", str(path), "--from", "2026-02-16", "--quiet"], env=env
    )
    assert later.exit_code == 0, later.output
    assert "China overtook US" not in later.output


def test_rules_check_names_values_the_data_never_had(
    cli: CliRunner, stored: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[thresholds]]\ndimension = "author"\nvalue = "openai"\nlevel = 0.5\n')
    env = {"TOKENSHARE_CLICKHOUSE_DATABASE": stored, "COLUMNS": "200"}
    result = cli.invoke(main, ["rules", "check", "--rules", str(path)], env=env)
    assert result.exit_code == 1
    assert "no author 'openai' in the data" in result.output
    path.write_text('[[thresholds]]\ndimension = "author"\nvalue = "anthropic"\nlevel = 0.5\n')
    ok = cli.invoke(main, ["rules", "check", "--rules", str(path)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "every rule value occurs in the stored data" in ok.output
