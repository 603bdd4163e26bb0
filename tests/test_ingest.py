"""Scan rules, the settle check, streamed hashing and the ingestor's one-transaction enqueue (real files, real DB)."""

from __future__ import annotations

import hashlib
import os
import plistlib
import socket
from pathlib import Path

import pytest

from traxd.errors import UsageError
from traxd.ingest import scan
from traxd.ingest.enqueue import Ingestor, Queued, Skipped
from traxd.ingest.manual import add_inputs
from traxd.queue.store import Store
from traxd.types import TaskState, TaskType
from traxd.urls import looks_like_url


@pytest.mark.parametrize(
    ("name", "reason"),
    [(".hidden.mp3", scan.HIDDEN), (".DS_Store", scan.HIDDEN), ("a.mp3.part", scan.PARTIAL),
     ("a.crdownload", scan.PARTIAL), ("a.download", scan.PARTIAL), ("A.PART", scan.PARTIAL),
     ("a.ytdl", scan.PARTIAL), ("a.tmp", scan.TEMPORARY), ("~a.mp3", scan.TEMPORARY), ("~$doc.docx", scan.TEMPORARY),
     ("a.mp3~", scan.TEMPORARY), ("a.icloud", scan.PLACEHOLDER)],
)  # fmt: skip
def test_ignored_names(name: str, reason: str) -> None:
    assert scan.name_problem(name) == reason


@pytest.mark.parametrize("name", ["talk.mp3", "interview 2.m4a", "links.url", "x.webloc", "notes.txt"])
def test_accepted_names(name: str) -> None:
    assert scan.name_problem(name) is None


def test_walk_prunes_hidden_folders_symlinked_folders_and_outbox(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub" / "deeper").mkdir(parents=True)
    (inbox / ".git").mkdir()
    (inbox / "outbox").mkdir()
    for rel in ["a.mp3", "sub/b.wav", "sub/deeper/c.m4a", ".git/x.mp3", "outbox/a.txt", "d.part", ".e.mp3"]:
        (inbox / rel).write_bytes(b"data")
    (inbox / "link.mp3").symlink_to(inbox / "a.mp3")
    (inbox / "linkdir").symlink_to(inbox / "sub")
    os.mkfifo(inbox / "fifo.mp3")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(inbox / "s.sock"))
    try:
        found = {p.relative_to(inbox).as_posix() for p in scan.walk(inbox, [inbox / "outbox"])}
        inputs = {p for p in found if scan.skip_reason(inbox / p) is None}
    finally:
        sock.close()
    # Every entry that is not a folder is judged by skip_reason (and so reported), except inside pruned folders.
    assert found == {"a.mp3", "sub/b.wav", "sub/deeper/c.m4a", "d.part", ".e.mp3", "link.mp3", "linkdir", "fifo.mp3",
                     "s.sock"}  # fmt: skip
    assert inputs == {"a.mp3", "sub/b.wav", "sub/deeper/c.m4a"}


def test_stamp_of_refuses_symlinks_and_fifos(tmp_path: Path) -> None:
    real = tmp_path / "real.mp3"
    real.write_bytes(b"x")
    (tmp_path / "link.mp3").symlink_to(real)
    os.mkfifo(tmp_path / "fifo")
    assert scan.stamp_of(real) is not None
    assert scan.stamp_of(tmp_path / "link.mp3") is None
    assert scan.stamp_of(tmp_path / "fifo") is None
    assert scan.stamp_of(tmp_path / "missing") is None


def test_in_scope_checks_every_folder_below_the_inbox(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "ok").mkdir()
    (tmp_path / ".hidden" / "a.mp3").write_bytes(b"x")
    (tmp_path / "ok" / "a.mp3").write_bytes(b"x")
    assert scan.in_scope(tmp_path / "ok" / "a.mp3", tmp_path)
    assert not scan.in_scope(tmp_path / ".hidden" / "a.mp3", tmp_path)
    assert not scan.in_scope(tmp_path / "ok" / "a.mp3", tmp_path, [tmp_path / "ok"])
    assert not scan.in_scope(tmp_path / "ok" / "a.mp3", tmp_path / "ok" / "a.mp3")


