"""The supervised watcher with real watchdog observers and a real DB: settle, dedupe, ignore, restart, rescan."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import wait_until
from traxd.config import WatchFolder
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.queue.store import Store
from traxd.types import TaskType

SETTLE = 0.5


def sources(store: Store) -> list[str]:
    """The source of every PREPROCESS task's job."""
    out = []
    for task in store.list_tasks(limit=10_000):
        job = store.get_job(task.job_id or 0)
        if task.type is TaskType.PREPROCESS and job is not None:
            out.append(job.source)
    return out


@pytest.fixture
def folders(tmp_path: Path) -> WatchFolder:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return WatchFolder(inbox, tmp_path / "outbox")


def make_watcher(store: Store, folders: WatchFolder, **kw: Any) -> Watcher:
    kw.setdefault("rescan_seconds", 3600)
    return Watcher([folders], Ingestor(store), settle_seconds=SETTLE, **kw)


@pytest.fixture
def running(store: Store, folders: WatchFolder) -> Iterator[Watcher]:
    watcher = make_watcher(store, folders)
    watcher.start()
    wait_until(lambda: watcher.inboxes[0].observer is not None, what="observer")
    yield watcher
    watcher.stop()


def test_two_hundred_files_some_before_start_each_queued_once(store: Store, folders: WatchFolder) -> None:
    inbox = folders.inbox
    for i in range(100):
        (inbox / f"early-{i:03}.mp3").write_bytes(f"early {i}".encode())
    watcher = make_watcher(store, folders)
    watcher.start()
    try:
        wait_until(lambda: watcher.inboxes[0].observer is not None, what="observer")
        (inbox / "sub").mkdir()
        for i in range(100):
            (inbox / "sub" / f"late-{i:03}.mp3").write_bytes(f"late {i}".encode())
        wait_until(lambda: len(sources(store)) >= 200, what="200 tasks")
        watcher.rescan()  # a rescan finds nothing new
        time.sleep(SETTLE * 3)
    finally:
        watcher.stop()
    found = sources(store)
    assert len(found) == 200 and len(set(found)) == 200


