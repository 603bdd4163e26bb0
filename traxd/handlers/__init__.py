"""Handlers: one module per task type, each a plain function (ctx, payload) -> result dict."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from traxd.config import Settings
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
    # Imported here: the SDKs behind the handlers (openai, yt-dlp, httpx) cost ~50 MB and seconds of start-up,
    # which traxctl and the queue itself never need.
    from traxd.handlers.diarize import Diarizers
    from traxd.handlers.diarize import make_handler as make_diarize
    from traxd.handlers.download import handle_download
    from traxd.handlers.enhance import handle_enhance
    from traxd.handlers.notify import handle_notify
    from traxd.handlers.preprocess import preprocess
    from traxd.handlers.summarize import handle_summarize
    from traxd.handlers.transcribe import Backends, make_handler
    from traxd.handlers.translate import handle_translate
    from traxd.handlers.youtube import handle_youtube

    registry = Registry()
    registry.register(TaskType.PREPROCESS, preprocess)
    registry.register(TaskType.TRANSCRIBE, make_handler(Backends()))
    registry.register(TaskType.YOUTUBE, handle_youtube)
    registry.register(TaskType.DOWNLOAD, handle_download)
    registry.register(TaskType.ENHANCE, handle_enhance)
    registry.register(TaskType.DIARIZE, make_diarize(Diarizers()))
    registry.register(TaskType.TRANSLATE, handle_translate)
    registry.register(TaskType.SUMMARIZE, handle_summarize)
    registry.register(TaskType.NOTIFY, handle_notify)
    return registry


def default_type_limits(settings: Settings | None = None) -> dict[TaskType, int]:
    """Slots per CPU-bound type (FFmpeg, local inference) so they never take every slot; API-bound types are free."""
    cores = max(1, os.cpu_count() or 1)
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
