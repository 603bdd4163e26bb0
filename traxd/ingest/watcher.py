"""Supervised watchdog observers per inbox, a settle queue, periodic rescans: events are hints, the scan is truth."""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from traxd.config import WatchFolder
from traxd.ingest.enqueue import Ingestor, Skipped
from traxd.ingest.scan import (
    GONE,
    IGNORED,
    Settler,
    Stamp,
    in_scope,
    is_within,
    name_problem,
    sha256_file,
    skip_reason,
    stamp_of,
    walk,
)
from traxd.logging import get_logger
from traxd.schedule import parse_window
from traxd.supervision import Crashed, report_crash
from traxd.urls import is_url_file

log = get_logger("watcher")

_IGNORED_EVENTS = {"deleted", "opened", "closed_no_write"}
_UNREADABLE = {errno.EACCES, errno.EPERM}
BATCH = 200


class _Sink(FileSystemEventHandler):
    """Runs on the observer thread: only hands the path over to the settle queue."""

    def __init__(self, out: queue.SimpleQueue[Path]) -> None:
        self.out = out

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Queue the path an event is about (the destination of a move)."""
        if event.event_type in _IGNORED_EVENTS:
            return
        raw = event.dest_path or event.src_path
        self.out.put(Path(os.fsdecode(raw)))


@dataclass
class _Inbox:
    folder: WatchFolder
    root: Path
    outbox: Path
    observer: Any = None
    identity: tuple[int, int] | None = None
    missing: bool = False


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _listed() -> Callable[[str], bool]:
    """os.path.lexists for many paths in few folders: each folder is listed once (an unreadable one: lstat)."""
    listings: dict[str, set[str] | None] = {}

    def exists(path: str) -> bool:
        folder, name = os.path.split(path)
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                listings[folder] = set()
            except OSError:
                listings[folder] = None
        names = listings[folder]
        return os.path.lexists(path) if names is None else name in names

    return exists


class Watcher:
    """Watches inboxes, waits for files to settle, ingests them; restarts observers and rescans on its own."""

    def __init__(
        self,
        folders: Sequence[WatchFolder],
        ingestor: Ingestor,
        *,
        settle_seconds: float = 2.0,
        rescan_seconds: float = 60.0,
        excluded: Sequence[Path] = (),
        tick_seconds: float = 0.25,
        supervise_seconds: float = 1.0,
        observer_factory: Callable[[], Any] = Observer,
        folders_source: Callable[[], Sequence[WatchFolder] | None] | None = None,
        crashed: Crashed | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.crashed = crashed  # told when the loop ends on a bug (see traxd.supervision)
        # The database's "unreachable, busy or full" errors and the file system's: the files wait and are retried.
        self.expected: tuple[type[BaseException], ...] = (*ingestor.store.unavailable, OSError)
        ingestor.record_rejected = True  # every file that entered an inbox ends as a transcript or a failed task
        self.settler = Settler(settle_seconds)
        self.rescan_seconds = rescan_seconds
        self.extra_excluded = tuple(Path(os.path.realpath(p)) for p in excluded)
        self.tick_seconds = tick_seconds
        self.supervise_seconds = supervise_seconds
        self.observer_factory = observer_factory
        self.folders_source = folders_source
        self.events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self.inboxes: list[_Inbox] = []
        self.excluded: tuple[Path, ...] = ()
        self.scans = 0
        self.ingested = 0
        self._seen: dict[str, Stamp] = {}  # by path string: a restart loads 50,000 without making Paths
        self._skipped: dict[Path, str] = {}  # told once per path and reason, not at every event or rescan
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.set_folders(folders)

    # -- public ---------------------------------------------------------------------------------
    def set_folders(self, folders: Sequence[WatchFolder]) -> None:
        """Replace the watched folders (observers of removed ones stop; new ones are started and scanned)."""
        wanted = {Path(os.path.realpath(f.inbox)): f for f in folders}
        for inbox in [i for i in self.inboxes if i.root not in wanted]:
            self._stop_observer(inbox)
            log.info("inbox_unwatched", inbox=str(inbox.root))
        kept = {i.root: i for i in self.inboxes if i.root in wanted}
        for root, inbox in kept.items():
            inbox.folder = wanted[root]  # its options may have changed in config.toml
        self.inboxes = [kept.get(root) or _Inbox(f, root, Path(os.path.realpath(f.outbox))) for root, f in wanted.items()]
        self.excluded = tuple(i.outbox for i in self.inboxes) + self.extra_excluded
        self.ingestor.folder_options = {str(i.outbox): i.folder.options() for i in self.inboxes if i.folder.options()}
        self.ingestor.folder_windows = {str(i.outbox): parse_window(i.folder.active_hours) for i in self.inboxes
                                        if i.folder.active_hours}  # fmt: skip

    def start(self) -> None:
        """Scan every inbox now and keep watching on a background thread."""
        self.load_remembered()
        self._thread = threading.Thread(target=self._run, name="trax-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the supervisor and every observer."""
        self._stop.set()
        self.events.put(Path())  # wake the loop
        if self._thread is not None:
            self._thread.join(timeout)
        for inbox in self.inboxes:
            self._stop_observer(inbox)

    def ingest_pending(self, max_wait: float | None = None) -> None:
        """`--drain`: scan every inbox once and ingest whatever settles, without observers."""
        limit = max_wait if max_wait is not None else self.settler.settle_seconds * 5 + 10
        deadline = time.monotonic() + limit
        self.load_remembered()
        self.rescan()
        while len(self.settler) and time.monotonic() < deadline and not self._stop.is_set():
            self._ingest_ready()
            self._stop.wait(max(self.tick_seconds, self.settler.next_due() or 0.0))
        self._ingest_ready()

    def load_remembered(self) -> int:
        """Files queued before (by an earlier run) count as seen while their stamp and outbox are unchanged:
        a restart neither waits for them to settle nor reads them again. Returns how many were loaded.

        Files gone from an inbox that is there are forgotten, so the list does not grow with every file ever
        queued. (A file put back is hashed again; its dedupe key still keeps it from being paid twice.)
        """
        try:
            known = self.ingestor.remembered()
        except self.expected as exc:  # without the list every file is hashed again: slower, not wrong
            log.warning("remembered_files_unreadable", error=str(exc))
            return 0
        # Plain strings, one realpath per outbox and one listing per folder: Path objects, a realpath and an lstat
        # per file cost 3.3 s at 50,000 files.
        inbox_of, exists = self._inbox_by_prefix(), _listed()
        real: dict[str, str] = {}
        present = {i.root for i in self.inboxes if _identity(i.root) is not None}  # a missing one forgets nothing
        loaded, gone = 0, []
        for path, (outbox, stamp) in known.items():
            inbox = inbox_of(path)
            if inbox is None:
                continue
            if inbox.root in present and not exists(path):
                gone.append(Path(path))
            elif (real.get(outbox) or real.setdefault(outbox, os.path.realpath(outbox))) == str(inbox.outbox):
                self._seen.setdefault(path, stamp)
                loaded += 1
        log.info("remembered_files_loaded", files=loaded, gone=len(gone))
        self._forget(gone)
        return loaded

    def _forget(self, gone: list[Path]) -> None:
        if not gone:
            return
        try:
            self.ingestor.forget(gone)
        except self.expected as exc:  # kept rows only cost room; the next start tries again
            log.warning("remembered_files_not_forgotten", files=len(gone), error=str(exc))

    # -- the supervisor loop --------------------------------------------------------------------
    def _run(self) -> None:
        last_supervise = last_rescan = -1e9
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_supervise >= self.supervise_seconds:
                    last_supervise = now
                    self._reload_folders()
                    self._supervise()
                if now - last_rescan >= self.rescan_seconds:
                    last_rescan = now
                    self.rescan()
                self._ingest_ready()
                self._wait_for_events()
            except self.expected as exc:  # a DB or FS hiccup must not end watching; next tick retries
                log.warning("watcher_error", error=str(exc))
                self._stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - a bug: said once with its traceback, and the daemon stops
                report_crash(log, "watcher", exc, self.crashed)
                return

    def _wait_for_events(self) -> None:
        """Block until an event arrives or the next settle/supervise deadline, then admit everything queued."""
        due = self.settler.next_due()
        timeout = self.supervise_seconds if due is None else min(self.supervise_seconds, max(self.tick_seconds, due))
        try:
            self._admit(self.events.get(timeout=timeout))
        except queue.Empty:
            return
        while True:
            try:
                self._admit(self.events.get_nowait())
            except queue.Empty:
                return

    def _reload_folders(self) -> None:
        if self.folders_source is None:
            return
        folders = self.folders_source()
        if folders is not None:
            self.set_folders(folders)

    # -- observers ------------------------------------------------------------------------------
    def _supervise(self) -> None:
        """Start observers that are missing, dead, or watching a folder that was removed and re-created."""
        for inbox in self.inboxes:
            identity = _identity(inbox.root)
            if identity is None:
                if not inbox.missing:
                    log.warning("inbox_missing", inbox=str(inbox.root))
                inbox.missing = True
                self._stop_observer(inbox)
                continue
            healthy = inbox.observer is not None and _alive(inbox.observer) and identity == inbox.identity
            if not healthy:
                self._restart_observer(inbox, identity)

    def _restart_observer(self, inbox: _Inbox, identity: tuple[int, int]) -> None:
        restarted = inbox.observer is not None or inbox.missing
        self._stop_observer(inbox)
        observer = self.observer_factory()
        try:
            observer.schedule(_Sink(self.events), str(inbox.root), recursive=True)
            observer.start()
        except OSError as exc:
            log.warning("observer_failed", inbox=str(inbox.root), error=str(exc))
            return  # the periodic rescan still finds files; next supervise round tries again
        inbox.observer, inbox.identity, inbox.missing = observer, identity, False
        log.info("observer_restarted" if restarted else "observer_started", inbox=str(inbox.root))
        self._scan_inbox(inbox)  # events may have been missed while nobody watched

    def _stop_observer(self, inbox: _Inbox) -> None:
        observer, inbox.observer, inbox.identity = inbox.observer, None, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=5)
        except (OSError, RuntimeError) as exc:
            log.debug("observer_stop_failed", error=str(exc))

    # -- scanning and settling ------------------------------------------------------------------
    def rescan(self) -> None:
        """Walk every inbox: catches files dropped while stopped and events the OS lost."""
        for inbox in self.inboxes:
            self._scan_inbox(inbox)
        self.scans += 1

    def _scan_inbox(self, inbox: _Inbox) -> None:
        for path in walk(inbox.root, self.excluded):
            self._admit(path)

    def _inbox_by_prefix(self) -> Callable[[str], _Inbox | None]:
        """_inbox_of for path strings (the innermost inbox whose folder holds the path), without making Paths."""
        roots = sorted(((os.path.join(str(i.root), ""), i) for i in self.inboxes), key=lambda r: -len(r[0]))

        def inbox_of(path: str) -> _Inbox | None:
            return next((inbox for prefix, inbox in roots if path.startswith(prefix) and path != prefix), None)

        return inbox_of

    def _inbox_of(self, path: Path) -> _Inbox | None:
        best = None
        for inbox in self.inboxes:
            if inbox.root in path.parents and (best is None or len(inbox.root.parts) > len(best.root.parts)):
                best = inbox
        return best

    def _admit(self, path: Path) -> None:
        """A path was seen (event or scan): folders are walked, candidate files start settling."""
        if path == Path() or self._stop.is_set():
            return
        inbox = self._inbox_of(path)
        if inbox is None:
            return
        if path.is_dir() and not path.is_symlink():
            if candidate_dir(path, inbox.root, self.excluded):
                for child in walk(path, self.excluded):
                    self._admit(child)
            return
        if not in_scope(path, inbox.root, self.excluded):
            return
        stamp = stamp_of(path)
        if stamp is not None and self._seen.get(str(path)) == stamp:
            return
        reason = skip_reason(path)
        if reason not in IGNORED:  # an input, or a file of the wrong kind recorded once it has settled
            self._skipped.pop(path, None)
            self.settler.add(path)
        elif self._skipped.get(path) != reason and reason != GONE:
            self._skipped[path] = reason
            self.ingestor.skip(path, reason)

    def _ingest_ready(self) -> None:
        """Ingest settled files: URL files one by one, media files hashed and queued in one transaction."""
        batch: list[tuple[Path, Path, str, Stamp]] = []
        for path in self.settler.poll():
            inbox = self._inbox_of(path)
            if inbox is None or self._stop.is_set():
                continue
            try:
                item = self._prepare(path, inbox)
            except self.expected as exc:  # e.g. the DB is busy: keep the file pending, try again
                log.warning("ingest_failed", path=str(path), error=str(exc))
                self.settler.add(path)
                continue
            if item is not None:
                batch.append(item)
            if len(batch) >= BATCH:
                self._commit(batch)
                batch = []
        self._commit(batch)

    def _prepare(self, path: Path, inbox: _Inbox) -> tuple[Path, Path, str, Stamp] | None:
        """Hash a settled file and check it did not change meanwhile; URL files, and files that are not inputs,
        go through the ingestor's one-by-one path right here."""
        before = stamp_of(path)
        if before is None:
            return None
        if is_url_file(path) or skip_reason(path):
            outcomes = self.ingestor.ingest_path(path, inbox.outbox)
            if not any(isinstance(o, Skipped) for o in outcomes):
                self.ingestor.remember(path, inbox.outbox, before)
            self._seen[str(path)] = before
            return None
        try:
            sha = sha256_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _UNREADABLE:
                self.ingestor.record_unreadable(path, inbox.outbox, exc)
                self._seen[str(path)] = before
            return None
        if stamp_of(path) != before:
            self.settler.add(path)  # still being written: wait for it to settle again
            return None
        return (path, inbox.outbox, sha, before)

    def _commit(self, batch: list[tuple[Path, Path, str, Stamp]]) -> None:
        if not batch:
            return
        try:
            self.ingestor.ingest_files([(p, o, sha) for p, o, sha, _ in batch], [stamp for *_, stamp in batch])
        except self.expected as exc:  # nothing was written: the files wait and are tried again
            log.warning("ingest_failed", files=len(batch), error=str(exc))
            for path, *_ in batch:
                self.settler.add(path)
            return
        for path, _, _, stamp in batch:
            self._seen[str(path)] = stamp
        self.ingested += len(batch)


def candidate_dir(path: Path, root: Path, excluded: Sequence[Path]) -> bool:
    """A folder under an inbox worth walking: not hidden/partial, not one of Trax's own folders."""
    if is_within(path, excluded):
        return False
    if path == root:
        return True
    return root in path.parents and not any(name_problem(p) for p in path.relative_to(root).parts)


def _alive(observer: Any) -> bool:
    """An observer is healthy when its thread and every emitter thread still run."""
    if not observer.is_alive():
        return False
    return all(emitter.is_alive() for emitter in getattr(observer, "emitters", ()))
