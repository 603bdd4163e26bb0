"""One ingestion path: the inbox, `traxctl add`, `trax batch` and the Python API treat the same odd inputs the same way.

One table of odd inputs; each entry point gets the same folder (or each file named on its own) and must end with
the same outcome per input: queued as which task type (and state), or skipped with which reason. Queued outcomes
are read from the database (a file by its content hash, a URL list by its URLs); skip reasons from what the entry
point tells its user (the daemon's log hook, `skipped PATH: REASON` lines, the one-line input error).

"rejected: R" is a complete file of the wrong kind (not media, a text without URLs): the commands and the API skip
it with reason R and say so; the daemon, which has nobody to tell, records it as a failed task whose message
gives R, because the SPEC wants every file that entered an inbox to end as a transcript or a failed task.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import plistlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment, wait_until
from traxd import create_batch_processor
from traxd.batch import TaskInputError
from traxd.cli.trax_cmd import app as trax_app
from traxd.cli.traxctl_cmd import app as traxctl_app
from traxd.config import WatchFolder
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry
from traxd.ingest import scan
from traxd.ingest.enqueue import Ingestor, Skipped
from traxd.ingest.watcher import Watcher
from traxd.queue.store import Store
from traxd.types import Task, TaskType

YOUTUBE_1 = "https://www.youtube.com/watch?v=one"
YOUTUBE_2 = "https://youtu.be/two"
YOUTUBE_3 = "https://www.youtube.com/watch?v=three"
MEDIA_1 = "https://example.org/episodes/ep1.mp3"
MEDIA_2 = "https://example.org/episodes/ep2.M4A?sig=x"
MEDIA_3 = "https://example.org/episodes/ep3.ogg"


def _shortcut(url: str) -> bytes:
    return f"[InternetShortcut]\r\nURL={url}\r\n".encode()


# name -> (content, expected outcome). Content None: made by `make_specials` (a symlink, a FIFO).
TABLE: dict[str, tuple[bytes | None, str]] = {
    "talk.mp3.part": (b"partial audio 1", f"skipped: {scan.PARTIAL}"),
    "talk.crdownload": (b"partial audio 2", f"skipped: {scan.PARTIAL}"),
    "talk.download": (b"partial audio 3", f"skipped: {scan.PARTIAL}"),
    "LOUD.MP3": (b"upper-case audio", "preprocess queued"),
    ".hidden.mp3": (b"hidden audio", f"skipped: {scan.HIDDEN}"),
    "~$lock.m4a": (b"office lock", f"skipped: {scan.TEMPORARY}"),
    "empty.wav": (b"", f"skipped: {scan.EMPTY}"),
    "notes.txt": (b"just some notes, no links\n", "rejected: not a list of URLs (no http(s) URL in it)"),
    "report.pdf": (b"%PDF-1.4 not audio", f"rejected: {scan.NOT_MEDIA} (.pdf)"),
    "tube.url": (_shortcut(YOUTUBE_1), "youtube queued"),
    "tube.webloc": (plistlib.dumps({"URL": YOUTUBE_2}), "youtube queued"),
    "direct.url": (_shortcut(MEDIA_1), "download queued"),
    "direct.webloc": (plistlib.dumps({"URL": MEDIA_2}), "download queued"),
    "links.txt": (f"# to watch\n{YOUTUBE_3}\n{MEDIA_3}\n".encode(), "youtube queued + download queued"),
    "ftp.txt": (b"ftp://example.org/talk.mp3\n", "download failed: rejected"),
    "broken.webloc": (b"not a property list", "preprocess failed: broken.webloc: not a valid .webloc property list"),
    "one.wav": (b"the same recording", "preprocess queued"),
    "copy of one.wav": (b"the same recording", "preprocess queued"),  # the same task as one.wav
    "link.mp3": (None, f"skipped: {scan.SYMLINK}"),
    "pipe.mp3": (None, f"skipped: {scan.SPECIAL}"),
}
JOBS = 10  # LOUD, one.wav (its copy is the same job), 2 + 2 shortcuts, 2 URLs of links.txt, ftp.txt, broken.webloc
URLS = {"tube.url": [YOUTUBE_1], "tube.webloc": [YOUTUBE_2], "direct.url": [MEDIA_1], "direct.webloc": [MEDIA_2],
        "links.txt": [YOUTUBE_3, MEDIA_3], "ftp.txt": ["ftp://example.org/talk.mp3"]}  # fmt: skip


def make_inputs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (content, _) in TABLE.items():
        if content is not None:
            (folder / name).write_bytes(content)
    (folder / "link.mp3").symlink_to(folder / "LOUD.MP3")
    os.mkfifo(folder / "pipe.mp3")


def no_handlers(settings: Any = None) -> Registry:
    """`trax batch` with nothing to run: its inputs stay as ingestion left them (the pool drains at once)."""
    return Registry({})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    forget_environment(monkeypatch)
    home = tmp_path / "home"
    monkeypatch.setenv("TRAX_HOME", str(home))
    monkeypatch.setenv("TRAX_DATABASE_URL", f"sqlite:///{home / 'trax.db'}")
    monkeypatch.setenv("TRAX_TEST_HANDLERS", f"{__name__}:no_handlers")
    return home


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    home.mkdir(parents=True, exist_ok=True)
    engine = open_engine(f"sqlite:///{home / 'trax.db'}")
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


# -- the four entry points: each returns {path: skip reason} as it tells its user --------------------------------
SKIP_LINE = re.compile(r"^skipped (?P<path>/.*?): (?P<reason>.*)$", re.MULTILINE)
NOT_INPUT = re.compile(r"(?P<path>/\S.*?) is not an input: (?P<reason>.*)$")


def via_inbox(folder: Path, outbox: Path, store: Store) -> dict[str, str]:
    """`traxd run --drain`: the watcher's scan, settle check and bulk ingest."""
    skipped: dict[str, str] = {}
    ingestor = Ingestor(store, on_skipped=lambda s: skipped.__setitem__(s.source, s.reason))
    Watcher([WatchFolder(folder, outbox)], ingestor, settle_seconds=0.05, tick_seconds=0.02).ingest_pending()
    return skipped


