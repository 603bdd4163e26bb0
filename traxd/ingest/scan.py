"""The one rule for what is an input (every entry point uses it), walking folders, the settle check, hashing."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from traxd.urls import MEDIA_EXTENSIONS, is_url_file

# Partial downloads, editor/office temp files, cloud placeholders: never complete media.
PARTIAL_SUFFIXES = (".part", ".crdownload", ".download", ".partial", ".ytdl")
TEMPORARY_SUFFIXES = (".tmp", ".temp", ".swp", "~")
HASH_CHUNK = 1 << 20

# Why a file is not an input: the same words from the inbox's log, `traxctl add`, `trax batch` and the API.
HIDDEN = "hidden file"
TEMPORARY = "temporary file"
PARTIAL = "partial download"
PLACEHOLDER = "cloud placeholder (not downloaded yet)"
SYMLINK = "symlink (add the file it points to)"
SPECIAL = "not a regular file"
EMPTY = "empty file"
NOT_MEDIA = "not a media file"
GONE = "no such file"
# Not files the user meant to give (yet): skipped everywhere. Any other reason (not media, a text without URLs) is
# about a complete file of the wrong kind, which an inbox records as a failed task (see Ingestor.record_rejected).
IGNORED = frozenset({HIDDEN, TEMPORARY, PARTIAL, PLACEHOLDER, SYMLINK, SPECIAL, EMPTY, GONE})


@dataclass(frozen=True)
class Stamp:
    """What must stay unchanged for a file to count as complete."""

    size: int
    mtime_ns: int
    ino: int


def name_problem(name: str) -> str | None:
    """Why a file or folder name is never an input (hidden, temporary, partial download), or None."""
    lower = name.lower()
    if lower.startswith("."):
        return HIDDEN
    if lower.startswith("~") or lower.endswith(TEMPORARY_SUFFIXES):
        return TEMPORARY
    if lower.endswith(PARTIAL_SUFFIXES):
        return PARTIAL
    return PLACEHOLDER if lower.endswith(".icloud") else None


def skip_reason(path: Path) -> str | None:
    """Why a file is not an input, or None when it is one: its name, its kind (lstat: never follows a symlink),
    its size and its extension (media or a URL file). Reading a URL file's lines comes later, when it has settled."""
    reason = name_problem(path.name)
    if reason:
        return reason
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return GONE
    except OSError as exc:
        return f"cannot look at it: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK
    if not stat.S_ISREG(st.st_mode):
        return SPECIAL
    if st.st_size == 0:
        return EMPTY
    if is_url_file(path) or path.suffix.lower().lstrip(".") in MEDIA_EXTENSIONS:
        return None
    return f"{NOT_MEDIA} ({path.suffix.lower() or 'no extension'})"


def stamp_of(path: Path) -> Stamp | None:
    """(size, mtime_ns, inode) of a regular file, without following symlinks; None for anything else or gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Stamp(st.st_size, st.st_mtime_ns, st.st_ino)


def is_within(path: Path, folders: Iterable[Path]) -> bool:
    """True when path is one of `folders` or inside one of them."""
    return any(path == f or f in path.parents for f in folders)


def in_scope(path: Path, root: Path, excluded: Iterable[Path] = ()) -> bool:
    """Whether a path is below inbox `root`, outside Trax's own folders and no hidden/temporary folder on the way."""
    if root not in path.parents or is_within(path, excluded):
        return False
    return not any(name_problem(part) for part in path.relative_to(root).parts[:-1])


def walk(root: Path, excluded: Iterable[Path] = (), recursive: bool = True) -> Iterator[Path]:
    """Every entry under root that is not a folder (files, symlinks, FIFOs: `skip_reason` judges them), without
    entering hidden/temporary folders, symlinked folders or Trax's own folders."""
    skip = set(excluded)
    if is_within(root, skip):
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)
            elif recursive and not name_problem(entry.name) and (path := Path(entry.path)) not in skip:
                stack.append(path)  # only folders are compared: nothing below an excluded one is entered


def sha256_file(path: Path) -> str:
    """The content hash, read in 1 MiB chunks (never the whole file in memory); refuses to follow symlinks."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Settler:
    """Holds paths until (size, mtime_ns, inode) has been unchanged for `settle_seconds` (at least two looks)."""

    def __init__(self, settle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_seconds = settle_seconds
        self.clock = clock
        self._pending: dict[Path, tuple[Stamp, float]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def add(self, path: Path) -> bool:
        """Start watching a path (a no-op when it is already pending or is not a regular file)."""
        if path in self._pending:
            return True
        stamp = stamp_of(path)
        if stamp is None:
            return False
        self._pending[path] = (stamp, self.clock())
        return True

    def poll(self) -> list[Path]:
        """Paths that are complete now (removed from pending); changed ones start their wait again."""
        now = self.clock()
        ready: list[Path] = []
        for path, (old, since) in list(self._pending.items()):
            stamp = stamp_of(path)
            if stamp is None:
                del self._pending[path]
            elif stamp != old:
                self._pending[path] = (stamp, now)
            elif now - since >= self.settle_seconds and stamp.size > 0:
                del self._pending[path]
                ready.append(path)
        return ready

    def next_due(self) -> float | None:
        """Seconds until the earliest pending path could be ready (None when nothing is pending)."""
        if not self._pending:
            return None
        earliest = min(since for _, since in self._pending.values())
        return max(0.0, earliest + self.settle_seconds - self.clock())
