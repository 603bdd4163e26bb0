"""Handlers: one module per task type, each a plain function (ctx, payload) -> result dict."""

from __future__ import annotations

import os
from typing import Any

from traxd.handlers.preprocess import preprocess
from traxd.handlers.registry import Handler, Registry, TaskContext
from traxd.handlers.transcribe import Backends, make_handler
from traxd.types import TaskType

__all__ = ["Handler", "Registry", "TaskContext", "default_registry", "default_type_limits"]


def default_registry(settings: Any = None) -> Registry:
    """The registry the daemon runs: every task type with its real handler."""
    registry = Registry()
    registry.register(TaskType.PREPROCESS, preprocess)
    registry.register(TaskType.TRANSCRIBE, make_handler(Backends()))
    return registry


def default_type_limits(settings: Any = None) -> dict[TaskType, int]:
    """Slots per CPU-bound type (FFmpeg, local inference) so they never take every slot; API-bound types are free."""
    cores = max(1, os.cpu_count() or 1)
    limits = {TaskType.PREPROCESS: cores}
    if settings is not None and settings.effective_backend == "local":
        limits[TaskType.TRANSCRIBE] = max(1, cores // 2)
    return limits

