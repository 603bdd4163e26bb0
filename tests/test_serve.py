"""OpenAI's transcription API served by a real `traxd run --serve`, driven by the real openai SDK.

The formats, timings, speakers, translation, streaming and two clients at once run on the local engine (Whisper
tiny.en on Debian's alsa-utils recordings and espeak-ng dialogs); the crash, the disconnect and the limits run on the
fake OpenAI server as the daemon's backend, where every paid call is counted.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.daemon_helpers import REPO, Daemon, home_env, open_home_store, wait_until
from tests.fakes import dialog
from tests.fakes.media import tone
from tests.fakes.models import tiny_en
from tests.fakes.openai_server import FakeOpenAI
from traxd.config import load_settings, serve_address
from traxd.errors import ConfigError
from traxd.joboptions import job_options
from traxd.serve.ask import TRANSCRIBE, TRANSLATE, ApiError, read_ask, request_key
from traxd.types import TaskState, TaskType

ALSA = Path("/usr/share/sounds/alsa")
CENTER, LEFT = ALSA / "Front_Center.wav", ALSA / "Front_Left.wav"
pytestmark = pytest.mark.skipif(not CENTER.is_file(), reason="needs alsa-utils' recordings (.ci/run installs them)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serving(home: Path, env: dict[str, str], port: int, args: tuple[str, ...] = ()) -> Daemon:
    """A `traxd run --serve` on `port`, started and answering."""
    daemon = Daemon(home, env, ("--serve", f"127.0.0.1:{port}", *args)).start()
    wait_until(lambda: daemon.log.exists() and "OpenAI-compatible API on" in daemon.log.read_text()
               or daemon.proc.poll() is not None, what="server start")  # type: ignore[union-attr]  # fmt: skip
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log.read_text()
    wait_until(lambda: _answers(port), what="server answering")
    return daemon


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def client(port: int, **kw: Any) -> OpenAI:
    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split() if w.strip(".,!?")]


@pytest.fixture(scope="module")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """One daemon on the local engine for the module (its model loads once); its port and home."""
    home = tmp_path_factory.mktemp("serve-local") / "home"
    env = home_env(home, handlers=None, TRAX_BACKEND="local", TRAX_LOCAL_MODEL=str(tiny_en()), HF_HUB_OFFLINE="1",
                   TRAX_SERVE_MAX_UPLOAD_MB="5")  # fmt: skip
    port = free_port()
    daemon = serving(home, env, port)
    yield port, home
    daemon.stop()


@pytest.fixture
def local(local_home: tuple[int, Path]) -> int:
    return local_home[0]


def test_every_response_format_from_the_local_engine(local: int) -> None:
    api = client(local)
    with CENTER.open("rb") as f:
        plain = api.audio.transcriptions.create(file=f, model="whisper-1")
    assert words(plain.text) == ["front", "center"]
    for fmt in ("text", "srt", "vtt"):
        with CENTER.open("rb") as f:
            body = api.audio.transcriptions.create(file=f, model="whisper-1", response_format=fmt)
        spoken = [ln for ln in str(body).splitlines() if ln and "-->" not in ln and not ln.isdigit() and ln != "WEBVTT"]
        assert words(" ".join(spoken)) == ["front", "center"], (fmt, body)
        assert ("-->" in str(body)) == (fmt != "text") and str(body).startswith("WEBVTT") == (fmt == "vtt")
    with CENTER.open("rb") as f:
        verbose = api.audio.transcriptions.create(file=f, model="whisper-1", response_format="verbose_json",
                                                  timestamp_granularities=["word", "segment"])  # fmt: skip
    assert verbose.language == "english" and 1.0 < verbose.duration < 2.0
    assert [words(w.word)[0] for w in verbose.words or []] == ["front", "center"]
    first, second = verbose.words or []
    assert 0.0 <= first.start < first.end <= second.start < second.end <= verbose.duration + 0.1
    assert verbose.segments and verbose.segments[0].start < verbose.segments[-1].end
    with CENTER.open("rb") as f:  # words only: OpenAI leaves the segments out
        only_words = api.audio.transcriptions.create(file=f, model="whisper-1", response_format="verbose_json",
                                                     timestamp_granularities=["word"])  # fmt: skip
    assert only_words.words and only_words.segments is None


def test_diarized_json_names_two_voices(local: int, tmp_path: Path) -> None:
    wav, turns = dialog.two_voices(tmp_path, lines=4)
    with wav.open("rb") as f:
        try:
            got = client(local, timeout=300).audio.transcriptions.create(
                file=f, model="gpt-4o-transcribe-diarize", response_format="diarized_json")
        except openai.APIStatusError as exc:
            if "diariz" in str(exc) and not os.environ.get("CI"):
                pytest.skip(f"the diarize extra is not installed: {exc}")
            raise
    speakers = {s.speaker for s in got.segments}
    assert len(speakers) == 2 and "" not in speakers, got.segments
    assert all(s.type == "transcript.text.segment" and s.start < s.end for s in got.segments)
    # Each turn's speaker: that of the segment holding the turn's middle (far from where one voice hands over, so a
    # segment Whisper ran across the hand-over does not decide it).
    heard = [next((s.speaker for s in got.segments if s.start <= (a + b) / 2 <= s.end), None) for a, b, _ in turns]
    by_voice = {voice: {heard[i] for i, (_, _, v) in enumerate(turns) if v == voice} for _, _, voice in turns}
    assert [len(found) for found in by_voice.values()] == [1, 1] and None not in heard, (turns, got.segments)
    assert set.union(*by_voice.values()) == speakers  # one label per voice, a different one for each


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations (OpenAI retires them)
def test_translation_and_streaming(local: int) -> None:
    api = client(local)
    with CENTER.open("rb") as f:  # tiny.en is English only: what this proves is the route (English out, its own file)
        english = api.audio.translations.create(file=f, model="whisper-1", response_format="verbose_json")
    assert english.language == "english" and words(english.text) == ["front", "center"]
    with LEFT.open("rb") as f:
        events = list(api.audio.transcriptions.create(file=f, model="gpt-4o-mini-transcribe", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"} and len(kinds) >= 2
    assert words("".join(e.delta for e in events[:-1])) == words(events[-1].text) == ["front", "left"]


def test_two_clients_at_once_and_a_repeat_is_not_decoded_again(local: int) -> None:
    api = client(local)
    out: dict[Path, Any] = {}

    def ask(path: Path) -> None:
        with path.open("rb") as f:
            out[path] = api.audio.transcriptions.with_raw_response.create(file=f, model="whisper-1", language="en")

    threads = [threading.Thread(target=ask, args=(p,)) for p in (CENTER, LEFT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ids = {p: r.headers["x-trax-job-id"] for p, r in out.items()}
    assert words(out[CENTER].parse().text) == ["front", "center"] and words(out[LEFT].parse().text) == ["front", "left"]
    assert ids[CENTER] != ids[LEFT]
    with CENTER.open("rb") as f:  # the same content and options: the same job, answered from what it wrote
        again = api.audio.transcriptions.with_raw_response.create(file=f, model="whisper-1", language="en")
    assert again.headers["x-trax-job-id"] == ids[CENTER]
    job = httpx.get(f"http://127.0.0.1:{local}/v1/trax/jobs/{ids[CENTER]}").json()
    assert job["state"] == "succeeded" and words(job["result"]["text"]) == ["front", "center"]


def test_errors_come_in_openai_shapes(local: int, tmp_path: Path) -> None:
    api = client(local)
    with CENTER.open("rb") as f, pytest.raises(openai.BadRequestError) as bad:
        api.audio.transcriptions.create(file=f, model="whisper-1", response_format="verbose_json",
                                        timestamp_granularities=["syllable"])  # type: ignore[list-item]  # fmt: skip
    assert bad.value.param == "timestamp_granularities" and bad.value.type == "invalid_request_error"  # type: ignore[attr-defined]
    with CENTER.open("rb") as f, pytest.raises(openai.BadRequestError) as lang:
        api.audio.transcriptions.create(file=f, model="whisper-1", language="klingon")
    assert lang.value.param == "language"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as not_media:
        api.audio.transcriptions.create(file=("notes.mp3", b"this is text, not sound " * 40), model="whisper-1")
    assert not_media.value.param == "file" and "notes.mp3" in str(not_media.value)  # type: ignore[attr-defined]
    big = tone(tmp_path / "big.wav", 70.0)  # 6 MB of PCM against a 5 MB limit
    with big.open("rb") as f, pytest.raises(openai.APIStatusError) as too_big:
        api.audio.transcriptions.create(file=f, model="whisper-1")
    assert too_big.value.status_code == 413 and too_big.value.body["code"] == "file_too_large"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        api.audio.speech.create(model="tts-1", voice="alloy", input="hi")


def test_files_go_to_a_watch_folders_outbox_only_when_asked_and_only_there(local_home: tuple[int, Path]) -> None:
    port, home = local_home
    with LEFT.open("rb") as f:
        client(port).audio.transcriptions.create(file=f, model="whisper-1", extra_body={"outbox": "outbox"})
    assert words((home / "outbox" / "Front_Left.txt").read_text()) == ["front", "left"]
    with LEFT.open("rb") as f, pytest.raises(openai.BadRequestError) as bad:
        client(port).audio.transcriptions.create(file=f, model="whisper-1", extra_body={"outbox": "/etc"})
    assert bad.value.param == "outbox"  # type: ignore[attr-defined]
    assert not list((home / "serve" / "uploads").glob(".upload-*"))  # the refused upload is gone too


def test_a_result_that_cannot_be_read_is_a_500_in_one_line(local_home: tuple[int, Path]) -> None:
    """The job is done but its NAME.json is gone (deleted by hand): OpenAI's 500 shape, one line, no traceback."""
    port, home = local_home
    with CENTER.open("rb") as f:
        client(port).audio.transcriptions.create(file=f, model="whisper-1", prompt="Front, Center")
    for doc in (home / "serve" / "out").glob("Front_Center*.json"):
        doc.unlink()
    with CENTER.open("rb") as f, pytest.raises(openai.InternalServerError) as failed:
        client(port).audio.transcriptions.create(file=f, model="whisper-1", prompt="Front, Center")
    body = failed.value.body
    assert isinstance(body, dict) and body["code"] == "transcript_missing" and body["type"] == "server_error"
    assert "Traceback" not in body["message"] and "\n" not in body["message"]


