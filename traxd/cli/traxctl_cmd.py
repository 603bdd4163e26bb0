"""`traxctl`: the entry point. A plain `traxctl status …` runs before Typer loads; everything else is the Typer app.

Typer (with click and pydantic) and rich cost about a third of a second to import, more than the rest of
`status` together: the read-only command users type most imports only what it reads and prints
(traxd.cli.status_cmd). The commands themselves are in traxd.cli.traxctl_app; `app` is re-exported here, loaded
on first use, for `from traxd.cli.traxctl_cmd import app`.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    """Console-script entry point."""
    from traxd.cli.status_cmd import fast_status

    code = fast_status(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from traxd.cli.traxctl_app import app

    app()


def __getattr__(name: str) -> Any:
    """The Typer app, imported on first use (so `main` can answer `status` without it)."""
    if name == "app":
        from traxd.cli.traxctl_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()

