"""What every Trax command shares: one-line errors with the right exit code, settings, a store."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from traxd.config import Settings, load_settings
from traxd.errors import ConfigError, UsageError, UserError
from traxd.queue.store import Store

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def one_line_errors(fn: F) -> F:
    """Turn UserErrors into one line on stderr: exit 2 for usage/config mistakes, 1 for failures."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UsageError, ConfigError) as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except UserError as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings(**overrides: Any) -> Settings:
    """Settings with these flags on top (None = not given)."""
    return load_settings(overrides)


@contextmanager
def store_for(s: Settings) -> Iterator[Store]:
    """A store on the settings' DB (created and upgraded if needed), disposed afterwards."""
    from traxd.daemon.home import open_store

    store = open_store(s, pool_size=2)
    try:
        yield store
    finally:
        store.engine.dispose()
