"""The transcript archive: FTS5 / PostgreSQL full-text search, indexed with the job's completion, and traxctl search."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI
from tests.test_pipeline_e2e import add_file, drain, make_settings
from tests.test_pipeline_e2e import open_store as open_e2e_store
from traxd import archive, outputs
from traxd.cli.traxctl_cmd import app
from traxd.clock import FakeClock
from traxd.config import load_settings
from traxd.database import open_store
from traxd.outputs import index_entry, write_transcript
from traxd.queue.store import Store
from traxd.searchquery import QueryError, parse, to_fts5, to_tsquery
from traxd.types import NewJob, NewTask, SearchHit, TaskState, TaskType

runner = CliRunner()

BUDGET = [
    {"start": 0.0, "end": 4.0, "text": "Good morning, this is the weekly meeting.", "speaker": "Alice"},
    {"start": 4.0, "end": 9.5, "text": "Next year's budget is tight; the budgeting starts in June.", "speaker": "Bob"},
    {"start": 9.5, "end": 15.0, "text": "The café on the corner raised its prices again.", "speaker": "Alice"},
    {"start": 75.25, "end": 80.0, "text": "Let us talk about the draft budget later.", "speaker": "Bob"},
]
FRENCH = [
    {"start": 0.0, "end": 3.0, "text": "L'ÉTÉ sera chaud, dit la météo."},
    {"start": 3.0, "end": 6.0, "text": "Le budget de la mairie est voté."},
]


def entry(path: Path, segments: list[dict], source: str, language: str = "en", name: str | None = None) -> dict:
    doc = {"name": name or path.stem, "source": source, "language": language, "duration": 80.0, "segments": segments}
    out = index_entry(doc, path)
    assert out is not None
    return out


def words_of(hits: list[SearchHit]) -> list[tuple[str, float]]:
    return [(h.name, h.start) for h in hits]


@pytest.fixture
def archive_store(store: Store, tmp_path: Path) -> Store:
    """Two transcripts indexed: an English meeting (inbox a) and a French news clip (inbox b)."""
    store.index_transcript(entry(tmp_path / "out/meeting.json", BUDGET, str(tmp_path / "a/meeting.mp3")))
    store.index_transcript(entry(tmp_path / "out/news.json", FRENCH, str(tmp_path / "b/news.mp3"), "fr"))
    return store


# -- the query language ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "fts5", "tsquery"),
    [
        ("budget", '"budget"', "'budget'"),
        ('"next year"', '"next year"', "('next' <-> 'year')"),
        ("budg*", '"budg"*', "'budg':*"),
        ("budget OR cost", '("budget" OR "cost")', "('budget' | 'cost')"),
        ("budget -draft", '("budget") NOT "draft"', "('budget' & !'draft')"),
        ("(tight OR cheap) budget", '(("tight" OR "cheap") AND "budget")', "(('tight' | 'cheap') & 'budget')"),
        ("x'; DROP --", '("x" AND "drop")', "('x' & 'drop')"),
        ("Été", '"été"', "'été'"),
    ],
)
def test_queries_render_the_same_meaning_for_both_engines(query: str, fts5: str, tsquery: str) -> None:
    node = parse(query)
    assert (to_fts5(node), to_tsquery(node)) == (fts5, tsquery)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "no words"),
        ("!!!", "no words"),
        ('"open budget', "never closed"),
        ("(budget", "never closed"),
        ("budget)", "closing parenthesis"),
        ("-draft", "only excludes"),
        ("budget OR", "OR needs a word"),
        ("AND budget", "AND needs a word"),
        ('"next year"*', "single word"),
    ],
)
def test_malformed_queries_say_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(query)


def test_a_bad_since_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="--since 'last tuesday'"):
        archive.search("budget", since="last tuesday")


# -- the engines (SQLite FTS5 and PostgreSQL) -----------------------------------------------------
def test_word_phrase_prefix_and_boolean_queries(archive_store: Store) -> None:
    def find(q: str) -> list[tuple[str, float]]:
        return words_of(archive.search(q, store=archive_store))

    assert sorted(find("budget")) == [("meeting", 4.0), ("meeting", 75.25), ("news", 3.0)]
    assert find('"draft budget"') == [("meeting", 75.25)]
    assert find('"budget draft"') == []
    assert sorted(find("budg*")) == [("meeting", 4.0), ("meeting", 75.25), ("news", 3.0)]
    assert sorted(find("budget -draft")) == [("meeting", 4.0), ("news", 3.0)]
    assert sorted(find("prices OR météo")) == [("meeting", 9.5), ("news", 0.0)]
    assert find("budget tight") == [("meeting", 4.0)]
    assert find("nonexistentword") == []


def test_accents_and_case_are_folded(archive_store: Store) -> None:
    for q in ("ete", "ÉTÉ", "été", "Ete"):
        assert words_of(archive.search(q, store=archive_store)) == [("news", 0.0)], q
    assert words_of(archive.search("CAFE", store=archive_store)) == [("meeting", 9.5)]
    assert words_of(archive.search("meteo", store=archive_store)) == [("news", 0.0)]


def test_hits_carry_file_time_speaker_output_and_the_marked_match(archive_store: Store, tmp_path: Path) -> None:
    (hit,) = archive.search('"draft budget"', store=archive_store)
    assert (hit.start, hit.end, hit.speaker, hit.language) == (75.25, 80.0, "Bob", "en")
    assert hit.json_path == str(tmp_path / "out/meeting.json") and hit.source == str(tmp_path / "a/meeting.mp3")
    # FTS5 marks a phrase as one span, ts_headline word by word: the same words either way.
    assert " ".join(hit.snippet[a:b] for a, b in hit.marks) == "draft budget"
    assert hit.marked().replace("» «", " ").count("«draft budget»") == 1
    (cafe,) = archive.search("cafe", store=archive_store)
    assert [cafe.snippet[a:b] for a, b in cafe.marks] == ["café"]


def test_ranking_puts_the_denser_match_first(store: Store, tmp_path: Path) -> None:
    segs = [{"start": 0.0, "end": 1.0, "text": "budget " + "filler words here " * 8},
            {"start": 1.0, "end": 2.0, "text": "budget budget budget"}]  # fmt: skip
    store.index_transcript(entry(tmp_path / "rank.json", segs, "/in/rank.mp3"))
    hits = archive.search("budget", store=store)
    assert [h.start for h in hits] == [1.0, 0.0] and hits[0].score > hits[1].score


def test_filters_speaker_language_inbox_since_and_limit(archive_store: Store, tmp_path: Path) -> None:
    def find(q: str, **kw: object) -> list[tuple[str, float]]:
        return sorted(words_of(archive.search(q, store=archive_store, **kw)))  # type: ignore[arg-type]

    assert find("budget", speaker="bob") == [("meeting", 4.0), ("meeting", 75.25)]
    assert find("budget", speaker="Alice") == []
    assert find("budget", language="FR") == [("news", 3.0)]
    assert find("budget", inbox=tmp_path / "b") == [("news", 3.0)]
    assert find("budget", inbox=tmp_path / "a") == [("meeting", 4.0), ("meeting", 75.25)]
    assert find("budget", inbox=tmp_path / "a_") == []  # LIKE wildcards in a folder name are literal
    assert len(archive.search("budget", store=archive_store, limit=1)) == 1
    # The fake clock indexed them at 2027-01-15 08:00 UTC.
    assert find("budget", since="2027-01-16") == []
    assert len(find("budget", since="2027-01-15")) == 3
    with pytest.raises(QueryError, match="--limit"):
        archive.search("budget", store=archive_store, limit=0)


@pytest.fixture
def california() -> Iterator[None]:
    """The test runs with local time 8 hours behind UTC (a POSIX zone: no tz database needed)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "PST+8"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("california")
