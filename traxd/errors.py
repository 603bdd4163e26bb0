"""Error classes of Trax and classify(exc): retryable, permanent or auth, decided by type."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from traxd.types import ErrorKind, Failure


class TraxError(Exception):
    """Base of every error Trax raises on purpose."""


class UserError(TraxError):
    """Bad input or set-up from the user: shown as one line, never a traceback."""


class ConfigError(UserError):
    """A setting is missing, misspelt or of the wrong type."""


class UsageError(UserError):
    """The command line itself is wrong (missing path, bad option value): exit code 2."""


class DatabaseError(UserError):
    """The database cannot be opened or is not a Trax database."""


class InvalidTaskError(UserError, ValueError):
    """A task that cannot be queued: unknown type, payload that is not a JSON object."""


class TaskError(TraxError):
    """An error raised by a handler or adapter, already classified."""

    kind: ErrorKind = ErrorKind.RETRYABLE

    def __init__(self, message: str, *, retry_after: float | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The status an API answered with, set by the adapter that saw it: the error history keeps it as a field.
        self.http_status = http_status


class RetryableError(TaskError):
    """Temporary: network, timeouts, 429/5xx, resource pressure."""

    kind = ErrorKind.RETRYABLE


class RateLimitedError(RetryableError):
    """An API said "too many requests" (429): retried after its Retry-After, else after the backoff."""


class DiskFullError(RetryableError):
    """No space left on the device that holds a folder Trax writes to: retried once space is back."""


class BadAnswerError(RetryableError):
    """An LLM reply that failed validation (not JSON, ids missing, empty): the queue retries the task (only the
    chunk in question is sent again), then fails it with this reason."""


class PermanentError(TaskError):
    """Will fail again however often it is tried: missing file, not media, 4xx."""

    kind = ErrorKind.PERMANENT


class PayloadTooLargeError(PermanentError):
    """The server refused an upload as too large (413): the caller may re-chunk smaller once."""


class ModelLoadError(PermanentError):
    """The local model cannot be loaded (no such folder, not downloaded, not a model): this task fails, nothing pauses."""


class AuthError(TaskError):
    """Credentials refused (401/402/403): pause the task type instead of burning the queue."""

    kind = ErrorKind.AUTH


class ModelGoneError(AuthError):
    """The configured API model no longer exists: pause the type and name the fix (a job's own model fails the job)."""


class DiarizationUnavailableError(PermanentError):
    """Speakers were asked for but cannot be found here (extra not installed, model missing): the transcript stands."""


_PERMANENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG}


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: OSError, folder: Path, need_bytes: int | None, what: str) -> DiskFullError:
    """The DiskFullError of a write that ran out of space: which folder, how much it needs and how much is free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = 0
    need = f" needs {_size(need_bytes)}," if need_bytes is not None else ""
    return DiskFullError(f"No space left on device: {what} in {folder}{need} {_size(free)} free there "
                         f"({exc.strerror or exc}); retried once space is freed")  # fmt: skip


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(1, round(n / 1e3))} kB"


def classify(exc: BaseException) -> Failure:
    """Map an exception to what the queue should do with the task that raised it."""
    name = type(exc).__name__
    message = str(exc) or name
    if isinstance(exc, TaskError):
        return Failure(exc.kind, message, exc.retry_after, name, exc.http_status)
    if isinstance(exc, (TimeoutError, ConnectionError, MemoryError)):
        return Failure(ErrorKind.RETRYABLE, message, None, name)
    if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
        return Failure(ErrorKind.PERMANENT, message, None, name)
    if isinstance(exc, (ValueError, TypeError, KeyError, LookupError)):
        # A handler rejecting its payload will reject it again.
        return Failure(ErrorKind.PERMANENT, message, None, name)
    return Failure(ErrorKind.RETRYABLE, message, None, name)
