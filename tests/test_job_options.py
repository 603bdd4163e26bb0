"""One rule for a job's options (traxd.joboptions): every entry point stores the same options for the same settings,
what is given goes over the settings, and the environment map and live-reload fields come from one declaration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.entry_points import clean_home, media, options_by_name
from traxd import create_batch_processor
from traxd.cli.trax_cmd import app as trax_app
from traxd.cli.traxctl_cmd import app as traxctl_app
from traxd.config import ENV, JOB_FIELDS, LIVE_FIELDS, Settings, load_settings
from traxd.daemon.service import inbox_options, live_changes
from traxd.database import open_store
from traxd.errors import UsageError
from traxd.handlers.registry import Registry
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.joboptions import JobOptions, job_options
from traxd.queue.store import Store
from traxd.types import TaskType

CONFIG = """language = "German"
chunk_size = 300
word_timestamps = true
enhance = true
translate_to = ["fr"]
diarize = true
speakers = 2
"""
# What every entry point stores for CONFIG when nothing else is given: the settings of the moment, but no model.
WANT = {"enhance": True, "language": "de", "model": None, "chunk_size": 300.0, "word_timestamps": True,
        "diarize": True, "speakers": 2, "translate_to": ["fr"]}  # fmt: skip



@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_home(tmp_path, monkeypatch, CONFIG)


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    store = open_store(load_settings())
    yield store
    store.engine.dispose()




def test_every_entry_point_stores_the_same_options_for_the_same_settings(
    home: Path, store: Store, tmp_path: Path
) -> None:  # fmt: skip
    settings, out = load_settings(), tmp_path / "out"
    media(settings.watch[0].inbox, "inbox.mp3")
    Watcher(settings.watch, Ingestor(store, options=inbox_options(settings)), settle_seconds=0.05,
            tick_seconds=0.02).ingest_pending()  # fmt: skip
    added = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "a", "add.mp3")), "--outbox", str(out)])
    assert added.exit_code == 0, added.output
    batch = CliRunner().invoke(trax_app, ["batch", str(media(tmp_path / "b", "batch.mp3")), "--output", str(out)])
    assert batch.exit_code == 1, batch.output  # 1: no handlers here, so the input is left queued
    proc = create_batch_processor(registry=Registry({}), output_dir=out)
    try:
        asyncio.run(proc.add_task(TaskType.PREPROCESS, {"path": str(media(tmp_path / "c", "api.mp3"))}))
    finally:
        proc.close()
    got = options_by_name(store)
    assert set(got) == {"inbox.mp3", "add.mp3", "batch.mp3", "api.mp3"}
    assert {name: options for name, options in got.items() if options != WANT} == {}


def test_what_is_given_goes_over_the_settings(home: Path) -> None:
    settings = load_settings()
    given = job_options(settings, {"language": "fr", "summarize": True, "diarize": False, "translate_to": []})
    assert given == replace(JobOptions(**{**WANT, "translate_to": ()}), language="fr", summarize=True, diarize=False)
    assert given.as_dict() == {**{k: v for k, v in WANT.items() if k not in ("diarize", "translate_to")},
                               "language": "fr", "summarize": True}  # fmt: skip
    with pytest.raises(UsageError, match="chunk_size must be a number greater than 0"):
        job_options(settings, {"chunk_size": "300"})
    with pytest.raises(UsageError, match="unknown job option 'priority'"):
        job_options(settings, {"priority": 1})


def test_the_environment_map_and_the_live_fields_come_from_the_settings_declarations() -> None:
    declared = {f.name: f.metadata.get("read") for f in fields(Settings)}
    assert {n for n, read in declared.items() if read is None} == {"home", "watch"}  # TRAX_HOME and [[watch]]: own rules
    assert set(ENV.values()) <= set(declared) and ENV["TRAX_LANGUAGE"] == "language"
    assert {f.name for f in fields(JobOptions)} - {"model", "backend"} == set(JOB_FIELDS)
    assert set(JOB_FIELDS) <= set(LIVE_FIELDS) and "workers" not in LIVE_FIELDS


def test_a_reloaded_config_changes_what_the_deepseek_stages_read_without_a_restart(tmp_path: Path) -> None:
    old = Settings(home=tmp_path)
    _merged, live, restart = live_changes(old, replace(old, translate_chunk_chars=900, summary_chunk_chars=900))
    assert (sorted(live), restart) == (["summary_chunk_chars", "translate_chunk_chars"], [])


def test_traxctl_add_takes_every_job_option_trax_batch_takes(home: Path, store: Store, tmp_path: Path) -> None:
    line = ["add", str(media(tmp_path / "a", "add.mp3")), "--outbox", str(tmp_path / "out"), "--language", "French",
            "--chunk-size", "120", "--model", "tiny.en", "--no-summarize"]  # fmt: skip
    done = CliRunner().invoke(traxctl_app, line)
    assert done.exit_code == 0, done.output
    (options,) = options_by_name(store).values()
    assert (options["language"], options["chunk_size"], options["model"], options["backend"]) == ("fr", 120.0,
                                                                                                  "tiny.en", "local")
    assert "summarize" not in options
    bad = CliRunner().invoke(traxctl_app, [*line[:4], "--chunk-size", "0"])
    assert bad.exit_code == 2 and "chunk_size must be a number greater than 0" in bad.output


def test_a_watch_folder_that_turns_diarize_on_keeps_the_speaker_count_of_the_moment(home: Path, store: Store) -> None:
    inbox = home / "voices"
    (home / "config.toml").write_text(f'speakers = 3\nwatch = [{{inbox = "{inbox}", diarize = true}}]\n')
    settings = load_settings()
    media(inbox, "memo.mp3")
    Watcher(settings.watch, Ingestor(store, options=inbox_options(settings)), settle_seconds=0.05,
            tick_seconds=0.02).ingest_pending()  # fmt: skip
    (options,) = options_by_name(store).values()
    assert (options["diarize"], options["speakers"]) == (True, 3)


def test_a_vocabulary_is_a_job_option_from_a_flag_a_file_a_watch_folder_or_the_settings(
    home: Path, store: Store, tmp_path: Path
) -> None:  # fmt: skip
    terms = tmp_path / "names.txt"
    terms.write_text("Siobhan Nguyen\nKowalczyk\n")
    out = str(tmp_path / "out")
    done = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "a", "add.mp3")), "--outbox", out,
                                            "--vocabulary", f"@{terms}"])  # fmt: skip
    assert done.exit_code == 0, done.output
    batch = CliRunner().invoke(trax_app, ["batch", str(media(tmp_path / "b", "batch.mp3")), "--output", out,
                                          "--vocabulary", "Trax, DeepSeek"])  # fmt: skip
    assert batch.exit_code == 1, batch.output  # no handlers here: left queued
    inbox = home / "voices"
    inbox.mkdir()
    watched = CliRunner().invoke(traxctl_app, ["watch", "add", str(inbox), "--vocabulary", "Aoife, Saoirse"])
    assert watched.exit_code == 0, watched.output
    (home / "plain").mkdir()
    # Its own outbox: folder options are looked up by outbox, so two inboxes sharing one share them (a known gap).
    plain = CliRunner().invoke(traxctl_app, ["watch", "add", str(home / "plain"), "--outbox", str(home / "plain-out")])
    assert plain.exit_code == 0, plain.output
    (home / "config.toml").write_text((home / "config.toml").read_text() + 'vocabulary = ["Everyone"]\n')
    settings = load_settings()
    media(inbox, "memo.mp3")
    media(home / "plain", "inbox.mp3")
    Watcher(settings.watch, Ingestor(store, options=inbox_options(settings)), settle_seconds=0.05,
            tick_seconds=0.02).ingest_pending()  # fmt: skip
    got = {name: options.get("vocabulary") for name, options in options_by_name(store).items()}
    assert got == {"add.mp3": ["Siobhan Nguyen", "Kowalczyk"], "batch.mp3": ["Trax", "DeepSeek"],
                   "memo.mp3": ["Aoife", "Saoirse"], "inbox.mp3": ["Everyone"]}  # fmt: skip
    missing = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "c", "c.mp3")), "--outbox", out,
                                               "--vocabulary", f"@{tmp_path / 'none.txt'}"])  # fmt: skip
    assert missing.exit_code == 2 and "cannot read" in missing.output and "Traceback" not in missing.output