def via_watched_inbox(folder: Path, outbox: Path, store: Store) -> dict[str, str]:
    """`traxd run`: a real watchdog observer sees the inputs moved into the inbox one by one."""
    staging = folder.with_name("staging")
    folder.rename(staging)
    folder.mkdir()
    skipped: dict[str, str] = {}
    ingestor = Ingestor(store, on_skipped=lambda s: skipped.__setitem__(s.source, s.reason))
    watcher = Watcher([WatchFolder(folder, outbox)], ingestor, settle_seconds=0.05, tick_seconds=0.02,
                      rescan_seconds=3600)  # fmt: skip
    watcher.start()
    try:
        wait_until(lambda: all(i.observer is not None for i in watcher.inboxes), what="observer")
        for name in sorted(os.listdir(staging)):
            os.rename(staging / name, folder / name)
        ignored = sum(want.startswith("skipped") for _, want in TABLE.values())
        wait_until(lambda: len(skipped) == ignored and len(store.list_tasks(limit=100)) == JOBS + 2, what="inputs")
    finally:
        watcher.stop()
    return skipped


def via_traxctl_add(folder: Path, outbox: Path, store: Store) -> dict[str, str]:
    """`traxctl add FOLDER`: the folder walked with the inbox's rules."""
    result = CliRunner().invoke(traxctl_app, ["add", str(folder), "--outbox", str(outbox)])
    assert result.exit_code == 1, result.output  # 1: the ftp:// URL and the broken .webloc were not queued
    return {m["path"]: m["reason"] for m in SKIP_LINE.finditer(result.output)}