def test_since_reads_a_date_without_a_zone_as_local_time(archive_store: Store) -> None:
    """As `traxctl status --since` does: 03:00 in California is 11:00 UTC, after the 08:00 UTC indexing."""
    since = lambda when: len(archive.search("budget", store=archive_store, since=when))
    assert since("2027-01-15T03:00") == 0
    assert since("2027-01-14T23:00") == 3
    assert since("2027-01-15T03:00Z") == 3  # a zone given is a zone taken


# -- kept in step with the queue ----------------------------------------------------------------------
def run_transcribe(store: Store, result: dict, job_id: int | None = None) -> tuple[int, bool]:
    """Claim a TRANSCRIBE task of a new job and complete it with `result` (the hot path when nothing follows)."""
    if job_id is None:
        job, _, _ = store.create_job(NewJob("/in/talk.mp3", "talk"), [NewTask(TaskType.TRANSCRIBE, {})])
        job_id = job.id
    else:
        store.enqueue(NewTask(TaskType.TRANSCRIBE, {}, job_id=job_id))
    (task,) = store.claim("w", 1, 30.0)
    return job_id, store.complete(task.lease, result)


def test_a_transcript_is_indexed_in_the_transaction_that_completes_its_task(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "talk.json"
    result = {"outputs": {"json": str(path)}, "index": entry(path, BUDGET, "/in/talk.mp3")}
    job_id, took = run_transcribe(store, result)
    assert took
    assert words_of(archive.search("june", store=store)) == [("talk", 4.0)]
    (task,) = store.tasks_of_job(job_id)
    assert task.state is TaskState.SUCCEEDED and "index" not in (task.result or {})  # not stored twice
    assert archive.search("june", store=store)[0].job_id == job_id


def test_a_completion_whose_lease_was_lost_indexes_nothing(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    store.create_job(NewJob("/in/x.mp3", "x"), [NewTask(TaskType.TRANSCRIBE, {})])
    (task,) = store.claim("w", 1, 30.0)
    store.cancel(task.id)
    path = tmp_path / "x.json"
    assert not store.complete(task.lease, {"index": entry(path, BUDGET, "/in/x.mp3")})
    assert archive.search("june", store=store) == []


def test_a_rerun_replaces_the_jobs_segments_and_deleting_the_job_forgets_them(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "talk.json"
    job_id, _ = run_transcribe(store, {"index": entry(path, BUDGET, "/in/talk.mp3")})
    rerun = [{"start": 1.0, "end": 2.0, "text": "a completely different transcript"}]
    run_transcribe(store, {"index": entry(path, rerun, "/in/talk.mp3")}, job_id)
    assert archive.search("june", store=store) == []
    assert words_of(archive.search("different", store=store)) == [("talk", 1.0)]
    assert store.archive_counts() == (1, 1)
    assert store.delete_job(job_id)
    assert archive.search("different", store=store) == [] and store.archive_counts() == (0, 0)


def test_a_job_with_queued_work_is_not_deleted(store: Store) -> None:
    job, _, _ = store.create_job(NewJob("/in/y.mp3", "y"), [NewTask(TaskType.TRANSCRIBE, {})])
    assert not store.delete_job(job.id)
    assert store.get_job(job.id) is not None


def test_reindex_from_the_database_and_from_an_outbox(store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "out"
    paths = write_transcript(outbox, "talk", {"name": "talk", "source": "/in/talk.mp3", "language": "en",
                                              "segments": BUDGET, "text": ""})  # fmt: skip
    job_id, _ = run_transcribe(store, {"outputs": paths})  # finished before the archive existed
    (outbox / "notes.json").write_text("{not json")
    assert archive.search("june", store=store) == []
    done = archive.reindex(store)
    assert (done.transcripts, done.segments) == (1, 4)
    assert archive.search("june", store=store)[0].job_id == job_id
    again = archive.reindex(store, outbox)  # from the files: the same transcript, its job kept
    assert (again.transcripts, again.skipped) == (1, [str(outbox / "notes.json")])
    assert store.archive_counts() == (1, 4)
    assert archive.search("june", store=store)[0].job_id == job_id


def test_reindex_from_an_outbox_takes_transcripts_as_they_are_and_nothing_else(store: Store, tmp_path: Path) -> None:
    """An outbox holds more than finished transcripts: a name's reservation (a writer at work or killed), another
    program's JSON. Only transcripts are indexed; in one, a segment missing its times is found at the start, and one
    that is blank, without text or not an object at all adds nothing (no 'None' to find)."""
    outbox = tmp_path / "out"
    outputs.choose_base(outbox, "busy", "/in/busy.mp3")  # busy.json: the reservation, until its transcript lands
    (outbox / "other.json").write_text(json.dumps({"source": "/in/x.mp3", "note": "no segments here"}))
    segments = [{"text": "timeless words"}, {"start": None, "end": None, "text": "null times"}, {"start": 2.0},
                {"start": 3.0, "end": 4.0, "text": None}, {"start": 4.0, "end": 5.0, "text": "   "}, None, "loose",
                {"start": 5.0, "end": 6.5, "text": "the last words"}]  # fmt: skip
    (outbox / "talk.json").write_text(json.dumps({"source": "/in/talk.mp3", "segments": segments}))  # no name
    second = {"name": "talk", "source": "/in/b/talk.mp3", "segments": [{"start": 1.0, "end": 2.0, "text": "twin"}]}
    (outbox / "talk-2.json").write_text(json.dumps(second))  # another talk.mp3: its files got the suffix, not its name
    done = archive.reindex(store, outbox)
    assert (done.transcripts, done.segments) == (2, 4)
    assert sorted(done.skipped) == [str(outbox / "busy.json"), str(outbox / "other.json")]
    hits = archive.search("timeless OR null OR last OR none OR xx*", store=store)
    assert sorted((h.name, h.start, h.end, h.snippet) for h in hits) == [("talk", 0.0, 0.0, "null times"),
        ("talk", 0.0, 0.0, "timeless words"), ("talk", 5.0, 6.5, "the last words")]  # fmt: skip
    (twin,) = archive.search("twin", store=store)
    assert (twin.name, twin.json_path) == ("talk", str(outbox / "talk-2.json"))


def test_the_real_pipeline_indexes_what_it_transcribes(tmp_path: Path) -> None:
    with FakeOpenAI(transcribe=media.media_transcription) as server:
        settings = make_settings(tmp_path / "home", server)
        store = open_e2e_store(settings)
        job = add_file(store, media.video(tmp_path / "clip.mp4", 2.0, audio=True), tmp_path / "out")
        drain(store, settings)
    hits = archive.search('"fake server"', store=store)
    assert [(h.job_id, h.json_path, h.start) for h in hits] == [(job.id, str(tmp_path / "out/clip.json"), 0.0)]
    store.engine.dispose()


# -- traxctl search ---------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    forget_environment(monkeypatch)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    s = open_store(load_settings())
    s.index_transcript(entry(tmp_path / "out/meeting.json", BUDGET, str(tmp_path / "in/meeting.mp3")))
    yield s
    s.engine.dispose()


def test_traxctl_search_prints_file_time_speaker_snippet_and_output(home: Store, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "draft budget"])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()[:2]
    assert first.startswith("meeting.mp3  [01:15.2]  Bob: ") and "**draft** **budget**" in first
    assert second.strip() == str(tmp_path / "out/meeting.json")


def test_traxctl_search_json_and_no_matches(home: Store) -> None:
    result = runner.invoke(app, ["search", "june", "--json", "--speaker", "Bob"])
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.output)
    assert (hit["file"], hit["at"], hit["start"], hit["speaker"]) == ("meeting.mp3", "00:04.0", 4.0, "Bob")
    assert hit["marked"].count("**June**") == 1
    assert runner.invoke(app, ["search", "zebra"]).output.strip() == "no matches"


@pytest.mark.parametrize("query", ['"unclosed', "-only", "(a OR", "a OR OR b"])
def test_traxctl_search_malformed_query_is_one_line_without_sql(home: Store, query: str) -> None:
    result = runner.invoke(app, ["search", "--", query])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output and "fts5" not in result.output.lower() and "SELECT" not in result.output


def test_traxctl_search_reindex(home: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    write_transcript(outbox, "memo", {"name": "memo", "source": "/in/memo.m4a", "segments": FRENCH, "text": ""})
    result = runner.invoke(app, ["search", "--reindex", "--from", str(outbox)])
    assert result.exit_code == 0, result.output
    assert "indexed 1 transcripts (2 segments)" in result.output
    assert "memo.m4a  [00:03.0]" in runner.invoke(app, ["search", "mairie"]).output
    assert runner.invoke(app, ["search"]).exit_code == 2


def test_a_very_common_word_ranks_its_newest_matches(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking is bounded: only the CANDIDATES newest matches are ranked (exact below that many matches)."""
    from traxd.db import archive_index

    dense = [{"start": 0.0, "end": 1.0, "text": "budget budget budget"}]
    sparse = [{"start": 5.0, "end": 6.0, "text": "budget " + "and other words " * 6}]
    store.index_transcript(entry(tmp_path / "old.json", dense, "/in/old.mp3"))
    store.index_transcript(entry(tmp_path / "new1.json", sparse, "/in/new1.mp3"))
    store.index_transcript(entry(tmp_path / "new2.json", sparse, "/in/new2.mp3"))
    assert next(h.name for h in archive.search("budget", store=store)) == "old"  # the best match wins
    monkeypatch.setattr(archive_index, "CANDIDATES", 2)
    assert sorted(h.name for h in archive.search("budget", store=store, limit=2)) == ["new1", "new2"]
