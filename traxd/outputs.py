"""Atomic output writes: a temp file in the same folder, fsync, then os.replace (minimal; media helper owns the rest)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write `text` to `path` so a reader sees the old file or the whole new one, never a half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def update_json(path: Path | str, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into the JSON object at `path` (created when missing) and rewrite it atomically."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        data = loaded if isinstance(loaded, dict) else {}
    data.update(patch)
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return data
