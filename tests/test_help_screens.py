"""Every --help of traxd, traxctl and trax reads well in an 80-column terminal: every option name whole, flags shown
as flags and values by what they are (SECONDS, MB, PATH, CODE, N), not by Python type names, nothing cut off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from traxd.cli.trax_cmd import app as trax_app
from traxd.cli.traxctl_app import app as traxctl_app
from traxd.cli.traxd_cmd import app as traxd_app

APPS = {"traxd": traxd_app, "traxctl": traxctl_app, "trax": trax_app}
TYPE_NOISE = re.compile(r"<[a-z][a-z ,|\[\]]*>|\b(?:TEXT|INTEGER|FLOAT|BOOLEAN)\b")


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The command itself, then every subcommand, depth first."""
    yield path, group
    for name, sub in sorted(getattr(group, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


SCREENS = [(name, path, command) for name, app in APPS.items()
           for path, command in _commands(typer.main.get_command(app))]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "command"), SCREENS, ids=[" ".join((n, *p)) for n, p, _ in SCREENS])
def test_help_fits_80_columns_with_every_option_whole(name: str, path: tuple[str, ...], command: Any) -> None:
    done = CliRunner().invoke(APPS[name], [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    text = done.output
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text, text  # nothing cut off
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if param.hidden or not opt.startswith("-"):
                continue
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), f"{opt} is not shown whole:\n{text}"
    assert not TYPE_NOISE.search(text), f"{TYPE_NOISE.search(text)} in:\n{text}"
    assert not re.search(r"\[default: \(", text), text  # a default is a value, once, not a remark in brackets


def test_the_job_options_read_the_same_wherever_they_are_given() -> None:
    """`traxctl add`, `trax batch` and `traxctl watch add` share one declaration of each job option."""
    commands = {" ".join((n, *p)): c for n, p, c in SCREENS if " ".join((n, *p)) in
                ("traxctl add", "trax batch", "traxctl watch add")}  # fmt: skip
    helps: dict[str, set[str]] = {}
    for command in commands.values():
        for param in command.params:
            helps.setdefault(param.opts[0], set()).add(param.help or "")
    shared = {"--enhance", "--translate-to", "--summarize", "--word-timestamps", "--diarize", "--speakers"}
    assert {opt: len(texts) for opt, texts in helps.items() if opt in shared} == dict.fromkeys(shared, 1)
