"""Every analyst command in every format, with stdout not a terminal (as in
`tokenshare crossovers | cat` or `> file`): csv and json are parsed back and hold
every row the query returns, value for value, and tables are not cut."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.factories import crossover_alert
from tokenshare.analysts import queries, study
from tokenshare.cli.main import main
from tokenshare.schema.outputs import AlertMessage
from tokenshare.sinks.query import QueryResult
from tokenshare.sinks.share_tables import write_alerts

MODEL = "deepseek/deepseek-v3.2"
ALL_WEEKS = "520"


@pytest.fixture(scope="module")
def market(ch_client: Client, simulated_market: str) -> str:
    """The simulated market and forty crossover alerts with long texts."""
    alerts = []
    for k in range(40):
        doc = crossover_alert()
        start = date(2026, 1, 5) + timedelta(weeks=k % 20)
        doc.update(
            alert_id=f"crossover-{k}", window_start=start.isoformat(),
            window_end=(start + timedelta(days=7)).isoformat(),
            window_label=f"{start:%G-W%V}", status="final" if k % 2 else "provisional",
            text=f"China overtook US in the ISO week starting {start:%d %B %Y} by a margin",
        )  # fmt: skip
        alerts.append(AlertMessage.model_validate(doc))
    write_alerts(ch_client, simulated_market, alerts)
    return simulated_market


@pytest.fixture
def query(ch_client: Client) -> queries.Query:
    return lambda sql, params: ch_client.query(sql, parameters=params).result_rows


@pytest.fixture
def cli(ch_client: Client, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The commands with run_query answered by this process's engine."""

    def run_query(
        settings: Any, sql: str, parameters: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        result = ch_client.query(sql, parameters=parameters or {})
        return QueryResult(list(result.column_names), [], [list(r) for r in result.result_rows])

    monkeypatch.setattr("tokenshare.sinks.query.run_query", run_query)
    return CliRunner()


Rows = Callable[[queries.Query, str], list[tuple[Any, ...]]]

#: command line -> the rows its csv/json must hold, from the query functions.
COMMANDS: list[tuple[list[str], Rows]] = [
    (["shares", "--by", "model", "--weeks", ALL_WEEKS],
     lambda q, db: [tuple(p) for p in queries.weekly_shares(q, db, "model", weeks=520)]),
    (["shares", "--by", "origin_bloc", "--where", "weights=open", "--exclude-unidentified"],
     lambda q, db: [tuple(p) for p in queries.weekly_shares(
         q, db, "origin_bloc", where={"weights": "open"}, exclude_unidentified=True)]),
    (["crossovers", "--limit", "1000"],
     lambda q, db: [tuple(c) for c in queries.crossovers(q, db, limit=1000)]),
    (["alerts", "--limit", "1000"],
     lambda q, db: [tuple(a) for a in queries.alerts(q, db, limit=1000)]),
    (["top", "--by", "model", "--weeks", ALL_WEEKS, "--limit", "1000"],
     lambda q, db: [(i, t.value, t.total, t.share) for i, t in enumerate(
         queries.top_values(q, db, "model", weeks=520, limit=1000), 1)]),
    (["retention", "--model", MODEL, "--weeks", ALL_WEEKS],
     lambda q, db: sorted(
         (c, a, m.cohort_sizes[c], n, r) for m in [queries.retention(q, db, MODEL, weeks=520)]
         for (c, a), (n, r) in m.cells.items())),
    (["retention", "--model", MODEL, "--monthly", "--users"],
     lambda q, db: [tuple(r) for r in study.monthly_retention(q, db, MODEL, members="users")]),
    (["requests", "--by", "model", "--weeks", ALL_WEEKS, "--top", "4"],
     lambda q, db: [tuple(r) for r in study.per_request(q, db, "model", weeks=520, top=4)]),
    (["requests"], lambda q, db: [tuple(r) for r in study.per_request(q, db)]),
    (["tools", "--by", "category", "--weeks", ALL_WEEKS],
     lambda q, db: [tuple(r) for r in study.tool_use(q, db, "category", weeks=520)]),
    (["prices", "--by", "model", "--limit", "10000"],
     lambda q, db: [tuple(r) for r in study.prices(q, db, "model", limit=10000)]),
    (["volume"], lambda q, db: [tuple(r) for r in study.volume(q, db)]),
    (["volume", "--months"], lambda q, db: [tuple(r) for r in study.volume(q, db, months=True)]),
    (["volume", "--by", "model", "--top", "4"],
     lambda q, db: [tuple(r) for r in study.growth(q, db, "model", weeks=None, top=4)]),
    (["regions", "--weeks", ALL_WEEKS, "--measure", "spend_usd"],
     lambda q, db: [tuple(p) for p in study.continent_shares(
         q, db, weeks=520, measure="spend_usd")]),
    (["breadth", "--users"],
     lambda q, db: [tuple(r) for r in study.models_per_member(q, db, members="users")]),
]  # fmt: skip


def plain(value: Any) -> Any:
    """A value as csv and json carry it."""
    if isinstance(value, date):
        return value.isoformat()
    return value


def from_csv(text: str, columns: list[str]) -> Any:
    return [[_parse(v) for v in row] for row in csv.reader(io.StringIO(text))][1:]


def _parse(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def invoke(cli: CliRunner, database: str, args: list[str]) -> str:
    # No COLUMNS: rich would lay out 80 columns for a stream that is not a terminal.
    env = {"TOKENSHARE_CLICKHOUSE_DATABASE": database, "COLUMNS": None, "LINES": None}
    result = cli.invoke(main, args, env=env)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.mark.parametrize("args, rows", COMMANDS, ids=[" ".join(c[0][:3]) for c in COMMANDS])
def test_piped_output_is_complete(
    cli: CliRunner, market: str, query: queries.Query, args: list[str], rows: Rows
) -> None:
    found = rows(query, market)
    want = [[plain(v) for v in row] for row in found]
    assert want, f"{args}: the query returns rows"
    doc = orjson.loads(invoke(cli, market, [*args, "--format", "json"]))
    same_rows([list(obj.values()) for obj in doc], want, args)
    text = invoke(cli, market, [*args, "--format", "csv"])
    header = next(csv.reader(io.StringIO(text)))
    assert header == list(doc[0]), args
    same_rows(from_csv(text, header), want, args)
    table = invoke(cli, market, args)
    assert "…" not in table, args
    assert "\x1b[" not in table, "no terminal escapes in a pipe"
    # Every label in the rows' second field (the value, week label, ...) is printed whole;
    # the shares grid folds the smaller values into one 'other' row by design.
    words = {str(r[1]) for r in found if isinstance(r[1], str)} if args[0] != "shares" else set()
    missing = [w for w in words if w not in table]
    assert not missing, (args, missing[:5])


def same_rows(got: list[list[Any]], want: list[list[Any]], what: object) -> None:
    """Row for row; floats up to the last bits (ClickHouse sums in parallel, in any order)."""
    assert len(got) == len(want), (what, len(got), len(want))
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w), (what, g, w)
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (what, g, w)
            else:
                assert a == b, (what, g, w)


def test_crossovers_piped_print_whole_week_labels(cli: CliRunner, market: str) -> None:
    """The reported case: `tokenshare crossovers | cat` printed `2026-W…`."""
    text = invoke(cli, market, ["crossovers"])
    labels = {f"{date(2026, 1, 5) + timedelta(weeks=k):%G-W%V}" for k in range(20)}
    assert all(label in text for label in labels)
    alerts = invoke(cli, market, ["alerts", "--limit", "40"])
    assert alerts.count("China overtook US in the ISO week starting") == 40
    assert max(len(line) for line in alerts.splitlines()) > 80


def test_plots_report_their_file_in_every_format(
    cli: CliRunner, market: str, tmp_path: Path
) -> None:
    out = tmp_path / "prices.png"
    args = ["plot", "prices", "--by", "category", "-o", str(out)]
    doc = orjson.loads(invoke(cli, market, [*args, "--format", "json"]))
    assert doc[0]["file"] == str(out) and out.read_bytes()[:4] == b"\x89PNG"
    assert "Elasticity" in doc[0]["drawn"]
    out = tmp_path / "open.png"
    args = ["plot", "shares", "--by", "origin_bloc", "--where", "weights=open", "-o", str(out)]
    rows = list(csv.DictReader(io.StringIO(invoke(cli, market, [*args, "--format", "csv"]))))
    assert [r["file"] for r in rows] == [str(out)] and out.read_bytes()[:4] == b"\x89PNG"
    assert "series" in rows[0]["drawn"]
    out = tmp_path / "c.png"
    assert str(out) in invoke(cli, market, ["plot", "concentration", "-o", str(out)])


def test_every_analyst_command_takes_format() -> None:
    runner = CliRunner()
    commands = ["shares", "crossovers", "alerts", "top", "retention", "requests", "tools",
                "prices", "volume", "regions", "breadth"]  # fmt: skip
    plots = ["shares", "concentration", "retention", "prices"]
    for args in [[c] for c in commands] + [["plot", p] for p in plots]:
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "--format [table|csv|json]" in result.output, args
        assert "Examples:" in result.output, args
