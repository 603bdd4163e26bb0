"""Exports: DOCX, Markdown, CSV/TSV and JSON Lines made from NAME.json, chosen per run, per watch folder and in
config, written in the set's one atomic write, and later by `traxctl export` and the dashboard from what is stored.

The files are read back with the libraries people open them with: python-docx, the csv module, a YAML parser."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
import yaml
from typer.testing import CliRunner

from tests import test_e2e_batch
from tests.entry_points import clean_home, media, options_by_name
from tests.fakes import media as fake_media
from tests.test_dashboard import Served
from traxd import create_batch_processor, outputs
from traxd.cli.trax_cmd import app as trax_app
from traxd.cli.traxctl_cmd import app as traxctl_app
from traxd.clock import FakeClock
from traxd.config import load_settings
from traxd.daemon.service import inbox_options
from traxd.database import open_store
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.errors import ConfigError, UsageError
from traxd.exports import DEFAULT_FORMATS, parse_formats, turns
from traxd.handlers.registry import Registry
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.joboptions import formats_of
from traxd.queue.store import Store
from traxd.types import NewJob, NewTask, TaskType

ALL = ("txt", "json", "srt", "vtt", "docx", "md", "csv", "tsv", "jsonl")
DIARIZED = {
    "name": "Board meeting", "source": "/in/board meeting.mp3", "language": "en", "duration": 3725.4,
    "created_at": "2026-12-05T09:30:00+00:00", "text": "unused once diarized",
    "segments": [
        {"start": 0.0, "end": 4.0, "text": " Welcome, everyone.", "speaker": "Ann", "avg_logprob": -0.1},
        {"start": 4.0, "end": 7.5, "text": " # Item one: the budget.", "speaker": "Ann", "avg_logprob": -0.3},
        {"start": 8.0, "end": 12.0, "text": ' Thanks, "Ann".', "speaker": "B",
         "words": [{"word": "Thanks,", "start": 8.0, "end": 9.0, "probability": 0.5},
                   {"word": '"Ann".', "start": 9.0, "end": 12.0, "probability": 0.7}]},
        {"start": 3700.0, "end": 3725.4, "text": "Bye\tnow.", "speaker": "Ann"},
    ],
    "speakers": [{"speaker": "Ann", "label": "A", "talk_time": 32.9}, {"speaker": "B", "label": "B", "talk_time": 4.0}],
}  # fmt: skip
PLAIN = {"name": "memo", "source": "/in/memo.m4a", "language": "de", "duration": 30.0, "text": "x",
         "segments": [{"start": 0.0, "end": 2.0, "text": "Erstens."}, {"start": 2.5, "end": 4.0, "text": "Zweitens."},
                      {"start": 9.0, "end": 11.0, "text": "Nach der Pause."}]}  # fmt: skip


def _written(folder: Path, doc: dict[str, Any], formats: tuple[str, ...] = ALL, name: str = "talk") -> Path:
    base = outputs.choose_base(folder, name, str(doc["source"]))
    outputs.write_transcript(folder, base, doc, formats)
    return folder


def _paragraphs(path: Path) -> list[Any]:
    return list(docx.Document(str(path)).paragraphs)


def test_the_docx_has_title_facts_speakers_with_talk_time_and_one_paragraph_per_turn(tmp_path: Path) -> None:
    paras = _paragraphs(_written(tmp_path, DIARIZED) / "talk.docx")
    texts = [p.text for p in paras]
    assert texts[0] == "Board meeting" and paras[0].style.name == "Heading 1"
    assert {"Date: 2026-12-05", "Duration: 01:02:05", "Language: en"} <= set(texts)
    assert [t for t in texts if t.endswith(")") and t.startswith(("Ann", "B "))] == ["Ann (00:00:32)", "B (00:00:04)"]
    turns_ = texts[texts.index("Transcript") + 1:]
    assert turns_ == ["[00:00:00] Ann: Welcome, everyone. # Item one: the budget.", '[00:00:08] B: Thanks, "Ann".',
                      "[01:01:40] Ann: Bye now."]  # fmt: skip
    bold = [[r.text for r in p.runs if r.bold] for p in paras[texts.index("Transcript") + 1:]]
    assert bold == [["Ann"], ["B"], ["Ann"]]  # the speaker's name, and only it, in bold


def test_without_speakers_turns_are_paragraphs_split_at_pauses_and_speaker_fields_stay_empty(tmp_path: Path) -> None:
    out = _written(tmp_path, PLAIN)
    paras = _paragraphs(out / "talk.docx")
    texts = [p.text for p in paras]
    assert texts[texts.index("Transcript") + 1:] == ["[00:00:00] Erstens. Zweitens.", "[00:00:09] Nach der Pause."]
    assert "Speakers" not in texts and not any(r.bold for p in paras for r in p.runs)
    rows = list(csv.DictReader(io.StringIO((out / "talk.csv").read_text(encoding="utf-8-sig"))))
    assert [r["speaker"] for r in rows] == ["", "", ""]
    assert [json.loads(line)["speaker"] for line in (out / "talk.jsonl").read_text().splitlines()] == [None] * 3
    front = yaml.safe_load((out / "talk.md").read_text().split("---\n")[1])
    assert front["speakers"] == [] and front["language"] == "de"


def test_a_long_unbroken_monologue_is_still_cut_into_paragraphs() -> None:
    doc = {"segments": [{"start": i * 5.0, "end": i * 5.0 + 5.0, "text": f"part {i}."} for i in range(30)]}
    assert [t.start for t in turns(doc)] == [0.0, 60.0, 120.0]  # a new paragraph once one has run a minute


def test_the_markdown_has_yaml_front_matter_and_a_section_per_turn_with_its_time(tmp_path: Path) -> None:
    text = (_written(tmp_path, DIARIZED) / "talk.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    _, front_text, body = text.split("---\n", 2)
    front = yaml.safe_load(front_text)
    assert front == {"title": "Board meeting", "source": "/in/board meeting.mp3", "date": front["date"],
                     "duration": "01:02:05", "language": "en", "speakers": ["Ann", "B"], "tags": ["transcript"]}
    assert str(front["date"]) == "2026-12-05"
    sections = [line for line in body.splitlines() if line.startswith("## ")]
    assert sections == ["## [00:00:00] Ann", "## [00:00:08] B", "## [01:01:40] Ann"]
    assert "\\# Item one" not in body and "Welcome, everyone. # Item one: the budget." in body
    assert "\n# Board meeting\n" in body


def test_markdown_front_matter_stays_valid_yaml_for_any_name_and_what_was_said_makes_no_heading() -> None:
    from traxd.exports import to_markdown

    hostile = {"name": 'a: b "c" #d\nx', "source": "C:\\in\\x.mp3", "language": None, "duration": 1.0,
               "segments": [{"start": 0.0, "end": 1.0, "text": "# not a heading", "speaker": "- Z: y"}]}  # fmt: skip
    text = to_markdown(hostile)
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["title"] == 'a: b "c" #d x' and front["source"] == "C:\\in\\x.mp3" and front["language"] is None
    assert front["speakers"] == ["- Z: y"]
    assert "\n\\# not a heading\n" in text and "## [00:00:00] \\- Z: y" in text


def test_csv_and_tsv_have_one_row_per_segment_that_the_csv_module_reads_back(tmp_path: Path) -> None:
    out = _written(tmp_path, DIARIZED)
    for ext, dialect in (("csv", "excel"), ("tsv", "excel-tab")):
        raw = (out / f"talk.{ext}").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # so spreadsheet programs read UTF-8
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), dialect=dialect))
        assert rows[0] == ["start", "end", "speaker", "text", "confidence"]
        assert [r[:4] for r in rows[1:]] == [["0.000", "4.000", "Ann", "Welcome, everyone."],
                                             ["4.000", "7.500", "Ann", "# Item one: the budget."],
                                             ["8.000", "12.000", "B", 'Thanks, "Ann".'],
                                             ["3700.000", "3725.400", "Ann", "Bye now."]]  # fmt: skip
        assert [r[4] for r in rows[1:]] == ["0.9048", "0.7408", "0.6", ""]  # words' mean where timed, else exp(logprob)


def test_json_lines_hold_one_segment_a_line(tmp_path: Path) -> None:
    lines = (_written(tmp_path, DIARIZED) / "talk.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["start"], r["speaker"], r["text"]) for r in rows] == [(s["start"], s["speaker"], s["text"])
                                                                     for s in DIARIZED["segments"]]  # fmt: skip
    assert rows[2]["words"][0]["word"] == "Thanks," and rows[0]["confidence"] == 0.9048


def test_only_the_chosen_formats_are_written_and_json_always(tmp_path: Path) -> None:
    paths = outputs.write_transcript(tmp_path, "talk", DIARIZED, parse_formats("docx,md"))
    assert sorted(paths) == ["docx", "json", "md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.docx", "talk.json", "talk.md"]
    outputs.write_transcript(tmp_path / "default", "talk", DIARIZED)
    assert sorted(p.suffix for p in (tmp_path / "default").iterdir()) == [".json", ".srt", ".txt", ".vtt"]


def test_the_formats_option_is_parsed_one_way_and_refuses_what_it_does_not_know() -> None:
    assert parse_formats("DOCX, .md,,csv") == ("json", "docx", "md", "csv")
    assert parse_formats(["jsonl"]) == ("json", "jsonl") and parse_formats(None) == DEFAULT_FORMATS
    assert parse_formats("") == ("json",)
    with pytest.raises(UsageError, match="unknown format 'pdf' \\(known: txt, json, srt, vtt, docx, md, csv"):
        parse_formats("txt,pdf")
    assert formats_of({}) == DEFAULT_FORMATS and formats_of({"formats": ["md"]}) == ("json", "md")


def test_a_set_whose_markdown_cannot_take_its_name_leaves_no_file_of_the_set(tmp_path: Path) -> None:
    (tmp_path / "talk.md").mkdir()  # someone else's folder where NAME.md would go: its rename fails
    with pytest.raises(OSError):
        outputs.write_transcript(tmp_path, "talk", DIARIZED, ALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.md"]  # no docx, csv, … and no temp file


def test_a_rewrite_that_fails_keeps_every_earlier_export(tmp_path: Path) -> None:
    _written(tmp_path, PLAIN, ALL)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = {**DIARIZED, "source": PLAIN["source"], "segments": [{"start": "x", "end": 1.0, "text": "bad"}]}
    with pytest.raises(ValueError):
        outputs.write_transcript(tmp_path, "talk", broken, ALL)  # the CSV writer fails on a start that is no number
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_users_own_file_of_a_new_format_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "talk.docx").write_bytes(b"theirs")
    assert outputs.choose_base(tmp_path, "talk", "/in/talk.mp3") == "talk-2"
    assert (tmp_path / "talk.docx").read_bytes() == b"theirs"


def test_a_later_stage_that_rewrites_the_set_rewrites_the_chosen_formats(tmp_path: Path) -> None:
    from traxd.handlers.diarize import diarize
    from traxd.handlers.registry import TaskContext
    from traxd.types import Job, Task, TaskState

    # The API's diarizing model labelled the segments; DIARIZE turns them into the set's speakers and rewrites it.
    doc = {**DIARIZED, "model": "gpt-4o-transcribe-diarize", "backend": "openai", "speakers": []}
    outputs.write_transcript(tmp_path, "talk", doc, ("json",))
    job = Job(1, "/in/board meeting.mp3", "talk", str(tmp_path), "g", {"formats": ["json", "docx"], "diarize": True}, 0)
    task = Task(2, TaskType.DIARIZE, {}, TaskState.RUNNING, 6, 1, 3, 0.0, "me", None, None, None, [], None, None, 1,
                0.0, 0.0, None, None)  # fmt: skip
    diarize(TaskContext(task, job=job), {"outputs": {"json": str(tmp_path / "talk.json")}}, _no_local_diarizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.docx", "talk.json"]
    bold = [r.text for p in _paragraphs(tmp_path / "talk.docx") for r in p.runs if r.bold]
    assert bold[-3:] == ["A", "B", "A"]


def _no_local_diarizer() -> Any:
    raise AssertionError("the API's speakers are used; no local diarizer is built")


# -- the formats option from every entry point ------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_home(tmp_path, monkeypatch)



@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    store = open_store(load_settings())
    yield store
    store.engine.dispose()



def _formats_by_name(store: Store) -> dict[str, Any]:
    return {name: options.get("formats") for name, options in options_by_name(store).items()}


def test_formats_come_from_each_entry_point_and_stay_with_the_job(
    home: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    out = tmp_path / "out"
    added = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "a", "add.mp3")), "--outbox", str(out),
                                             "--formats", "txt,docx"])  # fmt: skip
    assert added.exit_code == 0, added.output
    batch = CliRunner().invoke(trax_app, ["batch", str(media(tmp_path / "b", "batch.mp3")), "--output", str(out),
                                          "--formats", "md,csv"])  # fmt: skip
    assert batch.exit_code == 1, batch.output  # no handlers here: the input stays queued
    monkeypatch.setenv("TRAX_FORMATS", "jsonl")
    plain = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "c", "env.mp3")), "--outbox", str(out)])
    assert plain.exit_code == 0, plain.output
    monkeypatch.delenv("TRAX_FORMATS")
    (home / "config.toml").write_text('formats = ["txt", "srt", "docx", "md"]\n')
    conf = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "d", "conf.mp3")), "--outbox", str(out)])
    assert conf.exit_code == 0, conf.output
    (home / "config.toml").unlink()
    default = CliRunner().invoke(traxctl_app, ["add", str(media(tmp_path / "e", "plain.mp3")), "--outbox", str(out)])
    assert default.exit_code == 0, default.output
    proc = create_batch_processor(registry=Registry({}), output_dir=out, formats="tsv")
    try:
        asyncio.run(proc.add_task(TaskType.PREPROCESS, {"path": str(media(tmp_path / "f", "api.mp3"))}))
    finally:
        proc.close()
    assert _formats_by_name(store) == {"add.mp3": ["txt", "json", "docx"], "batch.mp3": ["json", "md", "csv"],
                                       "env.mp3": ["json", "jsonl"], "conf.mp3": ["txt", "json", "srt", "docx", "md"],
                                       "plain.mp3": None, "api.mp3": ["json", "tsv"]}  # fmt: skip


def test_a_bad_format_is_one_line_from_every_entry_point(home: Path, tmp_path: Path) -> None:
    path = str(media(tmp_path / "a", "x.mp3"))
    for app, line in ((traxctl_app, ["add", path, "--formats", "txt,pdf"]),
                      (trax_app, ["batch", path, "--formats", "pdf"]),
                      (traxctl_app, ["watch", "add", str(tmp_path / "a"), "--formats", "pdf"])):  # fmt: skip
        done = CliRunner().invoke(app, line)
        assert done.exit_code == 2 and "unknown format 'pdf'" in done.output, done.output
        assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1
    (home / "config.toml").write_text('formats = ["doc"]\n')
    with pytest.raises(ConfigError, match="formats.*unknown format 'doc'"):
        load_settings()


def test_a_watch_folder_has_its_own_formats(home: Path, store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "talks"
    inbox.mkdir()
    done = CliRunner().invoke(traxctl_app, ["watch", "add", str(inbox), "--formats", "docx,md"])
    assert done.exit_code == 0, done.output
    settings = load_settings()
    assert [w.formats for w in settings.watch] == [None, ("json", "docx", "md")]  # read back from config.toml
    media(inbox, "lecture.mp3")
    Watcher(settings.watch, Ingestor(store, options=inbox_options(settings)), settle_seconds=0.05,
            tick_seconds=0.02).ingest_pending()  # fmt: skip
    assert _formats_by_name(store) == {"lecture.mp3": ["json", "docx", "md"]}


# -- traxctl export and the dashboard's downloads ----------------------------------------------------------------
def _finished_job(store: Store, outbox: Path, doc: dict[str, Any], finish: bool = True) -> int:
    """A job whose TRANSCRIBE wrote NAME.json (the default set) and, when `finish`, has nothing left to run."""
    src = str(doc["source"])
    job, _, _ = store.create_job(NewJob(src, "talk", str(outbox)), [NewTask(TaskType.TRANSCRIBE, {"path": src},
                                                                            dedupe_key=src)])  # fmt: skip
    (t,) = store.claim("me", 1, 60)
    paths = outputs.write_transcript(outbox, outputs.choose_base(outbox, "talk", src), doc)
    later = [] if finish else [NewTask(TaskType.DIARIZE, {"outputs": paths})]
    assert store.complete(t.lease, {"outputs": paths}, later)
    return job.id


def test_traxctl_export_writes_any_format_later_from_the_stored_transcript(home: Path, store: Store,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    outbox = tmp_path / "out"
    job = _finished_job(store, outbox, DIARIZED)
    (outbox / "talk.txt").unlink()  # the other files of the set are not what exports are made from
    done = CliRunner().invoke(traxctl_app, ["export", str(job), "--format", "docx"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == f"wrote {outbox / 'talk.docx'}"
    assert [r.text for p in _paragraphs(outbox / "talk.docx") for r in p.runs if r.bold][-3:] == ["Ann", "B", "Ann"]
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    to_folder = CliRunner().invoke(traxctl_app, ["export", str(job), "--format", "MD", "--to", str(elsewhere)])
    assert to_folder.exit_code == 0, to_folder.output
    assert yaml.safe_load((elsewhere / "talk.md").read_text().split("---\n")[1])["speakers"] == ["Ann", "B"]
    file = tmp_path / "rows.tsv"
    assert CliRunner().invoke(traxctl_app, ["export", str(job), "--format", "tsv", "--to", str(file)]).exit_code == 0
    assert len(list(csv.reader(io.StringIO(file.read_text(encoding="utf-8-sig")), dialect="excel-tab"))) == 5
    assert not [p for p in outbox.iterdir() if p.name.startswith(".")]  # written atomically: no temp file left


def test_traxctl_export_says_in_one_line_what_is_wrong(home: Path, store: Store, tmp_path: Path) -> None:
    other, outbox = tmp_path / "other", tmp_path / "out"
    job = _finished_job(store, other, {**PLAIN, "source": "/in/other.m4a"})
    running = _finished_job(store, outbox, DIARIZED, finish=False)
    cases = {("export", str(running), "--format", "docx"): f"job #{running} is not finished (diarize queued)",
             ("export", str(running), "--format", "pdf"): "unknown format 'pdf'",
             ("export", "999", "--format", "md"): "no job #999"}  # fmt: skip
    for line, said in cases.items():
        done = CliRunner().invoke(traxctl_app, list(line))
        assert done.exit_code != 0 and said in done.output, done.output
        assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1
    assert not (outbox / "talk.docx").exists()
    (other / "talk.json").unlink()
    gone = CliRunner().invoke(traxctl_app, ["export", str(job), "--format", "md"])
    assert gone.exit_code == 1 and "is missing" in gone.output and len(gone.output.strip().splitlines()) == 1


def test_the_dashboard_offers_every_format_as_a_download_made_from_the_stored_transcript(
    sqlite_url: str, tmp_path: Path
) -> None:  # fmt: skip
    engine = open_engine(sqlite_url)
    upgrade(engine)
    store = Store(engine, FakeClock(time.time()))
    job = _finished_job(store, tmp_path / "out", DIARIZED)
    waiting = _finished_job(store, tmp_path / "out2", {**PLAIN, "source": "/in/w.m4a"}, finish=False)
    served = Served(store, tmp_path)
    try:
        page = served.get(f"/jobs/{job}").text
        assert all(f'href="/jobs/{job}/export/{fmt}"' in page for fmt in ALL)
        got = served.get(f"/jobs/{job}/export/docx")
        assert got.status_code == 200 and got.headers["content-disposition"] == "attachment; filename*=UTF-8''talk.docx"
        bold = [r.text for p in docx.Document(io.BytesIO(got.content)).paragraphs for r in p.runs if r.bold]
        assert bold[-3:] == ["Ann", "B", "Ann"]
        csv_rows = list(csv.reader(io.StringIO(served.get(f"/jobs/{job}/export/csv").content.decode("utf-8-sig"))))
        assert csv_rows[3][2:4] == ["B", 'Thanks, "Ann".']
        assert not (tmp_path / "out" / "talk.docx").exists()  # served from NAME.json, nothing written
        assert served.get(f"/jobs/{job}/export/pdf").status_code == 404
        assert served.get(f"/jobs/{waiting}/export/md").status_code == 409
        assert "/export/" not in served.get(f"/jobs/{waiting}").text  # no links while a stage is still to run
        assert served.get("/jobs/4242/export/md").status_code == 404
    finally:
        served.stop()
        engine.dispose()


# -- a real run ---------------------------------------------------------------------------------------------------
server, key = test_e2e_batch.server, test_e2e_batch.key  # the fake OpenAI server and a key (pytest fixtures)


def test_trax_batch_writes_the_chosen_formats_of_a_real_transcript(tmp_path: Path, server: object, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    fake_media.tone(folder / "memo.wav", 1.0)
    env = test_e2e_batch.user_env(tmp_path, server, key)  # type: ignore[arg-type]
    done = test_e2e_batch.trax(env, str(folder), "--formats", "docx,md,csv,jsonl")
    assert done.returncode == 0, done.stderr
    out = folder / "transcripts"
    assert sorted(p.name for p in out.glob("memo.*")) == ["memo.csv", "memo.docx", "memo.json", "memo.jsonl", "memo.md"]
    said = " ".join(s["text"].strip() for s in json.loads((out / "memo.json").read_text())["segments"])
    assert said and said in " ".join(p.text for p in _paragraphs(out / "memo.docx"))
    assert yaml.safe_load((out / "memo.md").read_text().split("---\n")[1])["source"] == str(folder / "memo.wav")
