"""How the parts are wired: no import cycles, and handlers read typed settings by attribute."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from traxd.config import Settings
from traxd.handlers.registry import TaskContext
from traxd.types import Task, TaskState, TaskType

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ROOT / "traxd" / "handlers"
SETTING_NAMES = {f.name for f in fields(Settings)} | {n for n in dir(Settings) if isinstance(getattr(Settings, n), property)}


def _settings_reads(tree: ast.AST) -> tuple[list[str], list[str]]:
    """Attributes read from `<x>.settings` (or a name bound to it), and the string-named reads that bypass them."""
    aliases = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_settings(node.value)
               for t in node.targets if isinstance(t, ast.Name)}  # fmt: skip
    attrs, by_name = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            _is_settings(node.value) or (isinstance(node.value, ast.Name) and node.value.id in aliases)
        ):
            attrs.append(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "getattr" and node.args and _is_settings(node.args[0]):
                by_name.append(ast.unparse(node))
            if node.func.id == "setting" or (node.func.id == "option" and any(isinstance(a, ast.Constant)
                                                                              for a in node.args[2:])):  # fmt: skip
                by_name.append(ast.unparse(node))  # the old setting(ctx, "name") and option(ctx, name, "name")
    return attrs, by_name


def _is_settings(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "settings"


@pytest.mark.parametrize("module", sorted(HANDLERS.glob("*.py")), ids=lambda p: p.name)
def test_handlers_read_settings_as_attributes_that_exist(module: Path) -> None:
    attrs, by_name = _settings_reads(ast.parse(module.read_text(encoding="utf-8")))
    assert by_name == [], f"{module.name} reads settings by a string name"
    assert set(attrs) <= SETTING_NAMES, f"{module.name} reads settings Settings does not have"


def test_a_context_without_settings_has_every_default() -> None:
    task = Task(1, TaskType.TRANSCRIBE, {}, TaskState.RUNNING, 6, 1, 3, 0.0, "me", None, None, None, [], None, None,
                None, 0.0, 0.0, None, None)  # fmt: skip
    ctx = TaskContext(task)
    assert isinstance(ctx.settings, Settings)
    assert ctx.settings.summary_chunk_chars == Settings.summary_chunk_chars
    with pytest.raises(AttributeError):
        ctx.settings.summary_chunk_char  # type: ignore[attr-defined]  # noqa: B018 - a typo fails at once


def test_no_module_imports_one_that_imports_it_back() -> None:
    """The contract in pyproject.toml: a cycle (even through a lazy or TYPE_CHECKING import) fails with its path."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
