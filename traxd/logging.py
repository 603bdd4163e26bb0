"""structlog set-up: JSON lines to $TRAX_HOME/logs (rotated), readable lines on a TTY, secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]
_SECRET_KEYS = re.compile(r"(?i)(api[_-]?key|authorization|password|secret|token)")
_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (API keys) so that they are masked wherever they appear."""
    for value in values:
        if value and len(value) >= 6:
            _known_secrets.add(value)


def redact_text(text: str) -> str:
    """Mask known secrets, sk-… keys, bearer tokens and key=value credentials in a string."""
    for secret in _known_secrets:
        text = text.replace(secret, "[REDACTED]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: "[REDACTED]" if _SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(v) for v in value)
    return value


def redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: no secret reaches a log line."""
    return _redact(event_dict)


def configure(level: str = "warning", logs_dir: Path | None = None, tty: bool | None = None) -> None:
    """Route structlog through stdlib logging: JSON to logs_dir/traxd.log, console lines to stderr."""
    lvl = _LEVELS.get(level.lower(), logging.INFO)
    pre = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_processor,
    ]
    structlog.configure(
        processors=[*pre, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger("trax")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(lvl)
    root.propagate = False
    is_tty = sys.stderr.isatty() if tty is None else tty
    console = logging.StreamHandler(sys.stderr)
    renderer = structlog.dev.ConsoleRenderer(colors=is_tty) if is_tty else structlog.processors.JSONRenderer()
    console.setFormatter(structlog.stdlib.ProcessorFormatter(processors=[_strip_meta, renderer], foreign_pre_chain=pre))
    root.addHandler(console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        rotating = logging.handlers.RotatingFileHandler(logs_dir / "traxd.log", maxBytes=10_000_000, backupCount=5)
        rotating.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[_strip_meta, structlog.processors.JSONRenderer()], foreign_pre_chain=pre
            )
        )
        root.addHandler(rotating)


def _strip_meta(logger: Any, name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return structlog.stdlib.ProcessorFormatter.remove_processors_meta(logger, name, event_dict)


def get_logger(name: str) -> Any:
    """A structlog logger under the `trax` stdlib logger tree."""
    return structlog.get_logger(f"trax.{name}")
