"""Handlers: one module per task type, each a plain function (ctx, payload) -> result dict."""

from __future__ import annotations

from typing import Any

from traxd.handlers.registry import Handler, Registry, TaskContext

__all__ = ["Handler", "Registry", "TaskContext", "default_registry"]


def default_registry(settings: Any = None) -> Registry:
    """The registry the daemon runs: every task type with its real handler."""
    return Registry()
