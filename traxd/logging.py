"""structlog set-up: JSON lines to $TRAX_HOME/logs (rotated), readable lines on a TTY, secrets redacted."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
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
    redacted: dict[str, Any] = _redact(event_dict)
    return redacted


LOG_FILE = "traxd.log"
MAX_BYTES = 10_000_000
BACKUPS = 5


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created 0600 (logs may name private files even with secrets redacted).

    A full disk does not print a traceback per record: one line on stderr says the log is paused, one more when
    writing works again; the records in between are dropped (the daemon keeps running).
    """

    full = False
    _failed = False

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record; notice when a full disk lets the log be written again."""
        was_full, self._failed = self.full, False
        super().emit(record)
        if was_full and not self._failed:
            self.full = False
            alert(f"the log {self.baseFilename} is written again")

    def handleError(self, record: logging.LogRecord) -> None:
        """A full disk: say so once on stderr; anything else: the standard report."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            super().handleError(record)
            return
        self._failed = True
        if not self.full:
            self.full = True
            alert(f"the log {self.baseFilename} is not written: {exc.strerror}; records are dropped until "
                  "space is freed")  # fmt: skip


def alert(message: str) -> None:
    """One line on stderr (the service manager's journal), for what must be seen even when the log cannot be."""
    try:
        sys.stderr.write(f"traxd: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _pre_chain() -> list[Any]:
    # Tracebacks are rendered to text *before* redaction, so a key inside an exception message is masked too.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]


_configured = threading.Event()


class TraxLogger(structlog.stdlib.BoundLogger):
    """A stdlib-backed logger whose level is the `trax` stdlib logger's, read at each call.

    structlog caches a logger on first use with the wrapper class of that moment; a filtering class made for one
    level would keep that level after a later `configure`, so the level lives in stdlib logging instead.
    """

    def is_enabled_for(self, level: int) -> bool:
        """Whether a record at this stdlib level would be written now."""
        return bool(self._logger.isEnabledFor(level))


def configure(level: str = "warning", logs_dir: Path | None = None, tty: bool | None = None) -> None:
    """Route structlog and stdlib logging (redacted) to JSON lines in logs_dir/traxd.log and to stderr."""
    _configured.set()
    lvl = _LEVELS.get(level.lower(), logging.INFO)
    pre = _pre_chain()
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *pre, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=TraxLogger,
        cache_logger_on_first_use=True,
    )
    # Handlers sit on the root logger so that library warnings (httpx, openai, ...) are redacted as well.
    root = logging.getLogger()
    for logger in (root, logging.getLogger("trax")):
        for handler in [h for h in logger.handlers if getattr(h, "_trax", False) or logger.name == "trax"]:
            logger.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)
    trax = logging.getLogger("trax")
    trax.setLevel(lvl)
    trax.propagate = True
    is_tty = sys.stderr.isatty() if tty is None else tty
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_formatter(_console_renderer(is_tty), pre))
    _add(root, console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        rotating = PrivateRotatingFileHandler(logs_dir / LOG_FILE, maxBytes=MAX_BYTES, backupCount=BACKUPS)
        rotating.setFormatter(_formatter(structlog.processors.JSONRenderer(), pre))
        _add(root, rotating)


def _add(logger: logging.Logger, handler: logging.Handler) -> None:
    handler._trax = True  # type: ignore[attr-defined]  # ours, so a re-configure removes only ours
    logger.addHandler(handler)


def _console_renderer(is_tty: bool) -> Any:
    if not is_tty:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=True, exception_formatter=structlog.dev.plain_traceback)


def _formatter(renderer: Any, pre: list[Any]) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(processors=[_strip_meta, renderer], foreign_pre_chain=pre)


def install_excepthooks() -> None:
    """Uncaught exceptions (main and threads) go through the redacting log instead of raw stderr."""
    crash = get_logger("crash")

    def _hook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        crash.error("unhandled_exception", exc_info=(exc_type, exc, tb))

    def _thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit and args.exc_value is not None:
            crash.error("unhandled_exception", thread=getattr(args.thread, "name", None),
                        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # fmt: skip

    sys.excepthook = _hook
    threading.excepthook = _thread_hook


def flush() -> None:
    """Flush every log handler (before a hard exit)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def _strip_meta(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return structlog.stdlib.ProcessorFormatter.remove_processors_meta(logger, name, event_dict)


def get_logger(name: str) -> Any:
    """A structlog logger under the `trax` stdlib logger tree (quiet, warnings only, until configured otherwise)."""
    if not _configured.is_set():
        configure("warning")
    return structlog.get_logger(f"trax.{name}")
