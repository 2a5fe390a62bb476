"""deploy/clickhouse/roles.sql: valid ClickHouse, least privilege, no secrets."""

from __future__ import annotations

import re

from clickhouse_connect.driver.client import Client

from tests.paths import DEPLOY
from tokenshare.sinks.clickhouse import _statements

ROLES = DEPLOY / "clickhouse" / "roles.sql"


def statements() -> list[str]:
    return _statements(ROLES.read_text())


def test_every_statement_parses(ch_client: Client) -> None:
    # The embedded engine has no access control, but its parser is the server's.
    for statement in statements():
        text = statement.replace("${", "").replace("}", "")
        ast = ch_client.query(f"EXPLAIN AST {text}").result_rows  # raises on a syntax error
        assert ast, statement


def test_analyst_reads_only_and_ingest_cannot_change_schema() -> None:
    grants = [
        s for s in statements() if s.startswith("GRANT") and not s.startswith("GRANT tokenshare_")
    ]
    to = lambda role: [g for g in grants if g.rstrip().endswith(f"TO {role}")]  # noqa: E731
    assert to("tokenshare_analyst") and all(
        g.startswith("GRANT SELECT ") for g in to("tokenshare_analyst")
    )
    for grant in to("tokenshare_ingest"):
        assert not re.search(r"\b(ALTER|DROP|CREATE|TRUNCATE)\b", grant), grant
    profile = next(s for s in statements() if "tokenshare_analyst_profile SETTINGS" in s)
    assert "readonly = 2 CONST" in profile


def test_no_password_in_the_file() -> None:
    for line in ROLES.read_text().splitlines():
        if "IDENTIFIED" in line:
            assert re.search(r"BY '\$\{TOKENSHARE_[A-Z_]+_PASSWORD\}'", line), line
