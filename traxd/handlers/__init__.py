"""Handlers: one module per task type, each a plain function (ctx, payload) -> result dict."""

from __future__ import annotations

from typing import Any

from traxd.handlers.download import handle_download
from traxd.handlers.enhance import handle_enhance
from traxd.handlers.registry import Handler, Registry, TaskContext
from traxd.handlers.youtube import handle_youtube
from traxd.types import TaskType

__all__ = ["Handler", "Registry", "TaskContext", "default_registry"]


def default_registry(settings: Any = None) -> Registry:
    """The registry the daemon runs: every task type with its real handler."""
    registry = Registry()
    registry.register(TaskType.YOUTUBE, handle_youtube)
    registry.register(TaskType.DOWNLOAD, handle_download)
    registry.register(TaskType.ENHANCE, handle_enhance)
    return registry
