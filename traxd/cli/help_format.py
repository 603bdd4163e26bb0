"""How every Trax command's --help looks: Typer's plain layout, each value named by what it is (SECONDS, PATH, N).

The plain layout (click's) wraps long help under the option, where the rich panels cut option names and help
text at 80 columns, and shows a flag as a flag instead of `<bool>`. Each value option and argument declares a
metavar; Typer would still print an argument's Python type after it (`ID <int>`), so that is left out here.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument

PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None, "add_completion": False}

_typed = TyperArgument.display_type_rich


def _named(self: TyperArgument, ctx: Any) -> str | None:
    """An argument with a metavar is shown by it alone (its name column already says it)."""
    return None if self.metavar is not None else _typed(self, ctx)


TyperArgument.display_type_rich = _named  # type: ignore[method-assign,assignment]  # typer types it on its base class
