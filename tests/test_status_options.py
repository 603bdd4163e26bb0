"""`traxctl status` is parsed twice (a fast path without Typer, and the Typer command for help and mistakes): both
come from one table, so they take the same lines to the same call, and leave the same mistakes to Typer."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from traxd.cli import status_cmd, traxctl_app

LINES = [[], ["--json"], ["-f", "--interval", "0.5", "--count", "2"], ["--follow", "--since", "2h"], ["--all"],
         ["--since", "2026-11-30T08:00", "--json", "--interval", "0.1"]]  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for module in (status_cmd, traxctl_app):
        monkeypatch.setattr(module, "run_status", lambda **kw: seen.append(kw))
    return seen


@pytest.mark.parametrize("line", LINES, ids=" ".join)
def test_both_parsers_make_the_same_call(line: list[str], calls: list[dict[str, Any]]) -> None:
    assert status_cmd.fast_status(["status", *line]) == 0
    done = CliRunner().invoke(traxctl_app.app, ["status", *line])
    assert done.exit_code == 0, done.output
    assert calls[0] == calls[1] and set(calls[0]) == {o.dest for o in status_cmd.OPTIONS}


@pytest.mark.parametrize("line", [["--interval", "0.05"], ["--interval", "nan"], ["--count", "x"], ["--jsn"],
                                  ["--help"], ["--since"]])  # fmt: skip
def test_mistakes_go_to_typer_which_says_what_is_wrong(line: list[str], calls: list[dict[str, Any]]) -> None:
    assert status_cmd.fast_status(["status", *line]) is None
    done = CliRunner().invoke(traxctl_app.app, ["status", *line])
    assert done.exit_code == (0 if line == ["--help"] else 2) and calls == []
