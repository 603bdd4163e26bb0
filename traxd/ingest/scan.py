"""Pure-ish ingestion helpers: which paths count, walking inboxes, the settle check, streamed hashing."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Partial downloads, editor/office temp files, cloud placeholders: never complete media.
IGNORED_SUFFIXES = (".part", ".crdownload", ".download", ".tmp", ".temp", ".partial", ".icloud", ".ytdl", ".swp")
IGNORED_PREFIXES = (".", "~")
URL_SUFFIXES = (".url", ".webloc", ".txt")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Stamp:
    """What must stay unchanged for a file to count as complete."""

    size: int
    mtime_ns: int
    ino: int


def ignored_name(name: str) -> bool:
    """Hidden, temporary and partial-download names (`.x`, `~x`, `~$x`, `x.part`, `x.crdownload`, ...)."""
    lower = name.lower()
    return lower.startswith(IGNORED_PREFIXES) or lower.endswith(IGNORED_SUFFIXES)


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


def is_url_file(path: Path) -> bool:
    """A file whose content is a list of URLs rather than media."""
    return path.suffix.lower() in URL_SUFFIXES


def candidate(path: Path, root: Path, excluded: Iterable[Path] = ()) -> bool:
    """Whether a path under inbox `root` may be ingested: no ignored name on the way, not in Trax's own folders."""
    if root not in path.parents or is_within(path, excluded):
        return False
    parts = path.relative_to(root).parts
    return not any(ignored_name(part) for part in parts) and stamp_of(path) is not None


def walk(root: Path, excluded: Iterable[Path] = ()) -> Iterator[Path]:
    """Every candidate file under root: skips hidden/partial names, symlinks, special files, Trax's folders."""
    skip = tuple(excluded)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if ignored_name(entry.name):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if not is_within(path, skip):
                    stack.append(path)
            elif entry.is_file(follow_symlinks=False) and not is_within(path, skip):
                yield path


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
