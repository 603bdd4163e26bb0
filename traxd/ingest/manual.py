"""`traxctl add`: files, folders and URLs given on the command line, queued without waiting to settle."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from traxd.errors import UsageError
from traxd.ingest.enqueue import Ingestor, Queued
from traxd.ingest.scan import stamp_of, walk


def looks_like_url(text: str) -> bool:
    """`scheme://...` (any scheme: unsupported ones are recorded as rejected, not mistaken for paths)."""
    head, sep, _ = text.partition("://")
    return bool(sep) and head.replace("+", "").replace(".", "").replace("-", "").isalnum()


def check_inputs(inputs: Sequence[str]) -> list[str | Path]:
    """URLs as they are, paths resolved; a missing path, symlink or special file is a usage error."""
    out: list[str | Path] = []
    for raw in inputs:
        if looks_like_url(raw):
            out.append(raw)
            continue
        path = Path(raw).expanduser()
        if path.is_symlink():
            raise UsageError(f"{raw} is a symlink: add the file it points to ({os.path.realpath(path)})")
        if not path.exists():
            raise UsageError(f"no such file or folder: {raw}")
        if not path.is_dir() and stamp_of(path) is None:
            raise UsageError(f"{raw} is not a regular file")
        out.append(path.resolve())
    return out


def add_inputs(ingestor: Ingestor, inputs: Sequence[str], outbox: Path) -> list[Queued]:
    """Queue every input (folders are walked with the inbox rules); all inputs are checked first."""
    checked = check_inputs(inputs)
    queued: list[Queued] = []
    for item in checked:
        if isinstance(item, str):
            queued.append(ingestor.ingest_url(item, outbox))
        elif item.is_dir():
            for path in sorted(walk(item, (outbox,))):
                queued += ingestor.ingest_path(path, outbox)
        else:
            queued += ingestor.ingest_path(item, outbox)
    return queued
