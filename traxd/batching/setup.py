"""Composition helpers shared by the batch API and `trax batch`: settings and limit checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psutil

from traxd.config import Settings, load_settings, with_changes
from traxd.errors import UserError


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
