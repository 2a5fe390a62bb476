"""py-spy's raw stacks summed by function: self and total shares."""

from __future__ import annotations

from tokenshare.bench.sampling import Profile

RAW = """\
<module> (tokenshare/__main__.py:3);run (sinks/checkpoint.py:200);flush (sinks/checkpoint.py:290);insert_arrow (clickhouse.py:40) 6
<module> (tokenshare/__main__.py:3);run (sinks/checkpoint.py:200);poll_once (sinks/checkpoint.py:230) 3
<module> (tokenshare/__main__.py:3);run (sinks/checkpoint.py:201);flush (sinks/checkpoint.py:291);insert_arrow (clickhouse.py:41) 1
not a stack line
"""  # noqa: E501


def test_samples_are_summed_by_function_whatever_the_line() -> None:
    profile = Profile.parse(RAW)
    assert profile.samples == 10
    assert profile.self_counts["insert_arrow (clickhouse.py)"] == 7
    assert profile.self_counts["poll_once (checkpoint.py)"] == 3
    assert profile.total_counts["run (checkpoint.py)"] == 10  # on every stack, counted once
    assert profile.total_counts["flush (checkpoint.py)"] == 7


def test_the_table_lists_the_busiest_functions_first_with_both_shares() -> None:
    lines = Profile.parse(RAW).table().splitlines()
    assert lines[0].split() == ["function", "self", "total"]
    assert lines[1].startswith("insert_arrow (clickhouse.py)")
    assert lines[1].split()[-2:] == ["70.0%", "70.0%"]
    assert lines[2].split()[-2:] == ["30.0%", "30.0%"]


def test_no_samples_says_so() -> None:
    assert Profile.parse("").table() == "(no busy samples)"
