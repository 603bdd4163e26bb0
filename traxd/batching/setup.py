"""Composition helpers shared by the batch API and `trax batch`: settings, model options, limit checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from traxd.config import Settings, load_settings, with_changes
from traxd.errors import UsageError, UserError
from traxd.model_catalog import MODELS, is_api_model


def processor_settings(kw: Mapping[str, Any], **flags: Any) -> Settings:
    """Settings from an explicit `settings=` (flags applied on top) or loaded with home/database_url overrides."""
    given = kw.get("settings")
    if given is not None:
        return with_changes(given, **{k: v for k, v in flags.items() if v is not None})
    overrides = {"home": kw.get("home"), "database_url": kw.get("database_url"), **flags}
    return load_settings(overrides)


def check_memory_limit(limit_mb: float) -> None:
    """A memory limit must be positive and no more than this machine has."""
    total = psutil.virtual_memory().total / 1e6
    if limit_mb <= 0:
        raise UserError(f"--memory-limit must be greater than 0, got {limit_mb:g}")
    if limit_mb > total:
        raise UserError(f"--memory-limit {limit_mb:g}MB is more than this machine's memory ({total:.0f}MB)")


def model_options(settings: Settings, model: str | None) -> dict[str, Any]:
    """The job options of a model option: none given -> the running backend's configured model decides at run time;
    given -> checked against the backend that will run it (UsageError naming what is accepted) and kept with it."""
    if model is None:
        return {"model": None}
    name, backend = model.strip(), settings.effective_backend
    if backend == "local":
        name = _local_model(name)
    elif problem := _api_model_problem(name, bool(settings.openai_base_url)):
        raise UsageError(problem)
    return {"model": name, "backend": backend}


def _local_model(name: str) -> str:
    from traxd.adapters import local_models as local

    problem = local.model_problem(name)
    if problem is None:
        folder = local.model_folder(name)
        return str(folder.resolve()) if folder is not None and not name.startswith(local.PACKAGE_PREFIX) else name
    accepted = local.ACCEPTED.format(sizes=", ".join(local.sizes()) or "tiny.en, base, small …")
    if is_api_model(name):
        problem = f"{name!r} is an OpenAI model name but the backend is local"
    raise UsageError(f"--model: {problem}; the local backend takes {accepted} (or set TRAX_BACKEND=openai)")


def _api_model_problem(name: str, custom_server: bool) -> str | None:
    """Why `name` is no model for the API backend: a local folder, or (on OpenAI itself) not one of its models."""
    local = name.startswith(("package:", "/", "~", ".")) or Path(name).expanduser().is_dir()
    if not local and (custom_server or is_api_model(name)):
        return None
    accepted = "any model name the server at OPENAI_BASE_URL offers" if custom_server else ", ".join(MODELS)
    return (f"--model: {name!r} is not an API model; the openai backend takes {accepted} "
            "(a local model size or folder needs TRAX_BACKEND=local)")