# -- the durable queue behind it: a crash, a client that leaves, a full queue, a token ------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def api_env(home: Path, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return home_env(home, handlers=None, TRAX_BACKEND="openai", OPENAI_API_KEY="sk-serve-test",
                    OPENAI_BASE_URL=fake.base_url, TRAX_LEASE_SECONDS="3", **extra)  # fmt: skip


def test_kill_9_during_a_request_then_the_same_request_transcribes_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = api_env(home, fake, DEEPSEEK_API_KEY="sk-deepseek-test", DEEPSEEK_BASE_URL=fake.base_url, TRAX_ENHANCE="1")
    port = free_port()
    daemon = serving(home, env, port)
    audio = tone(tmp_path / "talk.wav", 3.0)
    fake.hold()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with audio.open("rb") as f:
                client(port, timeout=60).audio.transcriptions.create(file=f, model="whisper-1",
                                                                     extra_headers={"Idempotency-Key": "req-42"})  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - the daemon is killed under it: an error is expected
            failures.append(exc)

    asking = threading.Thread(target=first)
    asking.start()
    wait_until(lambda: fake.held == 1, what="the transcription call")
    fake.let_one()  # the transcription is paid and checkpointed; the enhancement is held
    wait_until(lambda: fake.held == 1 and fake.calls("/chat/completions"), what="the enhancement call")
    daemon.kill9()
    asking.join(30)
    assert failures and isinstance(failures[0], openai.APIConnectionError)
    fake.release()
    daemon = serving(home, env, port)
    try:
        with audio.open("rb") as f:
            again = client(port, timeout=90).audio.transcriptions.with_raw_response.create(
                file=f, model="whisper-1", extra_headers={"Idempotency-Key": "req-42"})
        assert again.parse().text
        assert len(fake.calls("/audio/transcriptions")) == 1  # one transcription in all
        with sqlite3.connect(home / "trax.db") as db:
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (1,)
        assert not list((home / "serve" / "uploads").glob(".upload-*"))  # no half-written upload left behind
    finally:
        daemon.stop()


