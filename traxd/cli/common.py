"""What every Trax command shares: one-line errors with the right exit code, settings, a store."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from traxd.config import Settings, load_settings
from traxd.errors import ConfigError, UsageError, UserError

if TYPE_CHECKING:  # the read-only commands never load the store (SQLAlchemy, the table declarations), nor Typer
    import typer

    from traxd.queue.store import Store

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    import typer

    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def report_error(exc: UserError | KeyboardInterrupt) -> int:
    """One line on stderr for a UserError (none for Ctrl-C); the exit code: 2 usage/config, 1 failure, 130 Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    sys.stderr.write(f"error: {exc}\n")
    return EXIT_USAGE if isinstance(exc, (UsageError, ConfigError)) else EXIT_FAILURE


def one_line_errors(fn: F) -> F:
    """Turn UserErrors into one line on stderr: exit 2 for usage/config mistakes, 1 for failures."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UserError, KeyboardInterrupt) as exc:
            import typer

            raise typer.Exit(report_error(exc)) from None

    return wrapper  # type: ignore[return-value]


def settings(**overrides: Any) -> Settings:
    """Settings with these flags on top (None = not given)."""
    return load_settings(overrides)


@contextmanager
def store_for(s: Settings) -> Iterator[Store]:
    """A store on the settings' DB (created and upgraded if needed), disposed afterwards."""
    from traxd.database import open_store

    store = open_store(s, pool_size=2)
    try:
        yield store
    finally:
        store.engine.dispose()

