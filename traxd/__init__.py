"""Trax: an unattended media-transcription queue.

The programmatic batch API: `from traxd import create_batch_processor, TaskType, BatchTask, BatchProgress,
BatchResult` (scripts written for the in-memory batch processor Trax grew from run with only their import line
changed). It is loaded on first use, so importing a small module such as `traxd.types` stays light.
"""

from typing import Any

# Logging is set up (warnings only) by the first traxd.logging.get_logger call, so commands that never log,
# such as `traxctl status`, do not pay for importing structlog.

__all__ = ["BatchProcessor", "BatchProgress", "BatchResult", "BatchTask", "SearchHit", "TaskType",
           "create_batch_processor", "search"]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Load the API (traxd.batch, traxd.archive) lazily on first access."""
    if name in ("search", "SearchHit"):
        from traxd import archive

        return getattr(archive, name)
    if name in __all__:
        from traxd import batch

        return getattr(batch, name)
    raise AttributeError(f"module 'traxd' has no attribute {name!r}")
