"""Inputs named by the user (`traxctl add`, `trax batch PATH`, the API): checked first, then queued without waiting to
settle; folders are walked with the inbox's rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from traxd.errors import UsageError
from traxd.ingest.enqueue import Ingestor, Outcome, read_urls
from traxd.ingest.scan import skip_reason, walk
from traxd.urls import looks_like_url


def check_path(raw: str) -> Path:
    """A named file or folder, resolved; UsageError saying why when it is not an input (the reasons of the inbox)."""
    path = Path(raw).expanduser()
    if not path.is_symlink() and not path.exists():
        raise UsageError(f"no such file or folder: {raw}")
    if path.is_dir() and not path.is_symlink():
        return path.resolve()
    reason = skip_reason(path) or _text_problem(path)
    if reason:
        raise UsageError(f"{raw} is not an input: {reason}")
    return path.resolve()


def _text_problem(path: Path) -> str | None:
    """Why a named .txt is no list of URLs (the inbox skips such a file once it has read it)."""
    return read_urls(path)[1] if path.suffix.lower() == ".txt" else None


def check_inputs(inputs: Sequence[str]) -> list[str | Path]:
    """URLs as they are, paths resolved; a missing path or a file that is not an input is a usage error."""
    return [raw if looks_like_url(raw) else check_path(raw) for raw in inputs]


def add_inputs(ingestor: Ingestor, inputs: Sequence[str], outbox: Path) -> list[Outcome]:
    """Queue every input (folders are walked with the inbox rules); all inputs are checked first."""
    checked = check_inputs(inputs)
    outcomes: list[Outcome] = []
    for item in checked:
        if isinstance(item, str):
            outcomes.append(ingestor.ingest_url(item, outbox))
        elif item.is_dir():
            for path in sorted(walk(item, (outbox,))):
                outcomes += ingestor.ingest_path(path, outbox)
        else:
            outcomes += ingestor.ingest_path(item, outbox)
    return outcomes
