"""The `tokenshare` group: every command answers --help, and the group loads light."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
from click.testing import CliRunner

from tokenshare.cli.main import main

# Loaded by the commands that need them, never by `tokenshare --help`.
HEAVY = (
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "chdb",
    "clickhouse_connect",
    "pyarrow",
    "matplotlib",
    "numpy",
    "pydantic",
    "pydantic_settings",
)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


def test_every_command_answers_help() -> None:
    paths = [(), *command_paths(main)]
    assert len(paths) > len(main.commands)  # groups (stack, plot) were walked into
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: main {' '.join(path)}".rstrip() in result.output, path


def test_the_group_imports_no_heavy_package() -> None:
    """A fresh interpreter: this test process has loaded them all already."""
    code = "import sys, tokenshare.cli.main; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert "tokenshare.cli.stack" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
