"""Commands for alert rules: `rules check` (validate a file) and `rules test` (backtest it)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tokenshare.cli.context import Context, fail
from tokenshare.cli.query import query_or_fail
from tokenshare.console import progress_bar

if TYPE_CHECKING:
    from tokenshare.streams.shares.config import RulesConfig
    from tokenshare.streams.shares.windows import DaySums

out = Console()

RULES_OPTION = click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Rules file (TOML); default: TOKENSHARE_RULES_FILE or the shipped rules.toml.",
)


@click.group()
def rules() -> None:
    """Check and backtest share-shift alert rules."""


def _load(ctx: Context, rules_file: Path | None) -> RulesConfig:
    from tokenshare.streams.shares.config import RulesConfigError, load_rules

    path = rules_file or ctx.settings().rules_file
    try:
        return load_rules(path)
    except RulesConfigError as exc:
        fail(str(exc), "fix the fields named above (did-you-mean hints list near matches)")


def _sums(ctx: Context, cfg: RulesConfig) -> DaySums:
    from tokenshare.streams.shares.engine import load_day_sums

    settings = ctx.settings()

    def query(sql: str) -> list[list[Any]]:
        return [list(row) for row in query_or_fail(ctx, sql).rows]

    return load_day_sums(
        query,
        settings.clickhouse_database,
        cfg.idle_partition_seconds,
        dimensions=None,
        segments=cfg.segments_for(),
    )


@rules.command()
@RULES_OPTION
@click.option("--offline", is_flag=True, help="Only validate the file; do not read the store.")
@click.pass_obj
def check(ctx: Context, rules_file: Path | None, offline: bool) -> None:
    """Validate a rules file: names against the vocabulary, values against the model
    catalog and (unless --offline) against the values the stored data holds."""
    cfg = _load(ctx, rules_file)
    out.print(f"{len(cfg.all_rules())} rules valid; evaluation keys: {', '.join(cfg.keys())}")
    if offline:
        return
    from tokenshare.streams.shares.config import unseen_values

    problems = unseen_values(cfg, _sums(ctx, cfg).values_seen())
    for problem in problems:
        out.print(f"[yellow]warning:[/] {problem}")
    if problems:
        fail(
            f"{len(problems)} rule value(s) never occur in the stored data",
            "fix the values, or ignore this if that traffic has not arrived yet",
        )
    out.print("every rule value occurs in the stored data")


def _day(_: click.Context, __: click.Parameter, value: datetime | None) -> date | None:
    return value.date() if value is not None else None


@rules.command()
@RULES_OPTION
@click.option(
    "--from", "first", type=click.DateTime(["%Y-%m-%d"]), callback=_day, help="First day."
)
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), callback=_day, help="Last day.")
@click.option(
    "--flag-share",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Flag rules that fire in more than this share of their windows.",
)
@click.option("--quiet", is_flag=True, help="Per-rule counts only, not every alert.")
@click.pass_obj
def test(
    ctx: Context,
    rules_file: Path | None,
    first: date | None,
    last: date | None,
    flag_share: float,
    quiet: bool,
) -> None:
    """Backtest rules over the stored history, publishing nothing: how many alerts each
    rule would fire, which, and which rules fire too often to keep switched on."""
    from tokenshare.streams.shares.backtest import backtest

    cfg = _load(ctx, rules_file)
    with progress_bar("reading day sums", None):
        sums = _sums(ctx, cfg)
    if sums.days() is None:
        fail("the store holds no traffic yet", "run `tokenshare demo` or replay events first")
    with progress_bar("evaluating", None):
        report = backtest(cfg, sums, first, last, flag_share)
    table = Table(title=f"Backtest {report.first} .. {report.last}")
    for name, justify in (
        ("rule", "left"),
        ("alerts", "right"),
        ("final", "right"),
        ("windows", "right"),
        ("firing", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in report.rules:
        flag = "[bold red]noisy[/]" if r in report.noisy else ("never" if not r.alerts else "")
        table.add_row(
            escape(r.name),
            str(len(r.alerts)),
            str(r.final),
            str(r.windows),
            f"{r.firing_share:.0%}",
            flag,
        )
    out.print(table)
    final = sum(r.final for r in report.rules)
    out.print(f"{len(report.alerts)} alerts ({final} final) from {len(report.rules)} rules")
    for problem in report.unseen:
        out.print(f"[yellow]warning:[/] {escape(problem)}")
    if report.noisy:
        names = ", ".join(r.name for r in report.noisy)
        out.print(f"[bold red]noisy:[/] {names} fire in more than {flag_share:.0%} of windows")
    if quiet:
        return
    alerts = Table(title="Alerts")
    for name in ("window", "status", "severity", "kind", "rule", "alert"):
        alerts.add_column(name, overflow="fold")
    for a in report.alerts:
        alerts.add_row(
            a.window.label, a.status, a.severity, a.kind, escape(a.rule_name), escape(a.text)
        )
    out.print(alerts)
