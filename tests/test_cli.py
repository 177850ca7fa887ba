"""The command line: `ls` lists every section, and a broken module is an error, not a silently missing section."""

import pytest

from pipeline import cli


def test_ls_lists_every_section(capsys):
    assert cli.main(["ls"]) == 0
    printed = capsys.readouterr().out
    for title in ("stage kinds:", "rewards:", "tasks:", "benchmarks:", "released datasets:"):
        assert title in printed
    assert "math500" in printed and "accuracy" in printed


def test_ls_surfaces_a_broken_listing(monkeypatch):
    from pipeline.data import benchmarks

    monkeypatch.delattr(benchmarks, "list_benchmarks")
    with pytest.raises(AttributeError, match="list_benchmarks"):
        cli.main(["ls"])


def test_eval_and_card_commands_are_always_there():
    sub = cli.build_parser()._subparsers._group_actions[0]
    assert {"run", "plan", "validate", "ls", "cost", "eval", "card"} <= set(sub.choices)