def test_streamed_text_arrives_chunk_by_chunk_as_each_is_transcribed(fake: FakeOpenAI, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    daemon = serving(home, api_env(home, fake, TRAX_CHUNK_SIZE="10"), port)
    audio = tone(tmp_path / "long.wav", 25.0)  # three chunks of at most 10 s
    events: list[Any] = []

    def listen() -> None:
        with audio.open("rb") as f:
            events.extend(client(port, timeout=60).audio.transcriptions.create(file=f, model="whisper-1", stream=True))

    fake.hold()
    listening = threading.Thread(target=listen)
    listening.start()
    try:
        wait_until(lambda: fake.held == 1, what="the first chunk's call")
        fake.let_one()
        wait_until(lambda: fake.held == 1 and len(fake.calls("/audio/transcriptions")) == 2, what="the second call")
        wait_until(lambda: events, what="the first chunk's text while the second is being transcribed")
        assert [e.type for e in events] == ["transcript.text.delta"]
        fake.release()
        listening.join(60)
        assert [e.type for e in events][-1] == "transcript.text.done" and len(events) >= 3  # the rest, then done
        assert words("".join(e.delta for e in events[:-1])) == words(events[-1].text)
    finally:
        fake.release()
        daemon.stop()


def test_a_client_that_leaves_still_gets_its_result_later(fake: FakeOpenAI, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    daemon = serving(home, api_env(home, fake), port)
    audio = tone(tmp_path / "memo.wav", 2.0)
    try:
        fake.hold()
        with audio.open("rb") as f, pytest.raises(openai.APITimeoutError):
            client(port, timeout=2).audio.transcriptions.create(file=f, model="whisper-1", response_format="text")
        fake.release()
        store = open_home_store(home)
        wait_until(lambda: any(t.type is TaskType.TRANSCRIBE for t in store.list_tasks(TaskState.SUCCEEDED)),
                   what="the job to finish without its client")  # fmt: skip
        with audio.open("rb") as f:
            text = client(port).audio.transcriptions.create(file=f, model="whisper-1", response_format="text")
        assert "hello from the fake server" in str(text)
        assert len(fake.calls("/audio/transcriptions")) == 1
        other = tone(tmp_path / "second.wav", 2.5)
        fake.fail_next(status=400, body={"error": {"message": "Invalid file format.", "type": "invalid_request_error"}})
        with other.open("rb") as f, pytest.raises(openai.BadRequestError) as failed:
            client(port).audio.transcriptions.create(file=f, model="whisper-1")
        assert failed.value.param == "file"  # type: ignore[attr-defined]
        with other.open("rb") as f:  # the same request after a failure: the job is retried, not the error repeated
            assert client(port).audio.transcriptions.create(file=f, model="whisper-1").text
    finally:
        daemon.stop()


def test_a_prompt_is_never_read_as_a_file_of_this_machine(tmp_path: Path) -> None:
    """The vocabulary takes `@FILE` and a path from the user's own command line; from a client it is only text."""
    secret = tmp_path / "secret.txt"
    secret.write_text("never, read")
    settings = load_settings({"home": tmp_path}, env={})
    for prompt in (f"@{secret}", str(secret)):
        ask = read_ask(TRANSCRIBE, {"model": ["m"], "prompt": [prompt]})
        assert job_options(settings, ask.options({})).vocabulary == (prompt,)
    with pytest.raises(ApiError) as bad:
        read_ask(TRANSCRIBE, {"model": ["m"], "language": ["klingon"]})
    assert bad.value.param == "language"
    assert read_ask(TRANSCRIBE, {"model": ["m"], "language": ["German"]}).language == "de"


def test_form_fields_are_read_as_openai_reads_them() -> None:
    ask = read_ask(TRANSCRIBE, {"model": ["whisper-1"], "response_format": ["verbose_json"],
                                "timestamp_granularities[]": ["word"], "prompt": ["Anaïs, Trax"]})  # fmt: skip
    assert ask.words and not ask.segments and ask.options({"whisper-1": "small"})["model"] == "small"
    assert ask.options({})["vocabulary"] == ["Anaïs", " Trax"] and ask.options({})["model"] is None
    for fields, param in (({}, "model"), ({"model": ["m"], "temperature": ["2"]}, "temperature"),
                          ({"model": ["m"], "stream": ["true"], "response_format": ["srt"]}, "stream"),
                          ({"model": ["m"], "timestamp_granularities[]": ["word"]}, "timestamp_granularities")):  # fmt: skip
        with pytest.raises(ApiError) as bad:
            read_ask(TRANSCRIBE, fields)
        assert bad.value.status == 400 and bad.value.param == param
    assert read_ask(TRANSLATE, {"model": ["m"], "language": ["de"]}).language is None  # English out, whatever goes in
    assert request_key("a" * 64, {"x": 1}, None) != request_key("a" * 64, {"x": 2}, None)
    assert request_key("a" * 64, {"x": 1}, "k") == request_key("b" * 64, {"x": 2}, "k")


def test_serve_settings(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('serve = "0.0.0.0:9000"\nserve_models = { whisper-1 = "small" }\n')
    settings = load_settings({"home": tmp_path}, env={})
    assert serve_address(settings.serve or "") == ("0.0.0.0", 9000) and settings.serve_model_map == {"whisper-1": "small"}
    assert load_settings({"home": tmp_path}, env={"TRAX_SERVE_MODELS": "a=b,c=d"}).serve_model_map == {"a": "b", "c": "d"}
    assert serve_address("[::1]") == ("::1", 8766) and serve_address("localhost") == ("localhost", 8766)
    for bad in ({"TRAX_SERVE": "host:port"}, {"TRAX_SERVE_MODELS": "whisper-1"}):
        with pytest.raises(ConfigError):
            load_settings({"home": tmp_path}, env=bad)


def test_queue_depth_and_token_when_only_queueing(fake: FakeOpenAI, tmp_path: Path) -> None:
    """`traxctl serve` alone queues for daemons elsewhere: with none running, the second request finds the queue
    full (429); a server with a token refuses a client without it (401)."""
    import subprocess
    import sys

    home = tmp_path / "home"
    port = free_port()
    env = api_env(home, fake, TRAX_SERVE_MAX_QUEUE="1", TRAX_SERVE_TOKEN="a-token-of-twenty-chars")
    proc = subprocess.Popen([sys.executable, "-m", "traxd.cli.traxctl_cmd", "serve", f"127.0.0.1:{port}"], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until(lambda: _answers_with(port, "a-token-of-twenty-chars") or proc.poll() is not None, what="serve")
        assert proc.poll() is None
        with CENTER.open("rb") as f, pytest.raises(openai.AuthenticationError):
            client(port, api_key="wrong").audio.transcriptions.create(file=f, model="whisper-1")
        good = client(port, api_key="a-token-of-twenty-chars", timeout=2)
        with CENTER.open("rb") as f, pytest.raises(openai.APITimeoutError):
            good.audio.transcriptions.create(file=f, model="whisper-1")  # queued; no daemon works it off
        with LEFT.open("rb") as f, pytest.raises(openai.RateLimitError):
            good.audio.transcriptions.create(file=f, model="whisper-1")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Host": "evil.example"},
                         timeout=5).status_code == 400  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def _answers_with(port: int, token: str) -> bool:
    try:
        got = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=1)
        return got.status_code == 200
    except httpx.HTTPError:
        return False


def test_old_uploads_of_finished_requests_are_swept_and_the_others_kept(tmp_path: Path) -> None:
    from traxd.database import open_store, reader_on
    from traxd.serve.jobs import Requests
    from traxd.types import NewJob, NewTask

    settings = load_settings({"home": tmp_path}, env={})
    store = open_store(settings)
    requests = Requests(settings, store, lambda: reader_on(store), lambda job_id: 0)
    folders = {}
    for name in ("cancelled", "failed", "queued", "recent"):
        folders[name] = requests.uploads / name
        folders[name].mkdir(parents=True)
        (folders[name] / "talk.wav").write_bytes(b"RIFF")
        job = NewJob(str(folders[name] / "talk.wav"), "talk", str(tmp_path / "out"), "serve")
        if name == "failed":
            store.create_failed_job(job, NewTask(TaskType.PREPROCESS, {}, dedupe_key=name), "not media")
        else:
            made, _, _ = store.create_job(job, [NewTask(TaskType.PREPROCESS, {}, dedupe_key=name)])
            if name in ("cancelled", "recent"):
                store.cancel_job(made.id)
        if name != "recent":
            os.utime(folders[name], (1.0, 1.0))
    (requests.uploads / ".upload-old.part").write_bytes(b"x")
    os.utime(requests.uploads / ".upload-old.part", (1.0, 1.0))
    assert requests.sweep_uploads(3600.0, time.time()) == 1
    assert {p.name for p in requests.uploads.iterdir()} == {"failed", "queued", "recent"}  # a retry may read them
    store.engine.dispose()