def test_slow_writer_is_queued_once_after_completion(store: Store, running: Watcher, folders: WatchFolder) -> None:
    path = folders.inbox / "slow.wav"
    done = threading.Event()
    chunks = [os.urandom(1000) for _ in range(12)]

    def writer() -> None:
        with open(path, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(0.42)  # ~5 s in total, each pause shorter than the settle interval
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    finished = time.time()
    wait_until(lambda: sources(store), what="the slow file")
    time.sleep(SETTLE * 3)
    tasks = store.list_tasks()
    assert len(tasks) == 1
    assert tasks[0].payload["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert tasks[0].created_at >= finished


def test_renamed_duplicate_and_ignored_files_are_not_queued(store: Store, running: Watcher, folders: WatchFolder) -> None:
    inbox = folders.inbox
    (inbox / "a.mp3").write_bytes(b"content")
    wait_until(lambda: len(sources(store)) == 1, what="first file")
    (inbox / "copy of a.mp3").write_bytes(b"content")
    os.rename(inbox / "a.mp3", inbox / "renamed.mp3")
    (inbox / ".hidden.mp3").write_bytes(b"h")
    (inbox / "x.mp3.part").write_bytes(b"p")
    (inbox / "y.crdownload").write_bytes(b"c")
    (inbox / "~lock.mp3").write_bytes(b"l")
    (inbox / "link.mp3").symlink_to("/etc/hostname")
    os.mkfifo(inbox / "pipe.mp3")
    (inbox / "marker.mp3").write_bytes(b"marker")  # written last: once it is in, the others had their chance
    wait_until(lambda: len(sources(store)) == 2, what="marker")
    running.rescan()
    time.sleep(SETTLE * 3)
    assert sorted(Path(s).name for s in sources(store)) == ["a.mp3", "marker.mp3"]


def test_outbox_inside_the_inbox_is_never_ingested(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "transcripts").mkdir(parents=True)
    (inbox / "transcripts" / "a.txt").write_text("https://example.org/a.mp3\n")
    watcher = Watcher([WatchFolder(inbox, inbox / "transcripts")], Ingestor(store), settle_seconds=SETTLE,
                      rescan_seconds=3600)  # fmt: skip
    watcher.start()
    try:
        (inbox / "transcripts" / "b.srt").write_text("1\n")
        (inbox / "real.mp3").write_bytes(b"r")
        wait_until(lambda: len(sources(store)) == 1, what="real.mp3")
        time.sleep(SETTLE * 3)
    finally:
        watcher.stop()
    assert store.counts()["queued"] == 1 and store.counts()["failed"] == 0


def test_inbox_removed_and_recreated_gets_a_new_observer(store: Store, running: Watcher, folders: WatchFolder) -> None:
    first = running.inboxes[0].observer
    shutil.rmtree(folders.inbox)
    wait_until(lambda: running.inboxes[0].missing, what="missing inbox noticed")
    folders.inbox.mkdir()
    wait_until(lambda: running.inboxes[0].observer not in (None, first), what="new observer")
    (folders.inbox / "after.mp3").write_bytes(b"after")
    wait_until(lambda: sources(store), what="file in re-created inbox")


class DeafObserver:
    """An observer that never reports anything (events the OS dropped)."""

    def __init__(self) -> None:
        self.alive = False
        self.emitters: list[Any] = []

    def schedule(self, *_a: Any, **_k: Any) -> None: ...

    def start(self) -> None:
        self.alive = True

    def stop(self) -> None:
        self.alive = False

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool:
        return self.alive


def test_periodic_rescan_catches_dropped_events(store: Store, folders: WatchFolder) -> None:
    watcher = make_watcher(store, folders, rescan_seconds=0.5, observer_factory=DeafObserver)
    watcher.start()
    try:
        (folders.inbox / "unseen.mp3").write_bytes(b"u")
        wait_until(lambda: sources(store), what="rescan")
    finally:
        watcher.stop()


def test_dead_observer_is_restarted(store: Store, running: Watcher, folders: WatchFolder) -> None:
    first = running.inboxes[0].observer
    first.stop()
    first.join()
    wait_until(lambda: running.inboxes[0].observer is not first, what="restart")
    (folders.inbox / "later.mp3").write_bytes(b"l")
    wait_until(lambda: sources(store), what="file after restart")


def test_new_watch_folder_from_the_source_is_picked_up(store: Store, tmp_path: Path, folders: WatchFolder) -> None:
    second = WatchFolder(tmp_path / "inbox2", tmp_path / "outbox2")
    second.inbox.mkdir()
    current: list[WatchFolder] = [folders]
    watcher = Watcher([folders], Ingestor(store), settle_seconds=SETTLE, rescan_seconds=3600,
                      folders_source=lambda: list(current))  # fmt: skip
    watcher.start()
    try:
        current.append(second)
        wait_until(lambda: len(watcher.inboxes) == 2 and watcher.inboxes[1].observer, what="second inbox")
        (second.inbox / "two.mp3").write_bytes(b"2")
        wait_until(lambda: sources(store), what="file in second inbox")
    finally:
        watcher.stop()
    job = store.get_job(store.list_tasks()[0].job_id or 0)
    assert job is not None and job.output_dir == str(second.outbox.resolve())


def test_unreadable_file_ends_as_a_failed_task(store: Store, running: Watcher, folders: WatchFolder) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = folders.inbox / "locked.mp3"
    path.write_bytes(b"x")
    path.chmod(0)
    wait_until(lambda: store.counts()["failed"] == 1, what="failed task")


def test_a_restart_skips_remembered_files_and_finds_the_ones_changed_meanwhile(
    store: Store, folders: WatchFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from traxd.ingest import watcher as watcher_mod

    inbox = folders.inbox
    for i in range(50):
        (inbox / f"talk-{i:02}.mp3").write_bytes(f"talk {i}".encode())
    (inbox / "links.url").write_text("[InternetShortcut]\nURL=https://example.org/a.mp3\n")
    first = make_watcher(store, folders)
    first.ingest_pending()
    assert len(sources(store)) == 50 and store.counts()["queued"] == 51
    # Down: one file is rewritten in place (same inode, new size and mtime), one is added.
    with open(inbox / "talk-07.mp3", "ab") as fh:
        fh.write(b" and more")
    (inbox / "new.mp3").write_bytes(b"new")
    hashed: list[Path] = []
    real_hash = watcher_mod.sha256_file
    monkeypatch.setattr(watcher_mod, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    parsed: list[Path] = []
    real_ingest_path = Ingestor.ingest_path
    monkeypatch.setattr(Ingestor, "ingest_path", lambda self, p, *a, **k: parsed.append(p) or real_ingest_path(self, p, *a, **k))
    restarted = make_watcher(store, folders)
    assert restarted.load_remembered() == 51
    restarted.ingest_pending()
    assert sorted(p.name for p in hashed) == ["new.mp3", "talk-07.mp3"]  # the 49 unchanged ones were not read
    assert parsed == []  # nor the URL file
    assert len(sources(store)) == 52  # the rewritten file is new content: queued again


def test_a_restart_forgets_files_gone_from_their_inbox_but_not_those_of_a_missing_inbox(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remembered list does not keep every file ever queued; an inbox that is not there (a drive unplugged)
    keeps its files remembered. A forgotten file put back is read again but queued only once."""
    from traxd.ingest import watcher as watcher_mod

    kept, unplugged = WatchFolder(tmp_path / "kept", tmp_path / "o1"), WatchFolder(tmp_path / "drive", tmp_path / "o2")
    for folder, names in ((kept, ["a", "b", "c"]), (unplugged, ["d", "e"])):
        folder.inbox.mkdir()
        for name in names:
            (folder.inbox / f"{name}.mp3").write_bytes(name.encode())
    Watcher([kept, unplugged], Ingestor(store), settle_seconds=SETTLE).ingest_pending()
    assert len(sources(store)) == 5 and len(store.ingested_files("")) == 5
    (kept.inbox / "b.mp3").rename(tmp_path / "b.mp3")
    unplugged.inbox.rename(tmp_path / "elsewhere")
    assert Watcher([kept, unplugged], Ingestor(store), settle_seconds=SETTLE).load_remembered() == 4
    assert sorted(Path(f.path).name for f in store.ingested_files("")) == ["a.mp3", "c.mp3", "d.mp3", "e.mp3"]
    (tmp_path / "b.mp3").rename(kept.inbox / "b.mp3")  # put back: read again, and known by its content
    hashed: list[Path] = []
    real_hash = watcher_mod.sha256_file
    monkeypatch.setattr(watcher_mod, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    Watcher([kept, unplugged], Ingestor(store), settle_seconds=SETTLE).ingest_pending()
    assert [p.name for p in hashed] == ["b.mp3"] and len(sources(store)) == 5
    assert len(store.ingested_files("")) == 5


def test_a_watch_folder_sets_word_timestamps_for_its_files(store: Store, tmp_path: Path) -> None:
    from traxd.config import load_settings

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f"""
[[watch]]
inbox = "{tmp_path / 'words'}"
outbox = "{tmp_path / 'o1'}"
word_timestamps = true
diarize = true

[[watch]]
inbox = "{tmp_path / 'plain'}"
outbox = "{tmp_path / 'o2'}"
""")
    folders = load_settings({"home": home}, env={}).watch
    assert [f.word_timestamps for f in folders] == [True, None]
    for f in folders:
        f.inbox.mkdir()
    watcher = Watcher(folders, Ingestor(store, options={"word_timestamps": False}), settle_seconds=SETTLE,
                      rescan_seconds=3600)  # fmt: skip
    watcher.start()
    try:
        (tmp_path / "words" / "a.mp3").write_bytes(b"a")
        (tmp_path / "plain" / "b.mp3").write_bytes(b"b")
        wait_until(lambda: len(sources(store)) == 2, what="both files")
    finally:
        watcher.stop()
    options = {Path(j.source).name: j.options["word_timestamps"] for j in (store.get_job(i) for i in (1, 2)) if j}
    assert options == {"a.mp3": True, "b.mp3": False}
    diarize = {Path(j.source).name: j.options.get("diarize") for j in (store.get_job(i) for i in (1, 2)) if j}
    assert diarize == {"a.mp3": True, "b.mp3": None}  # speaker labels for one inbox only


def test_a_restart_resolves_each_outbox_once_not_once_per_remembered_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50,000 remembered files took 3.3 s to load, a realpath (a system call per path part) and Paths for each."""
    from traxd.ingest import watcher as watcher_mod
    from traxd.types import IngestedFile

    folder = WatchFolder(tmp_path / "inbox", tmp_path / "outbox")
    files = []
    for i in range(40):
        path = folder.inbox / f"day-{i % 4}" / f"memo-{i}.m4a"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        st = path.stat()
        files.append(IngestedFile("", str(path), str(folder.outbox), st.st_size, st.st_mtime_ns, st.st_ino))
    files.append(IngestedFile("", str(tmp_path / "elsewhere" / "a.mp3"), str(folder.outbox), 1, 1, 1))  # no inbox's
    store.remember_files(files)
    watcher = make_watcher(store, folder)
    resolved: list[str] = []
    real = os.path.realpath
    monkeypatch.setattr(watcher_mod.os.path, "realpath", lambda p, *a, **k: resolved.append(str(p)) or real(p, *a, **k))
    assert watcher.load_remembered() == 40
    assert resolved == [str(folder.outbox)]