def via_trax_batch(folder: Path, outbox: Path, store: Store) -> dict[str, str]:
    """`trax batch FOLDER`."""
    result = CliRunner().invoke(trax_app, ["batch", str(folder), "--output", str(outbox), "--progress-interval", "5"])
    assert result.exit_code == 1, result.output  # 1: failed and (no handlers here) unfinished inputs
    return {m["path"]: m["reason"] for m in SKIP_LINE.finditer(result.stdout + result.stderr)}


def via_api(folder: Path, outbox: Path, store: Store) -> dict[str, str]:
    """`create_batch_processor().add_task(...)` for every file of the folder (the API names files one by one)."""
    proc = create_batch_processor(registry=Registry({}), output_dir=outbox)
    skipped: dict[str, str] = {}

    async def add_all() -> None:
        for path in sorted(folder.iterdir()):
            try:
                await proc.add_task(TaskType.PREPROCESS, {"path": str(path)})
            except TaskInputError as exc:
                match = NOT_INPUT.search(str(exc))
                assert match, str(exc)
                skipped[match["path"]] = match["reason"]

    try:
        asyncio.run(add_all())
    finally:
        proc.close()
    return skipped


ENTRY_POINTS: dict[str, Callable[[Path, Path, Store], dict[str, str]]] = {
    "inbox": via_inbox, "watched inbox": via_watched_inbox, "traxctl add": via_traxctl_add,
    "trax batch": via_trax_batch, "api": via_api}  # fmt: skip


def outcomes(folder: Path, store: Store, skipped: dict[str, str]) -> dict[str, str]:
    """name -> outcome: the skip reason the entry point gave, else the first task of each job it made."""
    first: dict[int | None, Task] = {}
    for task in sorted(store.list_tasks(limit=10_000), key=lambda t: t.id):
        first.setdefault(task.job_id, task)
    by_sha = {t.payload.get("sha256"): t for t in first.values()}
    by_url = {t.payload.get("url"): t for t in first.values()}
    by_path = {t.payload.get("path"): t for t in first.values()}
    out = {}
    for name in TABLE:
        path = folder / name
        if str(path) in skipped:
            reason = skipped[str(path)]
            out[name] = f"{'skipped' if reason in scan.IGNORED else 'rejected'}: {reason}"
            continue
        found = [by_url.get(u) for u in URLS.get(name, [])] or [by_sha.get(_sha(path)) or by_path.get(str(path))]
        out[name] = " + ".join(_describe(t, name) for t in found)
    return out


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None


def _describe(task: Task | None, name: str) -> str:
    if task is None:
        return "nothing"
    if (task.error_message or "").startswith(f"{name} is not an input: "):
        return f"rejected: {task.error_message.removeprefix(f'{name} is not an input: ')}"  # type: ignore[union-attr]
    text = f"{task.type.value} {task.state.value}"
    return f"{text}: {task.error_message}" if task.error_message else text


def _matched(got: str, want: str) -> str:
    """`want` when `got` says it (a failed task's message may go on after the words the table gives), else `got`."""
    failed = " failed: " in want
    return want if got == want or (failed and got.startswith(want)) else got


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_gives_the_same_odd_inputs_the_same_outcome(
    entry: str, tmp_path: Path, home: Path, store: Store
) -> None:
    folder, outbox = tmp_path / "in", tmp_path / "out"
    make_inputs(folder)
    skipped = ENTRY_POINTS[entry](folder, outbox, store)
    got = outcomes(folder, store, skipped)
    assert {name: _matched(got[name], want) for name, (_, want) in TABLE.items()} == {
        name: want for name, (_, want) in TABLE.items()}  # fmt: skip
    jobs = {t.job_id for t in store.list_tasks(limit=10_000)}
    recorded = 2 if "inbox" in entry else 0  # report.pdf and notes.txt as failed tasks (see the module's docstring)
    assert len(jobs) == JOBS + recorded  # the copy of one.wav is not a second job
    assert all(j.output_dir == str(outbox) for j in map(store.get_job, jobs) if j is not None)
    assert not list(outbox.glob("*")) or entry == "trax batch"  # only a batch writes (its report) here


