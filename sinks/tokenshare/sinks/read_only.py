"""What the store's SQL endpoint runs: reads, in a ``readonly=2`` profile.

``readonly=2`` is the engine's own rule against writes and DDL that still lets
a query carry ``SETTINGS max_execution_time=...`` (and refuses ``readonly=0``).
It does not cover what an embedded engine can reach beyond its tables, which a
ClickHouse server confines to its user_files folder and grants: table functions
that read files, URLs or other servers, the scalar ``file()``, ``INTO OUTFILE``
(chDB writes the file), ``KILL`` and several statements in one request. So
every statement is first parsed by the engine itself (``formatQuerySingleLine``
refuses multi-statements, ``EXPLAIN AST`` gives the tree) and checked here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

#: Statements (the root of their AST) the endpoint answers.
READ_STATEMENTS = ("Select", "Show", "Describe", "Exists", "Explain", "Set", "Use")

#: Table functions that read nothing outside the engine's own tables.
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generateRandom",
        "generate_series",
        "generateSeries",
        "values",
        "null",
        "view",
        "merge",
        "format",
        "dictionary",
        "loop",
    }
)

#: Scalar functions that read the local file system.
UNSAFE_FUNCTIONS = frozenset({"file"})

#: ClickHouse's code for refusals of this kind (READONLY).
READONLY = 164

_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
#: The formatter writes keywords in capitals; FORMAT ends the statement, but for SETTINGS.
_FORMAT = re.compile(r"\bFORMAT ([A-Za-z0-9_]+)(?: SETTINGS .*)?$")


class Refused(Exception):
    """A statement this endpoint does not run; ``str()`` is ClickHouse-style."""

    def __init__(self, message: str, code: int = READONLY, name: str = "READONLY") -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


#: Runs SQL on the reading connection and returns its TabSeparated text.
Engine = Callable[[str, dict[str, str]], str]


def escape_parameter(value: str) -> str:
    """`value` as a query parameter: parameters are read in TSV-escaped form."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def check(engine: Engine, sql: str, parameters: dict[str, str]) -> str | None:
    """Refuse what the endpoint does not run; returns the statement's own FORMAT, if any."""
    normalized = engine(
        "SELECT formatQuerySingleLine({q:String})", {"q": escape_parameter(sql)}
    ).strip()
    bare = _STRING_LITERAL.sub("''", normalized)
    if _OUTFILE.search(bare):
        raise Refused("INTO OUTFILE is not allowed here: the endpoint only returns results")
    tree = engine(f"EXPLAIN AST {sql}", parameters).splitlines()
    root = tree[0].split()[0] if tree and tree[0].split() else ""
    if not root.startswith(READ_STATEMENTS):
        raise Refused(f"{root or 'this statement'} is not a read: the endpoint is read-only")
    for parent, line in itertools.pairwise(tree):
        words = line.split()
        if len(words) < 2 or words[0] != "Function":
            continue
        name = words[1]
        if name in UNSAFE_FUNCTIONS:
            raise Refused(f"function {name}() reads local files: not allowed here")
        if parent.split()[:1] == ["TableExpression"] and name not in SAFE_TABLE_FUNCTIONS:
            raise Refused(
                f"table function {name}() reads outside the store: not allowed here "
                f"(allowed: {', '.join(sorted(SAFE_TABLE_FUNCTIONS))})"
            )
    named = _FORMAT.search(bare)
    return named.group(1) if named else None
