"""Handlers: one module per task type, each a plain function (ctx, payload) -> result dict."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from traxd.config import Settings
from traxd.decoding import usable_cores
from traxd.errors import ConfigError
from traxd.handlers.registry import Handler, Registry, TaskContext
from traxd.types import TaskType

__all__ = [
    "TEST_HANDLERS_ENV", "Handler", "Registry", "TaskContext", "default_registry", "default_type_limits",
    "load_registry",
]  # fmt: skip

# `module:function` returning a Registry (called with the settings): tests and benchmarks swap the real
# handlers for their own in `trax batch` and `traxd run` subprocesses through this one variable.
TEST_HANDLERS_ENV = "TRAX_TEST_HANDLERS"


def default_registry(settings: Settings | None = None) -> Registry:
    """The registry the daemon runs: every task type with its real handler."""
    from traxd.handlers.diarize import Diarizers
    from traxd.handlers.diarize import make_handler as make_diarize
    from traxd.handlers.preprocess import preprocess
    from traxd.handlers.transcribe import Backends, make_handler
    from traxd.handlers.translate import handle_translate

    registry = Registry()
    registry.register(TaskType.PREPROCESS, preprocess)
    registry.register(TaskType.TRANSCRIBE, make_handler(Backends()))
    registry.register(TaskType.YOUTUBE, deferred("traxd.handlers.youtube", "handle_youtube"))
    registry.register(TaskType.DOWNLOAD, deferred("traxd.handlers.download", "handle_download"))
    registry.register(TaskType.ENHANCE, deferred("traxd.handlers.enhance", "handle_enhance"))
    registry.register(TaskType.DIARIZE, make_diarize(Diarizers()))
    registry.register(TaskType.TRANSLATE, handle_translate)
    registry.register(TaskType.SUMMARIZE, deferred("traxd.handlers.summarize", "handle_summarize"))
    registry.register(TaskType.NOTIFY, deferred("traxd.handlers.notify", "handle_notify"))
    return registry


def deferred(module: str, name: str) -> Handler:
    """A handler whose module is imported by its first task: the SDKs behind it (openai, yt-dlp, httpx, apprise) cost ~1.7 s
    of start-up (`trax batch` on a local model measured 1.1 s for openai alone) that a run without such tasks never
    needs."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Import the real handler and run it."""
        real: Handler = getattr(importlib.import_module(module), name)
        return real(ctx, payload)

    handle.__qualname__ = f"deferred({module}.{name})"
    return handle


def default_type_limits(settings: Settings | None = None) -> dict[TaskType, int]:
    """Slots per CPU-bound type (FFmpeg, local inference) so they never take every slot; API-bound types are free."""
    cores = usable_cores()  # the cores the local model's threads use too
    limits = {TaskType.PREPROCESS: cores, TaskType.DIARIZE: 1}  # one diarizer at a time: ~1 GB, every core
    if settings is not None and settings.effective_backend == "local":
        # One model decodes one batch at a time on every core (traxd/adapters/transcribe_local.py); a second
        # local task reads and VAD-cuts its audio meanwhile, so as many as there are cores keep them busy.
        limits[TaskType.TRANSCRIBE] = cores
    return limits


def load_registry(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Registry:
    """The registry every command runs: default_registry, unless TRAX_TEST_HANDLERS names another factory."""
    spec = (os.environ if env is None else env).get(TEST_HANDLERS_ENV, "").strip()
    if not spec:
        return default_registry(settings)
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "registry")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{TEST_HANDLERS_ENV}={spec!r} cannot be loaded: {exc}") from None
    registry = factory(settings)
    if not isinstance(registry, Registry):
        raise ConfigError(f"{TEST_HANDLERS_ENV}={spec!r} returned {type(registry).__name__}, not a Registry")
    return registry