def test_sha256_is_streamed_and_correct(tmp_path: Path) -> None:
    data = os.urandom(3 * scan.HASH_CHUNK + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert scan.sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(OSError):
        scan.sha256_file(tmp_path / "link")


class Tick:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_settler_waits_for_an_unchanged_stamp(tmp_path: Path) -> None:
    clock = Tick()
    settler = scan.Settler(2.0, clock)
    path = tmp_path / "a.mp3"
    path.write_bytes(b"part")
    assert settler.add(path)
    clock.t += 1.5
    assert settler.poll() == []
    with open(path, "ab") as fh:
        fh.write(b"more")
    clock.t += 1.0
    assert settler.poll() == []  # changed: the wait starts again
    clock.t += 1.9
    assert settler.poll() == []
    clock.t += 0.2
    assert settler.poll() == [path]
    assert len(settler) == 0


def test_settler_holds_empty_files_and_drops_vanished_ones(tmp_path: Path) -> None:
    clock = Tick()
    settler = scan.Settler(1.0, clock)
    empty, gone = tmp_path / "empty.mp3", tmp_path / "gone.mp3"
    empty.touch()
    gone.write_bytes(b"x")
    settler.add(empty)
    settler.add(gone)
    gone.unlink()
    clock.t += 5
    assert settler.poll() == []
    assert empty in settler and gone not in settler
    assert not settler.add(tmp_path / "never-there")


def test_same_content_renamed_is_queued_once(store: Store, tmp_path: Path) -> None:
    ing = Ingestor(store)
    a, b = tmp_path / "a.mp3", tmp_path / "renamed.mp3"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    first = ing.ingest_path(a, tmp_path / "out")
    second = ing.ingest_path(b, tmp_path / "out")
    assert first[0].created and not second[0].created
    assert first[0].task.id == second[0].task.id
    task = first[0].task
    assert task.type is TaskType.PREPROCESS and task.payload["path"] == str(a)
    assert task.dedupe_key == f"file:{hashlib.sha256(b'same').hexdigest()}:{tmp_path / 'out'}"
    job = store.get_job(task.job_id or 0)
    assert job is not None and job.name == "a" and job.output_dir == str(tmp_path / "out")
    # Another outbox is another product: queued again.
    assert ing.ingest_path(b, tmp_path / "other")[0].created
    assert a.read_bytes() == b"same"  # originals untouched


def test_url_files_queue_each_url_and_reject_other_schemes(store: Store, tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    links.write_text("# talks\nhttps://www.youtube.com/watch?v=abc\nhttps://example.org/ep1.mp3\n"
                     "file:///etc/passwd\nftp://example.org/x.mp3\nhttps://www.youtube.com/watch?v=abc\n")  # fmt: skip
    queued = Ingestor(store).ingest_path(links, tmp_path / "out")
    kinds = [(q.task.type, q.task.state) for q in queued]
    assert kinds[:2] == [(TaskType.YOUTUBE, TaskState.QUEUED), (TaskType.DOWNLOAD, TaskState.QUEUED)]
    assert kinds[2:4] == [(TaskType.DOWNLOAD, TaskState.FAILED)] * 2
    assert "only http and https" in (queued[2].task.error_message or "")
    assert len(queued) == 4  # the repeated URL is not queued twice
    again = Ingestor(store).ingest_path(links, tmp_path / "out")
    assert not any(q.created for q in again)


def test_url_and_webloc_shortcuts(store: Store, tmp_path: Path) -> None:
    url = tmp_path / "a.url"
    url.write_text("[InternetShortcut]\nURL=https://vimeo.com/1\n")
    webloc = tmp_path / "b.webloc"
    webloc.write_bytes(plistlib.dumps({"URL": "https://example.org/b.m4a"}))
    ing = Ingestor(store)
    assert ing.ingest_path(url, tmp_path)[0].task.payload == {"url": "https://vimeo.com/1"}
    assert ing.ingest_path(webloc, tmp_path)[0].task.type is TaskType.DOWNLOAD


def test_text_without_urls_is_skipped_and_a_link_file_without_one_is_a_failed_task(
    store: Store, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just notes\n")
    skipped = Skipped(str(notes), "not a list of URLs (no http(s) URL in it)")
    assert Ingestor(store).ingest_path(notes, tmp_path) == [skipped]
    shortcut = tmp_path / "blank.url"
    shortcut.write_text("[InternetShortcut]\nURL=\n")
    (q,) = Ingestor(store).ingest_path(shortcut, tmp_path)
    assert isinstance(q, Queued) and q.task.state is TaskState.FAILED
    assert q.task.error_message == "blank.url: no http(s) URL in it"
    assert store.counts()["failed"] == 1  # the plain text wrote nothing


def test_manual_add_checks_every_input_first(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.mp3").write_bytes(b"a")
    with pytest.raises(UsageError, match="no such file"):
        add_inputs(Ingestor(store), [str(tmp_path / "a.mp3"), str(tmp_path / "missing.mp3")], tmp_path / "out")
    assert store.counts()["queued"] == 0
    assert looks_like_url("https://x.org/a") and looks_like_url("file:///x") and not looks_like_url("a.mp3")


def test_bulk_ingest_dedupes_within_the_batch_and_against_the_queue(store: Store, tmp_path: Path) -> None:
    ing = Ingestor(store)
    out = tmp_path / "out"
    ing.ingest_files([(tmp_path / "old.mp3", out, "aa")])
    files = [(tmp_path / "a.mp3", out, "bb"), (tmp_path / "b.mp3", out, "aa"), (tmp_path / "c.mp3", out, "bb"),
             (tmp_path / "d.mp3", out, "cc")]  # fmt: skip
    queued = ing.ingest_files(files)
    assert [q.created for q in queued] == [True, False, False, True]
    assert queued[0].task.id == queued[2].task.id
    assert store.counts()["queued"] == 3
    job = store.get_job(queued[3].task.job_id or 0)
    assert job is not None and job.source == str(tmp_path / "d.mp3") and job.name == "d"


def test_files_are_pinned_to_the_ingesting_host_and_urls_are_not(store: Store, tmp_path: Path) -> None:
    ing = Ingestor(store, affinity="laptop-a")
    media = tmp_path / "talk.mp3"
    media.write_bytes(b"audio")
    links = tmp_path / "links.txt"
    links.write_text("https://example.com/talk.mp3\n")
    (file_q,) = ing.ingest_path(media, tmp_path / "out")
    (url_q,) = ing.ingest_path(links, tmp_path / "out")
    assert file_q.task.affinity == "laptop-a" and url_q.task.affinity is None
    assert [t.id for t in store.claim("laptop-b:1:1.00", 5, 30, host="laptop-b")] == [url_q.task.id]
    assert [t.id for t in store.claim("laptop-a:1:1.00", 5, 30, host="laptop-a")] == [file_q.task.id]


def test_a_malformed_url_file_is_a_failed_task_with_the_parser_reason(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "links.webloc"
    bad.write_bytes(b"\xff\xfe not a plist \xff")
    (q,) = Ingestor(store).ingest_path(bad, tmp_path)
    assert isinstance(q, Queued) and q.task.state is TaskState.FAILED
    assert "not a valid .webloc property list" in (q.task.error_message or "")
    binary = tmp_path / "links.txt"
    binary.write_bytes(b"\xff\xfe not utf-8 \xff")
    skipped = Skipped(str(binary), "not a list of URLs (not UTF-8 text)")
    assert Ingestor(store).ingest_path(binary, tmp_path) == [skipped]