# -- the same inputs named one by one: a file that is not an input is an error with the same reason --------------
def named_traxctl(path: Path, outbox: Path) -> tuple[int, str]:
    result = CliRunner().invoke(traxctl_app, ["add", str(path), "--outbox", str(outbox)])
    return result.exit_code, result.output


def named_batch(path: Path, outbox: Path) -> tuple[int, str]:
    result = CliRunner().invoke(trax_app, ["batch", str(path), "--output", str(outbox)])
    return result.exit_code, result.stdout + result.stderr


SKIPPED_ONES = [name for name, (_, want) in TABLE.items() if want.startswith(("skipped", "rejected"))]


@pytest.mark.parametrize("name", SKIPPED_ONES)
@pytest.mark.parametrize("entry", ["traxctl add", "trax batch"])
def test_naming_a_file_that_is_not_an_input_is_a_usage_error_with_the_reason(
    entry: str, name: str, tmp_path: Path, home: Path, store: Store
) -> None:
    folder, outbox = tmp_path / "in", tmp_path / "out"
    make_inputs(folder)
    code, output = (named_traxctl if entry == "traxctl add" else named_batch)(folder / name, outbox)
    reason = TABLE[name][1].split(": ", 1)[1]
    assert code == 2 and f"{folder / name} is not an input: {reason}" in output
    assert "Traceback" not in output and store.list_tasks() == []


def test_the_api_names_files_one_by_one_and_writes_nothing_for_one_that_is_not_an_input(
    tmp_path: Path, home: Path, store: Store
) -> None:
    # via_api above already names every file; here: the message is one line and nothing was written for it.
    folder = tmp_path / "in"
    make_inputs(folder)
    proc = create_batch_processor(registry=Registry({}), output_dir=tmp_path / "out")
    try:
        with pytest.raises(TaskInputError) as err:
            asyncio.run(proc.add_task(TaskType.TRANSCRIBE, {"file_path": str(folder / "talk.mp3.part")}))
    finally:
        proc.close()
    assert str(err.value) == f"TRANSCRIBE task: {folder / 'talk.mp3.part'} is not an input: {scan.PARTIAL}"
    assert store.list_tasks() == []


def test_a_skip_is_reported_once_per_file_by_the_inbox_not_at_every_rescan(tmp_path: Path, store: Store) -> None:
    folder, outbox = tmp_path / "in", tmp_path / "out"
    make_inputs(folder)
    told: list[Skipped] = []
    watcher = Watcher([WatchFolder(folder, outbox)], Ingestor(store, on_skipped=told.append), settle_seconds=0.05)
    watcher.ingest_pending()
    watcher.rescan()
    watcher.rescan()
    ignored = [n for n in SKIPPED_ONES if TABLE[n][1].startswith("skipped")]
    assert sorted(s.source for s in told) == sorted(str(folder / n) for n in ignored)


def test_the_api_given_a_url_list_queues_each_url_and_returns_the_first(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "in"
    make_inputs(folder)
    proc = create_batch_processor(registry=Registry({}), output_dir=tmp_path / "out")
    try:
        task = asyncio.run(proc.add_task(TaskType.TRANSCRIBE, {"path": str(folder / "links.txt")}))
        again = asyncio.run(proc.add_task(TaskType.YOUTUBE, {"url": YOUTUBE_3}))
    finally:
        proc.close()
    assert (task.task_type, task.source, task.created) == (TaskType.YOUTUBE, YOUTUBE_3, True)
    assert [(t.task_type, t.source) for t in proc.tasks[:2]] == [(TaskType.YOUTUBE, YOUTUBE_3),
                                                                 (TaskType.DOWNLOAD, MEDIA_3)]  # fmt: skip
    assert (again.task_id, again.created) == (task.task_id, False)  # the same URL is one job, however it came
